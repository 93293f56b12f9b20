package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/ingest"
)

// tally import sends a CSV file to a running tally's POST /imports in
// parts of importChunkRows rows, so the rows go through the same
// acceptance pipeline and durable log as live traffic (tally serve owns
// the log; a second process must not write it). The file is read twice,
// once to hash it (the hash seeds the rows' event ids) and once to send
// it, so memory stays constant whatever its size; stdin is copied to a
// temporary file first.

// importChunkRows rows make one request: at ~100 bytes a row a 0.5 MB
// body, far under the API's 16 MiB limit, and 200 requests for a million
// rows, so per-request costs are small next to the rows'.
const importChunkRows = 5000

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := commonFlags("import", stderr)
	event := fs.String("event", "", "the event every row is a completion of (required)")
	addr := fs.String("url", "", "tally's address (default: http:// plus the config's listen address, env TALLY_URL)")
	token := fs.String("token", "", "API token with the send scope (default: env TALLY_TOKEN, else the config's first token with the send scope)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tally import [-config tally.yaml] -event NAME FILE.csv  (FILE - reads stdin)")
		fs.PrintDefaults()
	}
	cfg, err := loadFromFlags(fs, path, args)
	if err != nil {
		return err
	}
	if *event == "" || fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	opt := importOptions{Event: *event, URL: *addr, Token: *token, Name: fs.Arg(0), Log: stderr}
	if opt.URL == "" {
		opt.URL = os.Getenv("TALLY_URL")
	}
	if opt.URL == "" {
		opt.URL = localURL(cfg)
	}
	if opt.Token == "" {
		opt.Token = os.Getenv("TALLY_TOKEN")
	}
	if opt.Token == "" {
		for _, t := range cfg.APITokens {
			if t.Allows(ingest.ScopeSend) {
				opt.Token = t.Token
				break
			}
		}
	}
	if opt.Token == "" {
		return errors.New("no API token: set -token or TALLY_TOKEN, or add one to api_tokens")
	}
	in, size, cleanup, err := openImport(opt.Name)
	if err != nil {
		return err
	}
	defer cleanup()
	opt.Progress = newProgress(stderr, size)
	start := time.Now()
	sum, err := runImport(ctx, opt, in)
	opt.Progress.done()
	printSummary(stdout, opt, sum, time.Since(start))
	if err != nil {
		return err
	}
	if sum.Rejected > 0 {
		return fmt.Errorf("%d row(s) rejected (listed above); the other rows were imported", sum.Rejected)
	}
	return nil
}

// localURL is where this config's tally listens, seen from this machine.
func localURL(cfg *config.File) string {
	listen := cfg.Listen
	if v := os.Getenv("TALLY_LISTEN"); v != "" {
		listen = v
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "http://127.0.0.1:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// openImport opens the file to import (- is stdin, copied to a temporary
// file so it can be read twice) and returns its size.
func openImport(name string) (*os.File, int64, func(), error) {
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, 0, nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, err
		}
		return f, st.Size(), func() { f.Close() }, nil
	}
	f, err := os.CreateTemp("", "tally-import-*.csv")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("copy stdin: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	n, err := io.Copy(f, os.Stdin)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return nil, 0, nil, fmt.Errorf("copy stdin: %w", err)
	}
	return f, n, cleanup, nil
}

// importOptions are what runImport needs.
type importOptions struct {
	Event, URL, Token string
	Name              string // the file's name in messages
	Log               io.Writer
	Progress          *progress
	Client            *http.Client // nil means one with a 5-minute timeout
}

