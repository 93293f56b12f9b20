package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// waitStored waits until the tally whose metrics are at url has stored in
// ClickHouse every completion it accepted (tally_store_rows_written_total
// for events reaches the sum of tally_completions_accepted_total), so the
// next measurement does not share the machine with its writer. It gives up
// after limit.
func waitStored(ctx context.Context, url string, limit time.Duration, out io.Writer) error {
	start := time.Now()
	for {
		accepted, written, err := storedCounts(ctx, url)
		if err != nil {
			return err
		}
		if written >= accepted {
			fmt.Fprintf(out, "tally has stored all %.0f accepted completions (waited %.1fs)\n", accepted, time.Since(start).Seconds())
			return nil
		}
		if time.Since(start) > limit {
			return fmt.Errorf("tally still had %.0f of %.0f accepted completions to store after %v", accepted-written, accepted, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// storedCounts reads the completions accepted and the events rows written
// from tally's /metrics.
func storedCounts(ctx context.Context, url string) (accepted, written float64, err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("read tally's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("read tally's metrics at %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("parse tally's metrics: %w", err)
	}
	if f, ok := families["tally_completions_accepted_total"]; ok {
		for _, m := range f.GetMetric() {
			accepted += m.GetCounter().GetValue()
		}
	}
	f, ok := families["tally_store_rows_written_total"]
	if !ok {
		return 0, 0, fmt.Errorf("%s has no tally_store_rows_written_total", url)
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "table" && l.GetValue() == "events" {
				written += m.GetCounter().GetValue()
			}
		}
	}
	return accepted, written, nil
}
