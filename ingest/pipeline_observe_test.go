package ingest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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

// The accepted counter counts each completion under its own source, and
// the truncated counter each completion with something cut.
func TestPipelineCountsBySource(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := NewPipeline(PipelineConfig{Sink: &fakeSink{}, Registerer: reg})
	cs := []Completion{{EventID: "1", Source: SourceAPI}, {EventID: "2", Source: SourceAPI, Truncated: []string{"x: cut"}},
		{EventID: "3", Source: SourceImport}, {EventID: "4", Source: SourceAPI}, {EventID: "5", Source: SourceImport, Truncated: []string{"y: cut"}}}
	if err := p.Accept(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			got[name] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"tally_completions_accepted_total{source=api}": 3, "tally_completions_accepted_total{source=import}": 2,
		"tally_completions_truncated_total": 2, "tally_completions_duplicate_total": 0}
	if !maps.Equal(got, want) {
		t.Errorf("counters %v; want %v", got, want)
	}
}