// runImport hashes in, then sends it in parts and sums the answers. Each
// rejected row is printed to opt.Log as it comes back.
func runImport(ctx context.Context, opt importOptions, in io.ReadSeeker) (ingest.ImportSummary, error) {
	var sum ingest.ImportSummary
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return sum, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, in); err != nil {
		return sum, fmt.Errorf("read %s: %w", opt.Name, err)
	}
	hash := hex.EncodeToString(h.Sum(nil))
	// Its parts share a run id: tally looks among stored rows for them only
	// when another run of the same file began before.
	run := uuid.NewString()
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return sum, err
	}
	client := opt.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Minute}
	}
	counted := &countingReader{r: in}
	r := csv.NewReader(counted)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		return sum, fmt.Errorf("read %s: header row: %w", opt.Name, err)
	}
	head = slices.Clone(head)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Up to importParallel parts are in flight, so tally checks, appends
	// and fsyncs one part while the next is read and sent; their answers
	// are taken in file order, so errors print in line order.
	var inflight []*importPart
	var free []*bytes.Buffer
	collect := func() error {
		p := inflight[0]
		inflight = inflight[1:]
		<-p.done
		free = append(free, p.body)
		if p.err != nil {
			// The parts after it are left to finish, so the summary
			// counts what they imported.
			for _, q := range inflight {
				if <-q.done; q.err == nil {
					sum.Add(q.sum)
				}
			}
			inflight = nil
			return p.err
		}
		for _, e := range p.sum.Errors {
			fmt.Fprintf(opt.Log, "%s:%d: %s: %s (%s)\n", opt.Name, e.Line, e.In, e.Message, e.Code)
		}
		sum.Add(p.sum)
		opt.Progress.update(p.read, sum.Imported+sum.Duplicates+sum.Rejected)
		return nil
	}
	collectAll := func() error {
		for len(inflight) > 0 {
			if err := collect(); err != nil {
				return err
			}
		}
		return nil
	}
	body := new(bytes.Buffer)
	w := csv.NewWriter(body)
	rows, firstRow, firstLine := 0, 1, 2
	send := func() error {
		if rows == 0 {
			return nil
		}
		w.Flush()
		if len(inflight) == importParallel {
			if err := collect(); err != nil {
				return err
			}
		}
		p := &importPart{body: body, read: counted.n, done: make(chan struct{})}
		inflight = append(inflight, p)
		go func(row, line int) {
			defer close(p.done)
			p.sum, p.err = postImport(ctx, client, opt, hash, run, row, line, p.body.Bytes())
		}(firstRow, firstLine)
		firstRow += rows
		rows = 0
		if n := len(free); n > 0 {
			body, free = free[n-1], free[:n-1]
		} else {
			body = new(bytes.Buffer)
		}
		w = csv.NewWriter(body)
		return nil
	}
	startChunk := func() {
		body.Reset()
		w.Write(head)
	}
	startChunk()
	// A part's rows must sit on consecutive lines of the file, so that
	// tally numbers their lines right: a blank line (which the CSV reader
	// skips) or a row that does not parse ends the part.
	nextLine := 0
	for n := 0; ; n++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if n >= ingest.MaxImportRows {
			return sum, fmt.Errorf("%s has more than %d rows: split it", opt.Name, ingest.MaxImportRows)
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return sum, fmt.Errorf("read %s: %w", opt.Name, err)
			}
			if err := send(); err == nil {
				err = collectAll() // the rows before it print before it
			}
			if err != nil {
				return sum, err
			}
			startChunk()
			fmt.Fprintf(opt.Log, "%s:%d: row: %v (INVALID_ROW)\n", opt.Name, pe.StartLine, pe.Err)
			sum.Add(ingest.ImportSummary{Rejected: 1, ByReason: map[string]int{"INVALID_ROW": 1}})
			firstRow++ // the row keeps its number: the ids of the rows after it do not move
			nextLine = 0
			continue
		}
		line, _ := r.FieldPos(0)
		if rows > 0 && line != nextLine {
			if err := send(); err != nil {
				return sum, err
			}
			startChunk()
		}
		if rows == 0 {
			firstLine = line
		}
		nextLine = line + 1
		for _, f := range rec {
			nextLine += strings.Count(f, "\n")
		}
		w.Write(rec)
		rows++
		if rows == importChunkRows {
			if err := send(); err != nil {
				return sum, err
			}
			startChunk()
		}
	}
	if err := send(); err != nil {
		return sum, err
	}
	return sum, collectAll()
}

// importParallel parts of an import are in flight at once.
const importParallel = 3

