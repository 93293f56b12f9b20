package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// fakeSink keeps what it is given, or refuses with err.
type fakeSink struct {
	mu  sync.Mutex
	got []Completion
	err error
}

func (s *fakeSink) Write(_ context.Context, cs []Completion) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.got = append(s.got, cs...)
	return nil
}

type fakeRejections struct {
	mu  sync.Mutex
	got []Rejection
}

func (r *fakeRejections) Reject(rs []Rejection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rs...)
}

// mapDedup is a Deduper over a map.
type mapDedup struct {
	mu   sync.Mutex
	seen map[[2]string]bool
}

func (d *mapDedup) FirstSeen(n, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[[2]string]bool{}
	}
	if d.seen[[2]string{n, id}] {
		return false
	}
	d.seen[[2]string{n, id}] = true
	return true
}

func (d *mapDedup) Forget(n, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.seen, [2]string{n, id})
}

const testToken = "test-token-0123456789"

var fixedNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type apiHarness struct {
	c    *Collector
	sink *fakeSink
	rej  *fakeRejections
}

func newAPIHarness(t *testing.T) *apiHarness {
	t.Helper()
	h := &apiHarness{sink: &fakeSink{}, rej: &fakeRejections{}}
	c, err := NewCollector(Config{
		Tokens: []Token{{Name: "crm", Token: testToken}},
		Definitions: []Definition{testDef, {Name: "deal_closed", Object: "deal", MatchingProperty: "crm_id", Properties: []Property{
			{Name: "crm_id", Type: TypeString},
			{Name: "amount", Type: TypeNumber},
			{Name: "stage", Type: TypeEnumeration, Options: []string{"won", "lost"}},
		}}},
		Pipeline: NewPipeline(PipelineConfig{Sink: h.sink, Dedup: &mapDedup{}}), Rejections: h.rej,
		Now: func() time.Time { return fixedNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

func (h *apiHarness) do(t *testing.T, method, path, token, body string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.c.App().Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestSendAccepts(t *testing.T) {
	h := newAPIHarness(t)
	resp, body := h.do(t, "POST", "/events/v3/send", testToken, `{
		"eventName": "pe1234567_viewed_car", "email": "ada@example.com",
		"occurredAt": "2026-11-20T10:00:00.123Z", "uuid": "5f3c2a8e-0b7d-4a51-9d0e-2f8f6c1b9a77",
		"properties": {"make": "volvo", "Year": "2020", "hs_page_url": "https://shop.example.com/cars/1"}}`)
	if resp.StatusCode != 204 {
		t.Fatalf("status = %d (%s); want 204", resp.StatusCode, body)
	}
	if len(h.sink.got) != 1 {
		t.Fatalf("sink got %d completions; want 1", len(h.sink.got))
	}
	c := h.sink.got[0]
	want := time.Date(2026, 11, 20, 10, 0, 0, 123e6, time.UTC)
	if c.EventName != "viewed_car" || c.EventID != "5f3c2a8e-0b7d-4a51-9d0e-2f8f6c1b9a77" || !c.OccurredAt.Equal(want) ||
		c.Identity.Email != "ada@example.com" || c.Source != SourceAPI || c.Page.URL != "https://shop.example.com/cars/1" {
		t.Errorf("completion = %+v", c)
	}
	if y, _ := c.Prop("year"); y != "2020" {
		t.Errorf("year = %q; want 2020 (Year lower-cased)", y)
	}
}

func TestSendStatusCodes(t *testing.T) {
	h := newAPIHarness(t)
	good := `{"eventName":"viewed_car","utk":"abc","properties":{}}`
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no token", "POST", "/events/v3/send", "", good, 401},
		{"wrong token", "POST", "/events/v3/send", "nope-nope-nope-nope", good, 401},
		{"good", "POST", "/events/v3/send", testToken, good, 204},
		{"bad json", "POST", "/events/v3/send", testToken, `{"eventName":`, 400},
		{"unknown event", "POST", "/events/v3/send", testToken, `{"eventName":"nope","utk":"a"}`, 400},
		{"no identifier", "POST", "/events/v3/send", testToken, `{"eventName":"viewed_car"}`, 400},
		{"matching property identifies", "POST", "/events/v3/send", testToken, `{"eventName":"deal_closed","properties":{"crm_id":"D-1"}}`, 204},
		{"definitions", "GET", "/events/v3/event-definitions", testToken, "", 200},
		{"definition", "GET", "/events/v3/event-definitions/viewed_car", testToken, "", 200},
		{"definition by qualified name", "GET", "/events/v3/event-definitions/pe99_viewed_car", testToken, "", 200},
		{"missing definition", "GET", "/events/v3/event-definitions/nope", testToken, "", 404},
		{"empty batch", "POST", "/events/v3/send/batch", testToken, `{"inputs":[]}`, 400},
		{"wrong method", "GET", "/events/v3/send", testToken, "", 405},
	} {
		resp, body := h.do(t, tc.method, tc.path, tc.token, tc.body)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status = %d (%s); want %d", tc.name, resp.StatusCode, body, tc.want)
		}
		if resp.StatusCode >= 400 && resp.StatusCode != 405 {
			var env map[string]any
			if err := json.Unmarshal(body, &env); err != nil || env["status"] != "error" || env["correlationId"] == "" || env["category"] == "" {
				t.Errorf("%s: body %s is not HubSpot's error envelope", tc.name, body)
			}
		}
	}
}

func TestSendBodyTooLarge(t *testing.T) {
	h := newAPIHarness(t)
	// The body limit is enforced by the server's reader, so this test goes
	// over a real loopback connection rather than app.Test.
	addr := serveOnLoopback(t, h.c.App())
	// Announce a body over the limit and send the headers and its first
	// bytes: the server must refuse from Content-Length alone, without
	// waiting for the rest (it reads up to two bytes of a body it will
	// refuse before any handler runs, as TestBodyRefusedBeforeItIsRead
	// sends eight).
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /events/v3/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"eventName\"", testToken, apiBody+1)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("status = %d; want 413", resp.StatusCode)
	}
}

func TestSinkFullAnswers503AndForgetsDedup(t *testing.T) {
	h := newAPIHarness(t)
	h.sink.err = fmt.Errorf("flush: %w", ErrFull)
	body := `{"eventName":"viewed_car","utk":"a","uuid":"u-1","properties":{}}`
	resp, _ := h.do(t, "POST", "/events/v3/send", testToken, body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status = %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	h.sink.err = nil
	if resp, _ := h.do(t, "POST", "/events/v3/send", testToken, body); resp.StatusCode != 204 || len(h.sink.got) != 1 {
		t.Errorf("retry after 503: status %d, stored %d; want 204 and stored once", resp.StatusCode, len(h.sink.got))
	}
}

func TestResendIsAcknowledgedNotStoredTwice(t *testing.T) {
	h := newAPIHarness(t)
	body := `{"eventName":"viewed_car","utk":"a","uuid":"same","properties":{"make":"first"}}`
	for i := 0; i < 3; i++ {
		if resp, b := h.do(t, "POST", "/events/v3/send", testToken, body); resp.StatusCode != 204 {
			t.Fatalf("send %d: %d %s", i, resp.StatusCode, b)
		}
	}
	batch := `{"inputs":[{"eventName":"viewed_car","utk":"a","uuid":"same","properties":{"make":"second"}},
		{"eventName":"viewed_car","utk":"a","uuid":"new","properties":{}},
		{"eventName":"viewed_car","utk":"a","uuid":"new","properties":{}}]}`
	if resp, b := h.do(t, "POST", "/events/v3/send/batch", testToken, batch); resp.StatusCode != 204 {
		t.Fatalf("batch: %d %s", resp.StatusCode, b)
	}
	if len(h.sink.got) != 2 {
		t.Fatalf("stored %d; want 2 (first 'same' and one 'new')", len(h.sink.got))
	}
	if v, _ := h.sink.got[0].Prop("make"); v != "first" {
		t.Errorf("stored make = %q; want first (first wins)", v)
	}
}

func TestBatchLimit(t *testing.T) {
	h := newAPIHarness(t)
	batch := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`{"eventName":"viewed_car","utk":"a","uuid":"b-%d-%d","properties":{}}`, n, i)
		}
		return `{"inputs":[` + strings.Join(items, ",") + `]}`
	}
	if resp, b := h.do(t, "POST", "/events/v3/send/batch", testToken, batch(500)); resp.StatusCode != 204 {
		t.Errorf("500 inputs: %d %s; want 204", resp.StatusCode, b)
	}
	resp, b := h.do(t, "POST", "/events/v3/send/batch", testToken, batch(501))
	if resp.StatusCode != 400 || !bytes.Contains(b, []byte("BATCH_TOO_LARGE")) {
		t.Errorf("501 inputs: %d %s; want 400 BATCH_TOO_LARGE", resp.StatusCode, b)
	}
	if len(h.sink.got) != 500 {
		t.Errorf("stored %d; want 500", len(h.sink.got))
	}
}

