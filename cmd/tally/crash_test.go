package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/rules/capi/capitest"
	"github.com/tally-analytics/tally/store"
	"github.com/tally-analytics/tally/store/chserver"
	"github.com/tally-analytics/tally/store/chtest"
)

// The crash tests run tally as a child process, the way it runs in
// production, and kill it with SIGKILL while a load generator sends to it.

// buildTally compiles this command once per test binary.
var buildTally = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tally-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tally")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// child is a running tally process.
type child struct {
	cmd    *exec.Cmd
	addr   string
	stderr *lockedBuffer
	exited chan error
	done   chan struct{} // closed once the process has exited
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

func startChild(t testing.TB, cfgPath string) *child {
	t.Helper()
	bin, err := buildTally()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{stderr: &lockedBuffer{}, exited: make(chan error, 1), done: make(chan struct{})}
	c.cmd = exec.Command(bin, "serve", "-config", cfgPath)
	pr, pw, _ := os.Pipe()
	c.cmd.Stderr = pw
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.stderr.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "tally is serving" {
				addr <- line.Addr
			}
		}
	}()
	go func() {
		c.exited <- c.cmd.Wait()
		close(c.done)
	}()
	// A test that fails half-way leaves no tally running into the next.
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	select {
	case c.addr = <-addr:
	case err := <-c.exited:
		t.Fatalf("tally exited before serving: %v\n%s", err, c.stderr.tail())
	case <-time.After(60 * time.Second):
		c.cmd.Process.Kill()
		t.Fatalf("tally did not serve within 60s\n%s", c.stderr.tail())
	}
	return c
}

func (c *child) kill(t testing.TB) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// loader sends batches of new completions and remembers which were
// acknowledged (204), which refused (503), and which got no answer (the
// request was cut when the loader stopped or tally died: tally may have
// kept them or not).
type loader struct {
	mu      sync.Mutex
	acked   map[string]bool
	refused map[string]bool
	unknown map[string]bool
	other   map[int]int
	seq     int
}

func newLoader() *loader {
	return &loader{acked: map[string]bool{}, refused: map[string]bool{}, unknown: map[string]bool{}, other: map[int]int{}}
}

func (l *loader) nextIDs(prefix string, n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, n)
	for i := range ids {
		l.seq++
		ids[i] = fmt.Sprintf("%s-%07d", prefix, l.seq)
	}
	return ids
}

