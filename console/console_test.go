package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store"
)

// downStore is a ClickHouse that answers nothing.
type downStore struct{}

var errDown = errors.New("dial tcp 127.0.0.1:9000: connection refused")

func (downStore) Rejections(context.Context, int) ([]ingest.Rejection, error) { return nil, errDown }
func (downStore) Truncated(context.Context, time.Time, int) ([]ingest.Completion, error) {
	return nil, errDown
}
func (downStore) EventCounts(context.Context, time.Time) (map[string]store.EventCount, error) {
	return nil, errDown
}
func (downStore) OutcomeCounts(context.Context, time.Time) (map[string]map[string]uint64, error) {
	return nil, errDown
}
func (downStore) Deliveries(context.Context, string, time.Time, int) ([]store.Delivery, error) {
	return nil, errDown
}
func (downStore) MirrorReports(context.Context, []string, time.Time) ([]store.MirrorReport, error) {
	return nil, errDown
}

// With ClickHouse down every page still renders what it has, with a note
// of what it could not read.
func TestPagesSayWhatTheyCouldNotRead(t *testing.T) {
	c := New(Config{
		Store: downStore{},
		Definitions: func() []ingest.Definition {
			return []ingest.Definition{{Name: "form_submitted", Label: "Form submitted"}}
		},
		Rules: func() []Rule {
			return []Rule{{Name: "leads", Events: []string{"form_submitted"}, Destination: "meta", DestinationType: "meta_capi", Enabled: true}}
		},
	})
	for path, want := range map[string]string{
		"/console":              "form_submitted", // the event filter's options
		"/console/rejections":   "Rejected input",
		"/console/events":       "Form submitted",
		"/console/rules":        "leads",
		"/console/destinations": "No destination is configured.",
		"/console/dedup":        "leads",
	} {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d; want 200 with %q:\n%s", path, rec.Code, want, body)
		}
		if path != "/console" && path != "/console/destinations" && !strings.Contains(string(body), "Could not read everything: "+errDown.Error()) {
			t.Errorf("GET %s does not say ClickHouse could not be read:\n%s", path, body)
		}
	}
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest("GET", "/console/assets/console.js", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "EventSource") {
		t.Errorf("GET /console/assets/console.js = %d; want the script", rec.Code)
	}
}