var correlation = regexp.MustCompile(`"correlationId":"[^"]*"`)

// TestBatchEnvelopeListsEveryProblem checks the all-or-nothing batch answer
// against a golden envelope.
func TestBatchEnvelopeListsEveryProblem(t *testing.T) {
	h := newAPIHarness(t)
	long := strings.Repeat("x", 257)
	batch := `{"inputs":[
		{"eventName":"viewed_car","email":"ok@example.com","properties":{"make":"volvo"}},
		{"eventName":"viewed_car","utk":"a","properties":{"make":"` + long + `","year":"new"}},
		{"eventName":"unknown_event","utk":"a","properties":{}},
		{"eventName":"viewed_car","email":"not-an-email","occurredAt":"2026-11-22T12:10:00Z","properties":{"colour":"red"}},
		{"eventName":"viewed_car","properties":{}}
	]}`
	resp, body := h.do(t, "POST", "/events/v3/send/batch", testToken, batch)
	if resp.StatusCode != 400 {
		t.Fatalf("status = %d; want 400", resp.StatusCode)
	}
	if len(h.sink.got) != 0 {
		t.Errorf("stored %d completions of a failed batch; want 0 (all or nothing)", len(h.sink.got))
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, correlation.ReplaceAll(body, []byte(`"correlationId":"X"`)), "", "  ")
	golden(t, "batch_envelope.json", pretty.Bytes())
	if len(h.rej.got) != 4 {
		t.Errorf("rejections recorded = %d; want 4 (one per bad input, however many problems)", len(h.rej.got))
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

func TestDefinitionsShape(t *testing.T) {
	h := newAPIHarness(t)
	_, body := h.do(t, "GET", "/events/v3/event-definitions/deal_closed", testToken, "")
	var pretty bytes.Buffer
	json.Indent(&pretty, body, "", "  ")
	golden(t, "definition_deal_closed.json", pretty.Bytes())
}

func FuzzParseAPIInput(f *testing.F) {
	for _, s := range []string{
		`{"eventName":"viewed_car","email":"a@b.co","properties":{"make":"volvo","year":"2020"}}`,
		`{"eventName":"pe1_viewed_car","utk":"x","occurredAt":1719576571000,"uuid":"u"}`,
		`{"eventName":"viewed_car","objectId":42,"properties":{"year":12.5,"make":true}}`,
		`{"eventName":"","properties":{"Make":"a","MAKE":"b"}}`,
		`{"properties":{"listing_url":"` + strings.Repeat("é", 1025) + `"}}`,
		`[]`, `null`, `{"occurredAt":"9999-99-99"}`,
	} {
		f.Add([]byte(s))
	}
	cat := NewCatalog([]Definition{testDef})
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, errs := ParseAPIInput(cat, raw, "inputs[0]", fixedNow, SourceAPI)
		if len(errs) > 0 {
			for _, e := range errs {
				if e.Path == "" || e.Code == "" || e.Message == "" {
					t.Fatalf("incomplete error %+v", e)
				}
			}
			return
		}
		if c.EventName == "" || c.EventID == "" || len(c.Props) > MaxPropsPerCompletion {
			t.Fatalf("accepted incomplete completion %+v", c)
		}
		for _, p := range c.Props {
			if len([]rune(p.Value)) > MaxLen(p.Name) {
				t.Fatalf("accepted over-long %s", p.Name)
			}
		}
	})
}

