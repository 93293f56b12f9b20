package capi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/capi/capitest"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/rules/deliver/delivertest"
	"github.com/tally-analytics/tally/store/spool"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

type env struct {
	srv *capitest.Server
	fwd *deliver.Forwarder
	log *delivertest.Log
}

// start builds a forwarder whose one destination, "meta", talks to srv
// in-process (so it runs inside a synctest bubble).
func start(t *testing.T, dir string, srv *capitest.Server, cfg deliver.Config) env {
	t.Helper()
	client, err := capi.NewClient(capi.ClientConfig{GraphURL: "http://graph.test", PixelID: testPixel, AccessToken: testToken},
		&http.Client{Transport: srv.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dir = dir
	l := &delivertest.Log{}
	f, err := deliver.NewForwarder(cfg, []deliver.Destination{capi.Destination("meta", client)}, l, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return env{srv: srv, fwd: f, log: l}
}

func newStandIn() *capitest.Server {
	return capitest.New(capitest.Config{PixelID: testPixel, AccessToken: testToken})
}

func (e env) enqueue(t *testing.T, evs ...capi.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := e.fwd.Enqueue(context.Background(), "meta", deliver.Origin{Rule: "lead_rule", Source: "form_submitted"}, capi.Item(ev)); err != nil {
			t.Fatalf("Enqueue(%s) = %v", ev.EventID, err)
		}
	}
}

func (e env) close(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.fwd.Close(ctx); err != nil {
		t.Errorf("Close = %v", err)
	}
}

func receivedIDs(srv *capitest.Server) []string {
	var ids []string
	for _, ev := range srv.Received() {
		ids = append(ids, ev.EventID)
	}
	return ids
}

func want(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q; want %q", what, got, want)
	}
}

func TestForwarderRetries5xxThenSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		var times []time.Time
		srv.OnRequest(func() { times = append(times, time.Now()) })
		srv.FailNext(2, capitest.Fail5xx)
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		now := time.Now()
		e.enqueue(t, websiteEvent("e1", now), websiteEvent("e2", now), leadsEvent("e3", now))
		e.enqueue(t, websiteEvent("e1", now)) // a repeat is stored once

		time.Sleep(time.Minute)
		synctest.Wait()

		want(t, "received", receivedIDs(srv), []string{"e1", "e2", "e3"})
		want(t, "deliveries", e.log.Outcomes(), []string{
			"e1:retrying/1", "e2:retrying/1", "e3:retrying/1",
			"e1:retrying/2", "e2:retrying/2", "e3:retrying/2",
			"e1:sent/3", "e2:sent/3", "e3:sent/3",
		})
		if len(times) != 3 {
			t.Fatalf("%d requests; want 3", len(times))
		}
		// Backoff 5s·2^(n-1), jittered over its upper half, plus up to the 1s
		// linger of a partial batch.
		if d := times[1].Sub(times[0]); d < 2500*time.Millisecond || d > 6*time.Second {
			t.Errorf("first retry after %v; want 2.5s..6s", d)
		}
		if d := times[2].Sub(times[1]); d < 5*time.Second || d > 11*time.Second {
			t.Errorf("second retry after %v; want 5s..11s", d)
		}
		ds := e.log.All()
		if ds[0].HTTPStatus != 503 || ds[0].TraceID == "" || !strings.Contains(ds[0].Message, "code 2") {
			t.Errorf("retrying delivery = %+v; want HTTP 503, a fbtrace_id and Meta's code", ds[0])
		}
		if last := ds[8]; last.HTTPStatus != 200 || last.TraceID == "" || last.Rule != "lead_rule" || last.Destination != "meta" || last.ForwardedName != "Marketing Qualified Lead" {
			t.Errorf("sent delivery = %+v; want HTTP 200 with trace, rule, destination and name", last)
		}
	})
}

func TestForwarderHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		var times []time.Time
		srv.OnRequest(func() { times = append(times, time.Now()) })
		srv.FailNext(1, capitest.FailThrottle)
		srv.SetRetryAfter(2 * time.Minute)
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		e.enqueue(t, websiteEvent("e1", time.Now()))

		time.Sleep(time.Hour)
		synctest.Wait()

		want(t, "received", receivedIDs(srv), []string{"e1"})
		want(t, "deliveries", e.log.Outcomes(), []string{"e1:retrying/1", "e1:sent/2"})
		if len(times) != 2 {
			t.Fatalf("%d requests; want 2", len(times))
		}
		if d := times[1].Sub(times[0]); d < 2*time.Minute {
			t.Errorf("retried after %v; want at least Retry-After's 2m", d)
		}
		if d := e.log.All()[0]; d.HTTPStatus != 429 {
			t.Errorf("throttled delivery HTTP status = %d; want 429", d.HTTPStatus)
		}
	})
}

func TestForwarderPermanentErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		failure capitest.Failure
		status  int
	}{
		{"invalid parameter", capitest.FailInvalidParameter, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newStandIn()
				srv.FailNext(1, tt.failure)
				e := start(t, t.TempDir(), srv, deliver.Config{})
				defer e.close(t)
				e.enqueue(t, websiteEvent("e1", time.Now()))

				time.Sleep(24 * time.Hour)
				synctest.Wait()

				if n := len(srv.Requests()); n != 1 {
					t.Errorf("%d requests; want 1 (no retry)", n)
				}
				want(t, "deliveries", e.log.Outcomes(), []string{"e1:failed/1"})
				if d := e.log.All()[0]; d.HTTPStatus != tt.status || d.Message == "" {
					t.Errorf("delivery = %+v; want HTTP %d and Meta's message", d, tt.status)
				}
			})
		})
	}
}

// An invalid token (code 190) is no event's fault: the destination pauses
// and keeps every event, however many, without counting attempts; a reload
// with a working token delivers them all, each once.
func TestForwarderPausesOnInvalidTokenAndResumesOnReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		srv.FailNext(1_000_000, capitest.FailInvalidToken)
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		const n = 1993
		var evs []capi.Event
		for i := range n {
			evs = append(evs, websiteEvent(fmt.Sprintf("p%04d", i), time.Now()))
		}
		e.enqueue(t, evs...)

		time.Sleep(2 * time.Hour)
		synctest.Wait()

		for _, d := range e.log.All() {
			if d.Status != deliver.StatusPaused || d.Attempts != 0 {
				t.Fatalf("delivery %+v; want only paused rows, no attempt counted", d)
			}
		}
		// One paused row per event of the refused request, not one per probe.
		if n, first := len(e.log.All()), len(srv.Requests()[0].Events); n != first {
			t.Errorf("%d paused rows after 2h of probes; want %d, for the first refused request only", n, first)
		}
		h := e.fwd.Health()
		if len(h) != 1 || h[0].State != deliver.StatePaused || h[0].Backlog != n || !strings.Contains(h[0].Reason, "code 190") {
			t.Fatalf("Health = %+v; want meta paused for code 190 with all %d events kept", h, n)
		}
		// Paused, tally probes once per MaxBackoff (15m), not once per event.
		if got := len(srv.Requests()); got < 2 || got > 2*(2*60/15+1) {
			t.Errorf("%d requests in 2h while paused; want one probe batch per 15 minutes", got)
		}

		srv.ClearFailures()
		client, err := capi.NewClient(capi.ClientConfig{GraphURL: "http://graph.test", PixelID: testPixel, AccessToken: testToken},
			&http.Client{Transport: srv.Transport()})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.fwd.SetDestinations([]deliver.Destination{capi.Destination("meta", client)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()

		got := receivedIDs(srv)
		if len(got) != n {
			t.Fatalf("received %d events after the reload; want all %d", len(got), n)
		}
		slices.Sort(got)
		if got = slices.Compact(got); len(got) != n {
			t.Errorf("received %d distinct events; want each of %d once", len(got), n)
		}
		if h := e.fwd.Health(); h[0].State != deliver.StateOK || h[0].Backlog != 0 {
			t.Errorf("Health after reload = %+v; want ok with an empty outbox", h)
		}
	})
}

func TestForwarderBisectsRejectedBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Meta's clock runs two days ahead of tally's, so the one event that is
		// six days old by tally's clock is eight days old by Meta's: only a
		// real request can find it, and it must not sink the other seven.
		srv := capitest.New(capitest.Config{PixelID: testPixel, AccessToken: testToken,
			Now: func() time.Time { return time.Now().Add(48 * time.Hour) }})
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		now := time.Now()
		var ids []string
		for i := range 8 {
			at := now.Add(-time.Hour)
			if i == 5 {
				at = now.Add(-6 * 24 * time.Hour)
			}
			id := fmt.Sprintf("e%d", i)
			ids = append(ids, id)
			e.enqueue(t, leadsEvent(id, at))
		}
		time.Sleep(time.Minute)
		synctest.Wait()

		got := receivedIDs(srv)
		slices.Sort(got)
		want(t, "received", got, slices.Delete(slices.Clone(ids), 5, 6))
		var failed []deliver.Delivery
		for _, d := range e.log.All() {
			if d.Status != deliver.StatusSent {
				failed = append(failed, d)
			}
		}
		if len(failed) != 1 || failed[0].EventID != "e5" || failed[0].Status != deliver.StatusFailed || !strings.Contains(failed[0].Message, "2804003") {
			t.Errorf("non-sent deliveries = %+v; want only e5 failed with subcode 2804003", failed)
		}
		// 8 → 4+4 → 2+2 → 1+1: 1 + 2 + 2 + 2 requests.
		if n := len(srv.Requests()); n != 7 {
			t.Errorf("%d requests; want 7 for one bisection", n)
		}
	})
}

func TestForwarderExpiresOldEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		now := time.Now()
		stale := websiteEvent("old", now.Add(-8*24*time.Hour))
		invalid := websiteEvent("no-ua", now)
		invalid.UserData.ClientUserAgent = ""
		e.enqueue(t, websiteEvent("new1", now), stale, invalid, websiteEvent("new2", now))

		time.Sleep(time.Minute)
		synctest.Wait()

		want(t, "received", receivedIDs(srv), []string{"new1", "new2"})
		if n := len(srv.Requests()); n != 1 {
			t.Errorf("%d requests; want 1", n)
		}
		got := e.log.Outcomes()
		slices.Sort(got)
		want(t, "deliveries", got, []string{"new1:sent/1", "new2:sent/1", "no-ua:failed/0", "old:expired/0"})
	})
}

func TestForwarderWaitsForFutureEventTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		var times []time.Time
		srv.OnRequest(func() { times = append(times, time.Now()) })
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		// A browser clock three minutes fast (ingest accepts up to five).
		at := time.Now().Add(3 * time.Minute)
		e.enqueue(t, websiteEvent("fast", at), websiteEvent("far", time.Now().Add(2*time.Hour)))

		time.Sleep(time.Hour)
		synctest.Wait()

		got := srv.Received()
		if len(got) != 1 || got[0].EventID != "fast" || got[0].EventTime != at.Unix() {
			t.Fatalf("received = %+v; want fast with its own event_time", got)
		}
		if d := times[0].Sub(at); d < -capi.MaxEventSkew || d > 0 {
			t.Errorf("sent %v after its event_time; want within the minute before it", d)
		}
		out := e.log.Outcomes()
		slices.Sort(out)
		want(t, "deliveries", out, []string{"far:failed/0", "fast:sent/1"})
	})
}

func TestForwarderStopsRetryingBeforeSevenDays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		var times []time.Time
		srv.OnRequest(func() { times = append(times, time.Now()) })
		srv.FailNext(100, capitest.Fail5xx)
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		maxAge := capi.MaxEventAge - time.Hour // the default
		// Ninety seconds of retrying left.
		e.enqueue(t, websiteEvent("late", time.Now().Add(-maxAge+90*time.Second)))

		time.Sleep(time.Hour)
		synctest.Wait()

		for i, r := range srv.Requests() {
			for _, ev := range r.Events {
				if age := times[i].Sub(time.Unix(ev.EventTime, 0)); age >= maxAge {
					t.Errorf("request %d carried an event %v old; want younger than %v", i, age, maxAge)
				}
			}
		}
		ds := e.log.All()
		if len(ds) < 2 || ds[len(ds)-1].Status != deliver.StatusExpired {
			t.Fatalf("deliveries = %q; want retries ending expired", e.log.Outcomes())
		}
		for _, d := range ds[:len(ds)-1] {
			if d.Status != deliver.StatusRetrying {
				t.Errorf("delivery %+v; want retrying before the final expired", d)
			}
		}
		if n := len(srv.Requests()); n != len(ds) {
			t.Errorf("%d requests for %d outcomes; want one each", n, len(ds))
		}
	})
}

