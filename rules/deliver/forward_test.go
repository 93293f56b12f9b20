package deliver_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/rules/deliver/delivertest"
)

// script is a Sender that answers each request with the next scripted
// Results (the last one repeats) and records when each came.
type script struct {
	mu      sync.Mutex
	answers [][]deliver.Result
	at      []time.Time
	batches [][]string
}

func (s *script) Send(_ context.Context, items []deliver.Item) []deliver.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, time.Now())
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	s.batches = append(s.batches, ids)
	a := s.answers[0]
	if len(s.answers) > 1 {
		s.answers = s.answers[1:]
	}
	if len(a) == 1 && len(items) > 1 {
		return deliver.Same(len(items), a[0])
	}
	return a
}

func start(t *testing.T, s *script, horizon time.Duration) (*deliver.Forwarder, *delivertest.Log) {
	l := &delivertest.Log{}
	d := deliver.Destination{Name: "d", Type: "test", Sender: s, MaxBatch: 10}
	if horizon > 0 {
		d.Horizon = func(deliver.Item) time.Duration { return horizon }
	}
	f, err := deliver.NewForwarder(deliver.Config{Dir: t.TempDir()}, []deliver.Destination{d}, l, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return f, l
}

func enqueue(t *testing.T, f *deliver.Forwarder, ids ...string) {
	for _, id := range ids {
		if err := f.Enqueue(context.Background(), "d", deliver.Origin{Rule: "r", Source: "s"},
			deliver.Item{ID: id, Name: "n", Time: time.Now(), Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
}

// Per-item results: each item is settled by its own class, a Drop keeps
// the status its sender names, and Retry-After holds the retry back.
func TestPerItemResultsAndRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{answers: [][]deliver.Result{
			{{Class: deliver.Sent, TraceID: "t1"}, {Class: deliver.Drop, Status: "skipped_no_contact"}, {Class: deliver.Retry, RetryAfter: time.Hour}},
			{{Class: deliver.Sent}},
		}}
		f, l := start(t, s, 0)
		enqueue(t, f, "a", "b", "c")
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if h := f.Health()[0]; h.State != deliver.StateRetrying || h.Backlog != 1 {
			t.Errorf("Health after a retry = %+v; want retrying with one item", h)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got, want := l.Outcomes(), []string{"a:sent/1", "b:skipped_no_contact/1", "c:retrying/1", "c:sent/2"}; !slices.Equal(got, want) {
			t.Errorf("deliveries = %q; want %q", got, want)
		}
		if d := s.at[1].Sub(s.at[0]); d < time.Hour {
			t.Errorf("retried after %v; want no sooner than Retry-After's hour", d)
		}
		if h := f.Health()[0]; h.State != deliver.StateOK || h.Backlog != 0 || h.LastSent.IsZero() {
			t.Errorf("Health after delivery = %+v; want ok, empty, with a last send", h)
		}
	})
}

// An item past its destination's horizon expires instead of being sent,
// and retries stop before the horizon.
func TestHorizon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{answers: [][]deliver.Result{{{Class: deliver.Retry, Message: "busy"}}}}
		f, l := start(t, s, 10*time.Minute)
		enqueue(t, f, "a")
		time.Sleep(time.Hour)
		synctest.Wait()
		out := l.Outcomes()
		if len(out) < 2 || out[len(out)-1] != fmt.Sprintf("a:expired/%d", len(out)) {
			t.Errorf("deliveries = %q; want retries ending expired", out)
		}
		for _, at := range s.at {
			if at.Sub(s.at[0]) >= 10*time.Minute {
				t.Errorf("a request %v after the first; want none past the 10-minute horizon", at.Sub(s.at[0]))
			}
		}
	})
}

// A sender that answers the wrong number of results is retried, not
// trusted.
func TestWrongResultCountRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{answers: [][]deliver.Result{{}, {{Class: deliver.Sent}}}}
		f, l := start(t, s, 0)
		enqueue(t, f, "a")
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := l.Outcomes(); !slices.Equal(got, []string{"a:retrying/1", "a:sent/2"}) {
			t.Errorf("deliveries = %q; want retrying, then sent", got)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "120": 2 * time.Minute, "-1": 0, "Sat, 28 Nov 2026 12:05:00 GMT": 5 * time.Minute, "Sat, 28 Nov 2026 11:00:00 GMT": 0, "soon": 0,
	} {
		if got := deliver.RetryAfter(in, now); got != want {
			t.Errorf("RetryAfter(%q) = %v; want %v", in, got, want)
		}
	}
}