func BenchmarkParseAPIInput(b *testing.B) {
	cat := NewCatalog([]Definition{testDef})
	raw := []byte(`{"eventName":"pe1234567_viewed_car","email":"ada@example.com","occurredAt":"2026-11-20T10:00:00Z",
		"uuid":"5f3c2a8e-0b7d-4a51-9d0e-2f8f6c1b9a77","properties":{"make":"volvo","year":"2020",
		"listing_url":"https://shop.example.com/cars/1","hs_page_url":"https://shop.example.com/cars/1","hs_utm_source":"news"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := ParseAPIInput(cat, raw, "", fixedNow, SourceAPI); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

func TestSinkFailureAnswers500WithoutDetail(t *testing.T) {
	h := newAPIHarness(t)
	h.sink.err = fmt.Errorf("insert into events: connection refused to 10.1.2.3:9000")
	resp, body := h.do(t, "POST", "/events/v3/send", testToken, `{"eventName":"viewed_car","utk":"a","uuid":"u-500","properties":{}}`)
	if resp.StatusCode != 500 || !bytes.Contains(body, []byte(`"category":"INTERNAL_ERROR"`)) || bytes.Contains(body, []byte("10.1.2.3")) {
		t.Errorf("status %d body %s; want 500 with the envelope and no internal detail", resp.StatusCode, body)
	}
	h.sink.err = nil
	if resp, _ := h.do(t, "POST", "/events/v3/send", testToken, `{"eventName":"viewed_car","utk":"a","uuid":"u-500","properties":{}}`); resp.StatusCode != 204 || len(h.sink.got) != 1 {
		t.Errorf("retry after 500: %d, stored %d; want 204 and stored once", resp.StatusCode, len(h.sink.got))
	}
}

func TestOccurredAtFutureBoundary(t *testing.T) {
	cat := NewCatalog([]Definition{testDef})
	for _, tc := range []struct {
		at time.Time
		ok bool
	}{
		{fixedNow.Add(MaxFutureSkew), true},
		{fixedNow.Add(MaxFutureSkew + time.Millisecond), false},
		{fixedNow.Add(-365 * 24 * time.Hour), true}, // backdating is allowed
	} {
		raw := fmt.Sprintf(`{"eventName":"viewed_car","utk":"a","occurredAt":%d}`, tc.at.UnixMilli())
		c, errs := ParseAPIInput(cat, []byte(raw), "", fixedNow, SourceAPI)
		if (len(errs) == 0) != tc.ok {
			t.Errorf("occurredAt now%+v: errors %v; want ok=%v", tc.at.Sub(fixedNow), errs, tc.ok)
		}
		if tc.ok && !c.OccurredAt.Equal(tc.at) {
			t.Errorf("occurredAt = %v; want %v", c.OccurredAt, tc.at)
		}
	}
}
