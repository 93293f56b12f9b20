package console

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store"
)

func completion(id string, debug bool) ingest.Completion {
	return ingest.Completion{EventID: id, EventName: "form_submitted", Site: "shop", Source: ingest.SourceBrowser, Debug: debug,
		Client: ingest.Client{IP: "203.0.113.77"}, Props: []ingest.Prop{{Name: "form_id", Value: "contact"}}}
}

// entryOf decodes a completion frame.
func entryOf(t *testing.T, frame []byte) Entry {
	t.Helper()
	data, ok := strings.CutPrefix(string(frame), "event: completion\ndata: ")
	if !ok || !strings.HasSuffix(data, "\n\n") {
		t.Fatalf("frame %q is not one completion event", frame)
	}
	var e Entry
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestLiveStreamsToWatchers(t *testing.T) {
	l := NewLive(LiveConfig{
		Matching:  func(c *ingest.Completion) []string { return []string{"rule_for_" + c.EventID} },
		StorageIP: func(string) string { return "203.0.113.0" },
	})
	// Nobody watches: nothing is rendered, nothing kept.
	l.Observe([]ingest.Completion{completion("early", false)})
	frames, stop := l.Subscribe()
	defer stop()
	if n := len(frames); n != 0 {
		t.Fatalf("a new watcher got %d frames from before it watched; want 0", n)
	}
	l.Observe([]ingest.Completion{completion("a", false), completion("b", false)})
	for _, want := range []string{"a", "b"} {
		e := entryOf(t, <-frames)
		if e.EventID != want || e.Props["form_id"] != "contact" || e.IP != "203.0.113.0" || len(e.Rules) != 1 || e.Rules[0] != "rule_for_"+want {
			t.Errorf("entry %+v; want %s with its props, the stored IP and its rule", e, want)
		}
	}
	stop()
	stop() // a second stop is harmless
	if n := l.watching.Load(); n != 0 {
		t.Errorf("%d watchers after stop; want 0", n)
	}
}

func TestLiveKeepsDebugCompletionsForTheNextWatcher(t *testing.T) {
	l := NewLive(LiveConfig{})
	for i := 0; i < debugKeep+5; i++ {
		l.Observe([]ingest.Completion{completion("d", true), completion("plain", false)})
	}
	frames, stop := l.Subscribe()
	defer stop()
	if n := len(frames); n != debugKeep {
		t.Fatalf("a new watcher got %d kept frames; want the newest %d debug ones", n, debugKeep)
	}
	if e := entryOf(t, <-frames); e.EventID != "d" || !e.Debug {
		t.Errorf("kept frame %+v; want the debug completion", e)
	}
}

// A watcher that does not read loses frames, never blocks Observe, and is
// told how many it lost once it reads again.
func TestLiveDropsForASlowWatcher(t *testing.T) {
	l := NewLive(LiveConfig{})
	frames, stop := l.Subscribe()
	defer stop()
	for i := 0; i < subscriberBuffer+10; i++ {
		l.Observe([]ingest.Completion{completion("x", false)})
	}
	for range subscriberBuffer {
		<-frames
	}
	l.Observe([]ingest.Completion{completion("after", false)})
	if f := string(<-frames); f != "event: dropped\ndata: 10\n\n" {
		t.Errorf("after catching up got %q; want a note of 10 dropped", f)
	}
	if e := entryOf(t, <-frames); e.EventID != "after" {
		t.Errorf("then %+v; want the new completion", e)
	}
}

func BenchmarkObserveUnwatched(b *testing.B) {
	l := NewLive(LiveConfig{})
	cs := []ingest.Completion{completion("a", false), completion("b", false)}
	b.ReportAllocs()
	for b.Loop() {
		l.Observe(cs)
	}
}

func TestLiveRecordsOutcomesForWatchersOnly(t *testing.T) {
	l := NewLive(LiveConfig{})
	l.Record([]store.Delivery{{EventID: "unwatched", Rule: "lead", Status: "sent"}})
	frames, stop := l.Subscribe()
	defer stop()
	l.Record([]store.Delivery{{EventID: "e1", Rule: "lead", Destination: "meta", Status: "sent", HTTPStatus: 200, TraceID: "AbC"}})
	want := `event: delivery
data: {"event_id":"e1","rule":"lead","destination":"meta","status":"sent","http_status":200,"trace_id":"AbC"}

`
	if got := string(<-frames); got != want {
		t.Errorf("frame %q; want %q", got, want)
	}
	if n := len(frames); n != 0 {
		t.Errorf("%d more frames; want none (the outcome before watching is not kept)", n)
	}
}

func TestLiveForgetsAnErasedPersonsDebugCompletions(t *testing.T) {
	l := NewLive(LiveConfig{})
	ada, bob := completion("ada-1", true), completion("bob-1", true)
	ada.Identity.Email, bob.VisitorID = "ada@example.com", "bob-visitor"
	l.Observe([]ingest.Completion{ada, bob})
	if n := l.Forget(func(c *ingest.Completion) bool { return c.Identity.Email == "ada@example.com" }); n != 1 {
		t.Errorf("Forget dropped %d; want 1", n)
	}
	frames, stop := l.Subscribe()
	defer stop()
	if n := len(frames); n != 1 {
		t.Fatalf("a new watcher got %d kept frames; want bob's only", n)
	}
	if e := entryOf(t, <-frames); e.EventID != "bob-1" {
		t.Errorf("kept %s; want bob-1", e.EventID)
	}
}