// run sends from conc goroutines until ctx ends.
func (l *loader) run(ctx context.Context, addr, prefix string, conc, batch int) {
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				ids := l.nextIDs(prefix, batch)
				var b strings.Builder
				b.WriteString(`{"inputs":[`)
				for i, id := range ids {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"eventName":"form_submitted","email":"p%d@example.com","uuid":%q,"properties":{"form_id":"contact","hs_page_url":"https://shop.example.com/c","hs_user_agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}}`, i, id)
				}
				b.WriteString(`]}`)
				req, _ := http.NewRequestWithContext(ctx, "POST", addr+"/events/v3/send/batch", strings.NewReader(b.String()))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+testAPIToken)
				resp, err := client.Do(req)
				if err != nil { // cut mid-request: neither acknowledged nor refused
					l.mu.Lock()
					for _, id := range ids {
						l.unknown[id] = true
					}
					l.mu.Unlock()
					continue
				}
				resp.Body.Close()
				l.mu.Lock()
				switch resp.StatusCode {
				case 204:
					for _, id := range ids {
						l.acked[id] = true
					}
				case 503:
					for _, id := range ids {
						l.refused[id] = true
					}
				default:
					l.other[resp.StatusCode]++
				}
				l.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// storedCounts returns, per event id, how many rows events holds (no
// FINAL: a duplicate row counts twice).
func storedCounts(t *testing.T, conn driver.Conn, db string) map[string]uint64 {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT event_id, count() FROM `"+db+"`.events GROUP BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	return out
}

// TestKillNineUnderLoad kills tally with SIGKILL under load six times, two
// of them while ClickHouse is down, then lets a last instance drain and
// stops it with SIGTERM: every acknowledged completion must be in
// ClickHouse exactly once and have reached the Graph API stand-in, and no
// completion answered 503 may have been forwarded.
func TestKillNineUnderLoad(t *testing.T) {
	chtest.DSN(t) // fails under CI=true when ClickHouse is not installed
	chDir := t.TempDir()
	ch, err := chserver.Start(context.Background(), chserver.Config{Dir: chDir})
	if err != nil {
		t.Fatal(err)
	}
	port := ch.Port()
	stopCH := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ch.Stop(ctx); err != nil {
			t.Logf("stop clickhouse: %v", err)
		}
	}
	startCH := func() {
		var err error
		if ch, err = chserver.Start(context.Background(), chserver.Config{Dir: chDir, Port: port}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(stopCH)

	graph := capitest.Start(capitest.Config{PixelID: "1234567890", AccessToken: graphToken})
	t.Cleanup(graph.Close)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tally.yaml")
	yaml := fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\ndata_dir: %q\nclickhouse: {dsn: %q, database: crash}\n", filepath.Join(dir, "data"), ch.DSN()) +
		leadsYAML(graph.URL(), "", "", "")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}

	l := newLoader()
	const kills = 6
	for round := range kills {
		c := startChild(t, cfgPath)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.run(ctx, c.addr, fmt.Sprintf("r%d", round), 4, 25); close(done) }()
		time.Sleep(1500 * time.Millisecond)
		chDown := round == 2 || round == 4
		if chDown {
			stopCH() // tally keeps acknowledging into its log
			time.Sleep(700 * time.Millisecond)
		}
		c.kill(t)
		cancel()
		<-done
		if chDown {
			startCH()
		}
		l.mu.Lock()
		t.Logf("round %d: killed with SIGKILL (clickhouse down: %v); acknowledged so far %d", round, chDown, len(l.acked))
		l.mu.Unlock()
	}

	// SIGTERM while ClickHouse is down: tally stops within its deadline,
	// exits 0, and keeps what it acknowledged in its log.
	{
		c := startChild(t, cfgPath)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.run(ctx, c.addr, "term", 4, 25); close(done) }()
		time.Sleep(time.Second)
		stopCH()
		time.Sleep(700 * time.Millisecond)
		cancel()
		<-done
		start := time.Now()
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-c.exited:
			if err != nil {
				t.Errorf("SIGTERM with ClickHouse down: exit %v; want 0\n%s", err, c.stderr.tail())
			}
		case <-time.After(shutdownTimeout + 10*time.Second):
			c.kill(t)
			t.Fatalf("SIGTERM with ClickHouse down: still running after %v", shutdownTimeout+10*time.Second)
		}
		t.Logf("SIGTERM with ClickHouse down: stopped in %v", time.Since(start).Round(time.Millisecond))
		startCH()
	}

	// The last instance recovers, drains, and stops on SIGTERM.
	c := startChild(t, cfgPath)
	conn, err := store.Open(context.Background(), ch.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(90 * time.Second)
	waitStored(t, conn, "crash", l.acked, deadline, c.stderr.tail)
	// Forwards drain too before the graceful stop.
	for time.Now().Before(deadline) {
		got := map[string]bool{}
		for _, ev := range graph.Received() {
			got[ev.EventID] = true
		}
		missing := 0
		for id := range l.acked {
			if !got[id] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		if err != nil {
			t.Errorf("tally exited with %v after SIGTERM; want 0\n%s", err, c.stderr.tail())
		}
	case <-time.After(60 * time.Second):
		c.kill(t)
		t.Fatal("tally did not stop within 60s of SIGTERM")
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.acked) < 1000 {
		t.Fatalf("only %d completions acknowledged over %d rounds; the load did not run", len(l.acked), kills)
	}
	if len(l.other) > 0 {
		t.Errorf("unexpected answers: %v", l.other)
	}
	counts := storedCounts(t, conn, "crash")
	twice := 0
	for id := range l.acked {
		if counts[id] > 1 {
			twice++
		}
	}
	forwarded := map[string]int{}
	for _, ev := range graph.Received() {
		forwarded[ev.EventID]++
	}
	notForwarded, refusedForwarded, forwardedTwice := 0, 0, 0
	for _, n := range forwarded {
		if n > 1 {
			forwardedTwice++
		}
	}
	for id := range l.acked {
		if forwarded[id] == 0 {
			notForwarded++
		}
	}
	for id := range l.refused {
		if forwarded[id] > 0 {
			refusedForwarded++
		}
	}
	t.Logf("%d acknowledged over %d SIGKILLs and one SIGTERM with ClickHouse down; in ClickHouse: %d ids, %d more than once; forwarded: %d ids (%d acknowledged not forwarded, %d sent more than once across the kills); %d answered 503 (%d of them forwarded)",
		len(l.acked), kills, len(counts), twice, len(forwarded), notForwarded, forwardedTwice, len(l.refused), refusedForwarded)
	if twice > 0 {
		t.Errorf("%d acknowledged completions are in ClickHouse more than once", twice)
	}
	if notForwarded > 0 {
		t.Errorf("%d acknowledged matching completions never reached the Graph stand-in", notForwarded)
	}
	if refusedForwarded > 0 {
		t.Errorf("%d completions answered 503 were forwarded", refusedForwarded)
	}
}

// TestFullLogRefusesAndForwardsOnlyWhatItKept fills a small durable log
// while ClickHouse is down, so that some requests are answered 503. Once
// ClickHouse is back, every acknowledged completion is stored and forwarded
// exactly once, and none of the refused ones is forwarded.
func TestFullLogRefusesAndForwardsOnlyWhatItKept(t *testing.T) {
	chtest.DSN(t) // fails under CI=true when ClickHouse is not installed
	chDir := t.TempDir()
	ch, err := chserver.Start(context.Background(), chserver.Config{Dir: chDir})
	if err != nil {
		t.Fatal(err)
	}
	port := ch.Port()
	t.Cleanup(func() { ch.Stop(context.Background()) })
	graph := capitest.Start(capitest.Config{PixelID: "1234567890", AccessToken: graphToken})
	t.Cleanup(graph.Close)
	yaml := fmt.Sprintf("data_dir: %q\nclickhouse: {dsn: %q, database: full}\ndurable_log: {max_bytes: 400000, segment_bytes: 20000}\n",
		t.TempDir(), ch.DSN()) + leadsYAML(graph.URL(), "", "", "")
	srv := startInProcess(t, yaml)

	if err := ch.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Not ready: the public answer says only that; the operators' says why.
	for _, tt := range []struct{ url, want string }{
		{"http://" + srv.Addr() + "/readyz", "not ready"},
		{"http://" + srv.AdminAddr() + "/readyz", "not ready: clickhouse:"},
	} {
		resp, err := http.Get(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.HasPrefix(string(b), tt.want) || (tt.want == "not ready" && string(b) != "not ready") {
			t.Errorf("GET %s with ClickHouse down = %d %q; want 503 %q", tt.url, resp.StatusCode, b, tt.want)
		}
	}
	l := newLoader()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	go func() {
		for ctx.Err() == nil {
			l.mu.Lock()
			enough := len(l.refused) >= 200 && len(l.acked) > 0
			l.mu.Unlock()
			if enough {
				cancel()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	l.run(ctx, "http://"+srv.Addr(), "full", 2, 10)
	cancel()
	if len(l.refused) < 200 || len(l.acked) == 0 {
		t.Fatalf("acknowledged %d, refused %d; want both (the log should have filled)", len(l.acked), len(l.refused))
	}
	if ch, err = chserver.Start(context.Background(), chserver.Config{Dir: chDir, Port: port}); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(context.Background(), ch.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(60 * time.Second)
	var forwarded map[string]int
	for {
		counts := storedCounts(t, conn, "full")
		forwarded = map[string]int{}
		for _, ev := range graph.Received() {
			forwarded[ev.EventID]++
		}
		missing := 0
		for id := range l.acked {
			if counts[id] == 0 || forwarded[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged completions not stored and forwarded within 60s", missing, len(l.acked))
		}
		time.Sleep(100 * time.Millisecond)
	}
	twice, refusedForwarded := 0, 0
	for id, n := range forwarded {
		if n > 1 {
			twice++
		}
		if l.refused[id] {
			refusedForwarded++
		}
	}
	t.Logf("acknowledged %d, answered 503 %d; forwarded %d ids, %d more than once, %d of them refused", len(l.acked), len(l.refused), len(forwarded), twice, refusedForwarded)
	if refusedForwarded > 0 {
		t.Errorf("%d completions answered 503 were forwarded", refusedForwarded)
	}
	if twice > 0 {
		t.Errorf("%d event ids were sent to the Graph stand-in more than once", twice)
	}
	// Forwarded are the acknowledged ids and perhaps some of a request cut
	// when the loader stopped (tally may have taken it just before).
	for id := range forwarded {
		if !l.acked[id] && !l.unknown[id] {
			t.Errorf("forwarded %s, which was never sent or was refused", id)
		}
	}
}

// TestClusterTwoCollectors runs two collectors against a two-replica
// ClickHouse cluster under load, kills one replica and one collector with
// SIGKILL mid-load, brings both back, and then finds every acknowledged
// completion exactly once through the Distributed events table.
func TestClusterTwoCollectors(t *testing.T) {
	cl := chtest.StartCluster(t, 2)
	graph := capitest.Start(capitest.Config{PixelID: "1234567890", AccessToken: graphToken})
	t.Cleanup(graph.Close)
	// Each collector lists both replicas, its own first: the driver moves
	// to the other when one is down.
	dsn := func(first, second int) string {
		return cl.DSN(first) + "," + strings.TrimPrefix(cl.DSN(second), "clickhouse://")
	}
	cfgs := make([]string, 2)
	for i := range cfgs {
		dir := t.TempDir()
		cfgs[i] = filepath.Join(dir, "tally.yaml")
		yaml := fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\ndata_dir: %q\nclickhouse: {dsn: %q, database: tally, cluster: %s}\n",
			filepath.Join(dir, "data"), dsn(i, 1-i), cl.Name) + leadsYAML(graph.URL(), "", "", "")
		if err := os.WriteFile(cfgs[i], []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Both start together: one migrates, the other waits for the lock.
	children := make([]*child, 2)
	var wg sync.WaitGroup
	for i := range children {
		wg.Add(1)
		go func() { defer wg.Done(); children[i] = startChild(t, cfgs[i]) }()
	}
	wg.Wait()
	if children[0] == nil || children[1] == nil {
		t.FailNow() // startChild said why
	}

	l := newLoader()
	ctx, cancel := context.WithCancel(context.Background())
	var loads sync.WaitGroup
	run := func(i int, prefix string) {
		loads.Add(1)
		go func() { defer loads.Done(); l.run(ctx, children[i].addr, prefix, 2, 25) }()
	}
	run(0, "a")
	run(1, "b")
	time.Sleep(1500 * time.Millisecond)
	cl.Kill(1) // a replica dies
	time.Sleep(1500 * time.Millisecond)
	children[1].kill(t) // and a collector
	time.Sleep(time.Second)
	cancel()
	loads.Wait()
	cl.Start(1)
	children[1] = startChild(t, cfgs[1])

	conn, err := store.Open(context.Background(), cl.DSN(0))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Through the Distributed table.
	counts := waitStored(t, conn, "tally", l.acked, time.Now().Add(120*time.Second),
		func() string { return children[0].stderr.tail() + "\n" + children[1].stderr.tail() })
	for _, c := range children {
		c.cmd.Process.Signal(syscall.SIGTERM)
		<-c.exited
	}
	final := map[string]uint64{}
	rows, err := conn.Query(context.Background(), "SELECT event_id, count() FROM tally.events FINAL GROUP BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var n uint64
		rows.Scan(&id, &n)
		final[id] = n
	}
	rows.Close()
	twice, twiceFinal := 0, 0
	for id := range l.acked {
		if counts[id] > 1 {
			twice++
		}
		if final[id] != 1 {
			twiceFinal++
		}
	}
	if len(l.acked) < 1000 {
		t.Fatalf("only %d completions acknowledged; the load did not run", len(l.acked))
	}
	t.Logf("two collectors, two replicas, one replica and one collector killed with SIGKILL: %d acknowledged, %d answered 503; "+
		"through the Distributed table every one present, %d with more than one row before merges, %d not exactly once with FINAL",
		len(l.acked), len(l.refused), twice, twiceFinal)
	if twiceFinal > 0 {
		t.Errorf("%d acknowledged completions are not exactly once in the cluster (FINAL)", twiceFinal)
	}
}

// TestManagedClickHouseRestarted kills tally's managed ClickHouse: tally
// keeps acknowledging into its log, the supervisor brings the server back on
// the same port, and every acknowledged completion reaches it.
func TestManagedClickHouseRestarted(t *testing.T) {
	chtest.DSN(t) // fails under CI=true when ClickHouse is not installed
	yaml := fmt.Sprintf("data_dir: %q\n", t.TempDir()) + leadsYAML("http://127.0.0.1:1", "", "", "")
	srv := startInProcess(t, yaml)
	port := srv.ch.Port()
	first := srv.ch.Current()
	first.Kill()
	l := newLoader()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	l.run(ctx, "http://"+srv.Addr(), "m", 2, 10)
	cancel()
	if len(l.acked) == 0 || len(l.refused) > 0 {
		t.Fatalf("while ClickHouse was down: %d acknowledged, %d refused; want all acknowledged", len(l.acked), len(l.refused))
	}
	select {
	case err := <-srv.Failed():
		t.Fatalf("tally failed: %v", err)
	default:
	}
	deadline := time.Now().Add(90 * time.Second)
	for srv.ch.Current() == first && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if srv.ch.Port() != port {
		t.Errorf("restarted on port %d; want %d", srv.ch.Port(), port)
	}
	conn, err := store.Open(context.Background(), srv.ch.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for {
		counts := storedCounts(t, conn, "tally")
		missing := 0
		for id := range l.acked {
			if counts[id] != 1 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d completions acknowledged while ClickHouse was down are not in it once", missing, len(l.acked))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d completions acknowledged while the managed ClickHouse was down; all stored once after its restart on port %d", len(l.acked), port)
}

// waitStored waits until every acknowledged id is in db's events, failing
// the test at deadline with logs(), and returns the rows per id.
func waitStored(t *testing.T, conn driver.Conn, db string, acked map[string]bool, deadline time.Time, logs func() string) map[string]uint64 {
	t.Helper()
	for {
		counts := storedCounts(t, conn, db)
		missing := 0
		for id := range acked {
			if counts[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return counts
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged completions never reached ClickHouse\n%s", missing, len(acked), logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startInProcess runs a tally from yamlText in this process, on loopback
// ports, stopped when the test ends.
func startInProcess(t *testing.T, yamlText string) *server {
	t.Helper()
	f, probs := config.Parse("test.yaml", []byte(yamlText), func(string) (string, bool) { return "", false })
	if len(probs) > 0 {
		t.Fatalf("config: %v", probs)
	}
	srv, err := startServer(context.Background(), f, serverOptions{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", FlushAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		srv.Close(ctx)
	})
	return srv
}