func TestForwarderCloseDrainsAndHardStopKeepsEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		srv := newStandIn()
		e := start(t, dir, srv, deliver.Config{})
		defer e.close(t)
		e.enqueue(t, websiteEvent("d1", time.Now()), websiteEvent("d2", time.Now()))
		e.close(t) // drains without waiting for the linger
		want(t, "received after drain", receivedIDs(srv), []string{"d1", "d2"})
		if err := e.fwd.Enqueue(context.Background(), "meta", deliver.Origin{Rule: "r"}, capi.Item(websiteEvent("x", time.Now()))); !errors.Is(err, deliver.ErrClosed) {
			t.Errorf("Enqueue after Close = %v; want ErrClosed", err)
		}

		// Meta hangs; Close's deadline aborts the request and keeps the
		// events, which a restarted forwarder sends once, with the same ids.
		srv2 := newStandIn()
		srv2.FailNext(1, capitest.FailHang)
		e2 := start(t, dir, srv2, deliver.Config{})
		defer e2.close(t)
		e2.enqueue(t, websiteEvent("h1", time.Now()), websiteEvent("h2", time.Now()))
		time.Sleep(2 * time.Second) // the request is in flight
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := e2.fwd.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with Meta hanging = %v; want deadline exceeded", err)
		}
		cancel()
		if len(e2.log.All()) != 0 {
			t.Errorf("deliveries = %q; want none for an aborted request", e2.log.Outcomes())
		}

		e3 := start(t, dir, srv2, deliver.Config{})
		defer e3.close(t)
		time.Sleep(time.Minute)
		synctest.Wait()
		want(t, "received after restart", receivedIDs(srv2), []string{"h1", "h2"})
		want(t, "deliveries after restart", e3.log.Outcomes(), []string{"h1:sent/1", "h2:sent/1"})
	})
}

