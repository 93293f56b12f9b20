package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitStored returns once the events rows written reach the completions
// accepted (summed over sources; other tables' rows do not count), and not
// before.
func TestWaitStored(t *testing.T) {
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `# TYPE tally_completions_accepted_total counter
tally_completions_accepted_total{source="api"} 700
tally_completions_accepted_total{source="browser"} 300
# TYPE tally_store_rows_written_total counter
tally_store_rows_written_total{table="events"} %d
tally_store_rows_written_total{table="rejections"} 5000
`, written.Load())
	}))
	defer srv.Close()
	written.Store(400)
	var out strings.Builder
	if err := waitStored(context.Background(), srv.URL, 300*time.Millisecond, &out); err == nil || !strings.Contains(err.Error(), "600 of 1000") {
		t.Errorf("with 400 of 1,000 stored: %v; want a timeout naming 600 of 1000 left", err)
	}
	go func() { time.Sleep(300 * time.Millisecond); written.Store(1000) }()
	if err := waitStored(context.Background(), srv.URL, 10*time.Second, &out); err != nil {
		t.Errorf("once all are stored: %v", err)
	}
}
