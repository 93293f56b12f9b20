package ingest

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// Observe sees what was made durable: new completions only, and nothing
// of a request the Sink refused.
func TestPipelineObservesWhatIsDurable(t *testing.T) {
	sink := &fakeSink{}
	var seen []string
	p := NewPipeline(PipelineConfig{Sink: sink, Dedup: &mapDedup{}, Observe: func(cs []Completion) {
		for _, c := range cs {
			seen = append(seen, c.EventID)
		}
	}})
	accept := func(ids ...string) error {
		cs := make([]Completion, len(ids))
		for i, id := range ids {
			cs[i] = Completion{EventName: "e", EventID: id}
		}
		return p.Accept(context.Background(), cs)
	}
	if err := accept("a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := accept("a", "c"); err != nil { // a is a duplicate
		t.Fatal(err)
	}
	sink.err = ErrFull
	if err := accept("d"); !errors.Is(err, ErrFull) {
		t.Fatalf("Accept with a full sink = %v; want ErrFull", err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(seen, want) {
		t.Errorf("observed %q; want %q", seen, want)
	}
}