// importPart is one part sent and its answer.
type importPart struct {
	body *bytes.Buffer
	read int64 // bytes of the file read when it was sent
	done chan struct{}
	sum  ingest.ImportSummary
	err  error
}

// postImport sends one part, retrying while tally answers 503 (its log is
// full) or cannot be reached for a moment.
func postImport(ctx context.Context, client *http.Client, opt importOptions, hash, run string, row, line int, body []byte) (ingest.ImportSummary, error) {
	q := url.Values{"event": {opt.Event}, "hash": {hash}, "run": {run}, "row": {strconv.Itoa(row)}, "line": {strconv.Itoa(line)}}
	u := strings.TrimSuffix(opt.URL, "/") + "/imports?" + q.Encode()
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(body))
		if err != nil {
			return ingest.ImportSummary{}, err
		}
		req.Header.Set("Content-Type", "text/csv")
		req.Header.Set("Authorization", "Bearer "+opt.Token)
		resp, err := client.Do(req)
		wait := time.Second
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				var s ingest.ImportSummary
				if err := json.Unmarshal(b, &s); err != nil {
					return s, fmt.Errorf("tally's answer: %w", err)
				}
				return s, nil
			case resp.StatusCode == http.StatusServiceUnavailable:
				if s, _ := strconv.Atoi(resp.Header.Get("Retry-After")); s > 0 {
					wait = time.Duration(s) * time.Second
				}
			default:
				var env struct{ Message string }
				json.Unmarshal(b, &env)
				if env.Message == "" {
					env.Message = strings.TrimSpace(string(b))
				}
				return ingest.ImportSummary{}, fmt.Errorf("tally refused rows %d-: %s: %s", row, resp.Status, env.Message)
			}
		} else if attempt >= 5 {
			return ingest.ImportSummary{}, fmt.Errorf("send to %s (is tally serve running? the import goes through its durable log): %w", opt.URL, err)
		}
		select {
		case <-ctx.Done():
			return ingest.ImportSummary{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progress shows how far an import is: a bar (bytes, rows/s, ETA) on a
// terminal, a plain line every few seconds otherwise.
type progress struct {
	bar   *progressbar.ProgressBar // nil when not a terminal
	w     io.Writer
	size  int64
	start time.Time
	last  time.Time
}

// progressLineEvery spaces the plain progress lines.
const progressLineEvery = 5 * time.Second

func newProgress(w io.Writer, size int64) *progress {
	p := &progress{w: w, size: size, start: time.Now(), last: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(size, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("importing"), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionFullWidth(), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) update(bytes int64, rows int) {
	if p == nil {
		return
	}
	rate := float64(rows) / max(time.Since(p.start).Seconds(), 1e-3)
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%d rows, %.0f rows/s", rows, rate))
		p.bar.Set64(bytes)
		return
	}
	if time.Since(p.last) >= progressLineEvery {
		p.last = time.Now()
		fmt.Fprintf(p.w, "tally import: %d rows, %.0f%% of the file, %.0f rows/s\n", rows, 100*float64(bytes)/float64(max(p.size, 1)), rate)
	}
}

func (p *progress) done() {
	if p != nil && p.bar != nil {
		p.bar.Finish()
	}
}

func printSummary(w io.Writer, opt importOptions, s ingest.ImportSummary, took time.Duration) {
	rows := s.Imported + s.Duplicates + s.Rejected
	fmt.Fprintf(w, "%s: %d rows in %s (%.0f rows/s)\n", opt.Name, rows, took.Round(time.Millisecond), float64(rows)/max(took.Seconds(), 1e-3))
	fmt.Fprintf(w, "  imported   %d (event %s, source import)\n", s.Imported, opt.Event)
	fmt.Fprintf(w, "  duplicates %d (imported before: same file and row)\n", s.Duplicates)
	fmt.Fprintf(w, "  rejected   %d", s.Rejected)
	reasons := make([]string, 0, len(s.ByReason))
	for r := range s.ByReason {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for i, r := range reasons {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(w, "%s%s %d", sep, r, s.ByReason[r])
	}
	fmt.Fprintln(w)
}