// TestForwarderCrashChild is the child side of TestForwarderSurvivesKill.
func TestForwarderCrashChild(t *testing.T) {
	dir, url := os.Getenv("TALLY_CAPI_CRASH_DIR"), os.Getenv("TALLY_CAPI_CRASH_URL")
	if dir == "" {
		t.Skip("child process of TestForwarderSurvivesKill")
	}
	client, err := capi.NewClient(capi.ClientConfig{GraphURL: url, PixelID: testPixel, AccessToken: testToken}, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	f, err := deliver.NewForwarder(deliver.Config{Dir: dir, Linger: 10 * time.Millisecond},
		[]deliver.Destination{capi.Destination("meta", client)}, &delivertest.Log{}, quiet(), nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := range 50 {
		id := fmt.Sprintf("crash-%02d", i)
		if err := f.Enqueue(context.Background(), "meta", deliver.Origin{Rule: "r"}, capi.Item(websiteEvent(id, time.Now()))); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("ack", id)
	}
	select {}
}

func TestForwarderSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	srv := capitest.Start(capitest.Config{PixelID: testPixel, AccessToken: testToken})
	defer srv.Close()
	// While the child lives, Meta accepts nothing: every request hangs.
	srv.FailNext(1000, capitest.FailHang)
	inFlight := make(chan struct{}, 1000)
	srv.OnRequest(func() { inFlight <- struct{}{} })

	cmd := exec.Command(os.Args[0], "-test.run=^TestForwarderCrashChild$")
	cmd.Env = append(os.Environ(), "TALLY_CAPI_CRASH_DIR="+dir, "TALLY_CAPI_CRASH_URL="+srv.URL())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(stdout)
	for len(acked) < 50 && sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatalf("child: %s", line)
		}
		if id, ok := strings.CutPrefix(line, "ack "); ok {
			acked = append(acked, id)
		}
	}
	if len(acked) != 50 {
		t.Fatalf("child acknowledged %d events; want 50", len(acked))
	}
	select {
	case <-inFlight: // the child has a request open when it dies
	case <-time.After(30 * time.Second):
		t.Fatal("child sent no request within 30s")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, stdout)
	_ = cmd.Wait()
	srv.ClearFailures()
	srv.OnRequest(nil)

	client, err := capi.NewClient(capi.ClientConfig{GraphURL: srv.URL(), PixelID: testPixel, AccessToken: testToken}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &delivertest.Log{Sent: make(chan struct{}, 100)}
	f, err := deliver.NewForwarder(deliver.Config{Dir: dir, Linger: 10 * time.Millisecond},
		[]deliver.Destination{capi.Destination("meta", client)}, l, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for range 50 {
		select {
		case <-l.Sent:
		case <-timeout:
			t.Fatalf("after restart %d of 50 events sent within 30s", len(srv.Received()))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := receivedIDs(srv)
	slices.Sort(got)
	want(t, "received after restart (each once, same event_id)", got, acked)

	sp, err := spool.Open(spool.Config{Path: filepath.Join(dir, "meta.spool")}, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close(context.Background())
	if n, _ := sp.Len(); n != 0 {
		t.Errorf("spool holds %d items after delivery; want 0", n)
	}
}

func TestForwarderBacklogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		srv.FailNext(1000, capitest.Fail5xx)
		e := start(t, t.TempDir(), srv, deliver.Config{SpoolMaxItems: 10})
		defer e.close(t)
		now := time.Now()
		for i := range 8 {
			e.enqueue(t, websiteEvent(fmt.Sprintf("b%d", i), now))
		}
		if got := e.fwd.Backlogged(0.9); len(got) != 0 {
			t.Errorf("Backlogged(0.9) with 8 of 10 = %v; want none", got)
		}
		e.enqueue(t, websiteEvent("b8", now))
		if got := e.fwd.Backlogged(0.9); !slices.Equal(got, []string{"meta"}) {
			t.Errorf("Backlogged(0.9) with 9 of 10 = %v; want [meta]", got)
		}
	})
}

func TestDeliveryNamesTheSourceEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		e.enqueue(t, websiteEvent("s1", time.Now()))
		time.Sleep(time.Minute)
		synctest.Wait()
		ds := e.log.All()
		if len(ds) != 1 || ds[0].Status != deliver.StatusSent || ds[0].SourceEvent != "form_submitted" || ds[0].Rule != "lead_rule" ||
			ds[0].QueuedAt.IsZero() || ds[0].QueuedAt.After(ds[0].At) {
			t.Errorf("deliveries = %+v; want one sent, from form_submitted by lead_rule, queued before it was sent", ds)
		}
	})
}

// Each outcome row keeps the event as sent and the destination's answer.
func TestDeliveriesKeepPayloadAndAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newStandIn()
		srv.FailNext(1, capitest.Fail5xx)
		e := start(t, t.TempDir(), srv, deliver.Config{})
		defer e.close(t)
		ev := websiteEvent("e1", time.Now())
		e.enqueue(t, ev)
		time.Sleep(time.Minute)
		synctest.Wait()
		ds := e.log.All()
		if len(ds) != 2 {
			t.Fatalf("deliveries = %v; want retrying then sent", e.log.Outcomes())
		}
		sent, _ := json.Marshal(ev)
		for _, d := range ds {
			if d.Payload != string(sent) {
				t.Errorf("%s payload = %s; want the event as sent %s", d.Status, d.Payload, sent)
			}
		}
		if ds[0].Status != deliver.StatusRetrying || !strings.Contains(ds[0].Response, `"error"`) {
			t.Errorf("retrying row answer = %q; want Meta's error envelope", ds[0].Response)
		}
		if ds[1].Status != deliver.StatusSent || !strings.Contains(ds[1].Response, `"events_received":1`) {
			t.Errorf("sent row answer = %q; want Meta's answer with events_received", ds[1].Response)
		}
	})
}
