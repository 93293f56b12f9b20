package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/tally-analytics/tally/cmd/tally/config"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: tally <command> [flags]

commands:
  serve    run the collector
  check    validate the config and print every problem
  reload   make a running tally re-read its config (SIGHUP)
  rules    test the rules against a completion: rules test -config FILE completion.json
  migrate  apply the ClickHouse schema
  import   import past completions from CSV through a running tally
  snippet  print the tags to paste into a site
  erase    erase a person everywhere tally keeps them (asks the running tally)
  replay   forward a rule's stored history of the last 7 days (asks the running tally)
  version  print version information

Run "tally <command> -h" for a command's flags.
`

// run dispatches a command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = serveCmd(ctx, args, stderr)
	case "check":
		err = checkCmd(args, stdout, stderr)
	case "rules":
		err = rulesCmd(args, stdout, stderr)
	case "reload":
		err = reloadCmd(args, stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args, stdout, stderr)
	case "import":
		err = importCmd(ctx, args, stdout, stderr)
	case "snippet":
		err = snippetCmd(args, stdout, stderr)
	case "erase":
		err = eraseCmd(ctx, args, stdout, stderr)
	case "replay":
		err = replayCmd(ctx, args, stdout, stderr)
	case "version", "-version", "--version":
		versionCmd(stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "tally: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	var ps config.Problems
	if errors.As(err, &ps) {
		fmt.Fprintln(stderr, ps.Error())
		fmt.Fprintf(stderr, "%d problem(s) in the config\n", len(ps))
		return 1
	}
	fmt.Fprintf(stderr, "tally %s: %v\n", cmd, err)
	return 1
}

var errUsage = errors.New("usage")

// commonFlags declares the flags every config-reading command shares.
func commonFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("TALLY_CONFIG")
	if def == "" {
		def = "tally.yaml"
	}
	path := fs.String("config", def, "config file (env TALLY_CONFIG)")
	return fs, path
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// loadFromFlags parses a command's flags and loads the config they name.
func loadFromFlags(fs *flag.FlagSet, path *string, args []string) (*config.File, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(*path)
	if errors.Is(err, os.ErrNotExist) && !flagSet(fs, "config") && os.Getenv("TALLY_CONFIG") == "" {
		return nil, fmt.Errorf("%w (give the config with -config FILE or TALLY_CONFIG; make run uses examples/tally.yaml)", err)
	}
	return cfg, err
}

// flagSet reports whether the command line set the named flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// loadConfig reads the config and applies TALLY_* environment overrides of
// the settings that differ per deployment.
func loadConfig(path string) (*config.File, error) {
	f, err := config.Load(path, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if v := os.Getenv("TALLY_LISTEN"); v != "" {
		f.Listen = v
	}
	if v := os.Getenv("TALLY_ADMIN_LISTEN"); v != "" {
		// In a container the loopback default is unreachable from the
		// scraper; the deployment chooses where operators reach it.
		f.AdminListen = v
	}
	if v := os.Getenv("TALLY_CLICKHOUSE_DSN"); v != "" {
		f.ClickHouse.DSN = v
	}
	if v := os.Getenv("TALLY_CLICKHOUSE_DATABASE"); v != "" {
		f.ClickHouse.Database = v
	}
	if v := os.Getenv("TALLY_CLICKHOUSE_CLUSTER"); v != "" {
		f.ClickHouse.Cluster = v
	}
	return f, nil
}

func checkCmd(args []string, stdout, stderr io.Writer) error {
	fs, path := commonFlags("check", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f, err := config.Load(*path, os.LookupEnv)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d sites, %d events, %d destinations, %d rules)\n",
		*path, len(f.Sites), len(f.Events), len(f.Destinations), len(f.Rules))
	return nil
}

// Set at build time with -ldflags "-X main.version=… -X main.commit=…";
// otherwise read from the module's build information.
var (
	version = ""
	commit  = ""
)

func versionCmd(w io.Writer) {
	v, c := version, commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	fmt.Fprintf(w, "tally %s (commit %s, %s %s/%s)\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// durationsInMillis writes durations (took, after, …) as milliseconds:
// slog's JSON would write nanoseconds, which nobody reads at a glance.
func durationsInMillis(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key+"_ms", float64(a.Value.Duration().Microseconds())/1000)
	}
	return a
}

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("TALLY_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsInMillis}
	if os.Getenv("TALLY_LOG_FORMAT") == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
