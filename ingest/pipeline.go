package ingest

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// PipelineConfig is what the acceptance pipeline needs from main.
type PipelineConfig struct {
	// Sink makes accepted completions durable (tally's durable log). Once
	// Write returns nil the completions are acknowledged.
	Sink   Sink
	Dedup  Deduper    // may be nil: every completion is new
	Enrich EnrichFunc // may be nil
	// Observe, when set, sees each request's new completions once they are
	// durable (the console's live stream). It must be quick and must not
	// keep cs, which the caller reuses.
	Observe func(cs []Completion)

	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// Pipeline is the one way a completion is accepted, whichever path it came
// by (the API, the snippet's /e, a CSV import, a replay): first-wins dedup
// by (event name, event id), enrichment, then one Sink.Write for the whole
// request. When the Sink refuses (ErrFull) nothing of the request is kept
// and its dedup marks are undone, so the client's retry is accepted as new.
// It holds no completions itself and starts no goroutines.
type Pipeline struct {
	cfg PipelineConfig

	accepted   *prometheus.CounterVec
	truncated  prometheus.Counter
	duplicates prometheus.Counter
}

// NewPipeline builds the pipeline and registers its metrics (when
// cfg.Registerer is set).
func NewPipeline(cfg PipelineConfig) *Pipeline {
	p := &Pipeline{cfg: cfg,
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_completions_accepted_total", Help: "Completions accepted, by source.",
		}, []string{"source"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_completions_truncated_total", Help: "Completions stored with a value cut or a property dropped.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_completions_duplicate_total", Help: "Completions acknowledged but not stored again (event id seen before).",
		}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(p.accepted, p.truncated, p.duplicates)
	}
	return p
}

// Accept runs cs through dedup, enrichment and the Sink. It returns nil once
// the new ones are durable (duplicates are acknowledged without being
// stored), ErrFull (wrapped) when the Sink cannot take them now, or the
// Sink's error. cs is modified in place (duplicates removed, the rest
// enriched): the caller must not read it afterwards.
func (p *Pipeline) Accept(ctx context.Context, cs []Completion) error {
	// Duplicates are dropped by compacting cs in place: no copy of the
	// completions when there are none.
	fresh := cs[:0]
	for i := range cs {
		if p.cfg.Dedup != nil && !p.cfg.Dedup.FirstSeen(cs[i].EventName, cs[i].EventID) {
			p.duplicates.Inc()
			continue
		}
		if len(fresh) != i {
			cs[len(fresh)] = cs[i]
		}
		fresh = fresh[:len(fresh)+1]
	}
	if len(fresh) == 0 {
		return nil
	}
	if p.cfg.Enrich != nil {
		for i := range fresh {
			p.cfg.Enrich(&fresh[i])
		}
	}
	if err := p.cfg.Sink.Write(ctx, fresh); err != nil {
		if p.cfg.Dedup != nil {
			for i := range fresh {
				p.cfg.Dedup.Forget(fresh[i].EventName, fresh[i].EventID)
			}
		}
		return err
	}
	// Counted by runs of one source (a request's completions share theirs),
	// not a label lookup per completion.
	for i := 0; i < len(fresh); {
		j := i + 1
		for j < len(fresh) && fresh[j].Source == fresh[i].Source {
			j++
		}
		p.accepted.WithLabelValues(string(fresh[i].Source)).Add(float64(j - i))
		for k := i; k < j; k++ {
			if len(fresh[k].Truncated) > 0 {
				p.truncated.Inc()
			}
		}
		i = j
	}
	if p.cfg.Observe != nil {
		p.cfg.Observe(fresh)
	}
	return nil
}
