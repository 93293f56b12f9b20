package ingest

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// bomb is a small body that inflates to n zero bytes, gzipped twice.
func bomb(n int) []byte {
	return gzipped(gzipped(make([]byte, n)))
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, _ := io.ReadAll(r)
	return string(b)
}

// A body is inflated at most once and never past the path's limit; origin
// and token are checked before the body is read.
func TestCompressedBodies(t *testing.T) {
	h := newBrowserHarness(t)
	twice := bomb(200 << 20)
	if len(twice) > 4096 {
		t.Fatalf("bomb is %d bytes; want a small one", len(twice))
	}
	tests := []struct {
		name, origin, encoding string
		body                   []byte
		want                   int
		reason                 string
	}{
		{"chained gzip", "https://shop.example.com", "gzip, gzip", twice, 415, "one encoding at most"},
		{"gzip past the limit", "https://shop.example.com", "gzip", gzipped(make([]byte, 2<<20)), 413, "inflates past the limit"},
		{"unknown encoding", "https://shop.example.com", "zstd", []byte("x"), 415, "not supported"},
		{"not gzip", "https://shop.example.com", "gzip", []byte("plain"), 400, "not valid gzip"},
		{"foreign origin, before inflating", "https://evil.example.net", "gzip, gzip", twice, 403, "origin not allowed"},
		{"one gzip", "https://shop.example.com", "gzip", gzipped([]byte(shopBatch)), 204, ""},
	}
	for _, tt := range tests {
		resp := h.post(t, tt.origin, string(tt.body), "Content-Encoding", tt.encoding)
		body := readAll(t, resp.Body)
		if resp.StatusCode != tt.want || !strings.Contains(body, tt.reason) {
			t.Errorf("%s: %d %q; want %d with a reason containing %q", tt.name, resp.StatusCode, body, tt.want, tt.reason)
		}
	}
	if n := len(h.sink.got); n != 1 {
		t.Errorf("stored %d completions; want the one of the gzipped batch", n)
	}

	api := newAPIHarness(t)
	for _, tt := range []struct {
		name, token, encoding string
		body                  []byte
		want                  int
		reason                string
	}{
		{"no token, before inflating", "", "gzip, gzip", twice, 401, "Authentication"},
		{"chained gzip", testToken, "gzip, gzip", twice, 415, "one encoding at most"},
		{"gzip past 16 MiB", testToken, "gzip", gzipped(make([]byte, 17<<20)), 413, "inflates past the limit"},
	} {
		req, _ := http.NewRequest("POST", "/events/v3/send/batch", bytes.NewReader(tt.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", tt.encoding)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := api.c.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		if resp.StatusCode != tt.want || !strings.Contains(body, tt.reason) {
			t.Errorf("API %s: %d %q; want %d with %q", tt.name, resp.StatusCode, clip(body, 300), tt.want, tt.reason)
		}
	}
}

// The collector sits on the site's own domain and receives every
// first-party cookie: a 12 KB jar, over a real connection, is served.
func TestLargeCookieJar(t *testing.T) {
	h := newBrowserHarness(t)
	addr := serveOnLoopback(t, h.c.App())
	var jar strings.Builder
	for i := 0; jar.Len() < 40<<10; i++ {
		fmt.Fprintf(&jar, "_ga_%d=GA1.1.%d.%d; ", i, 1234567890+i, 1700000000+i)
	}
	// Up to 16 KiB of cookies are served; past the 32 KiB of headers the
	// answer is a 431, as Envoy gives, never a reset connection.
	for _, tt := range []struct{ n, want int }{{3990, 204}, {4000, 204}, {8 << 10, 204}, {12 << 10, 204}, {16 << 10, 204}, {40 << 10, 431}} {
		req, _ := http.NewRequest("POST", "http://"+addr+"/e", strings.NewReader(shopBatch))
		req.Header.Set("Origin", "https://shop.example.com")
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Cookie", jar.String()[:tt.n])
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%d-byte Cookie header: %v; want %d", tt.n, err, tt.want)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%d-byte Cookie header: status %d; want %d", tt.n, resp.StatusCode, tt.want)
		}
	}
}

// envelopeOf decodes an error envelope.
func envelopeOf(t *testing.T, body []byte) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an envelope: %v: %s", err, clip(string(body), 300))
	}
	return e
}

func hasError(e envelope, in, code string) bool {
	for _, d := range e.Errors {
		if d.In == in && d.Code == code {
			return true
		}
	}
	return false
}

// Every identifier has a limit and no control characters: the API names
// the field, the snippet path rejects that completion alone.
func TestIdentifierLimits(t *testing.T) {
	h := newAPIHarness(t)
	long := strings.Repeat("x", 1<<20)
	for _, tt := range []struct {
		body, in, code string
	}{
		{`{"eventName":"viewed_car","utk":"` + long + `"}`, "utk", "VALUE_TOO_LONG"},
		{`{"eventName":"viewed_car","email":"` + strings.Repeat("a", 250) + `@example.com"}`, "email", "VALUE_TOO_LONG"},
		{`{"eventName":"viewed_car","objectId":"` + strings.Repeat("9", 65) + `"}`, "objectId", "VALUE_TOO_LONG"},
		{`{"eventName":"viewed_car","utk":"v","uuid":"id\nwith a newline"}`, "uuid", "INVALID_VALUE"},
		{`{"eventName":"viewed_car","utk":"v\u0000"}`, "utk", "INVALID_VALUE"},
	} {
		resp, body := h.do(t, "POST", "/events/v3/send", testToken, tt.body)
		if resp.StatusCode != 400 || !hasError(envelopeOf(t, body), tt.in, tt.code) {
			t.Errorf("send %s: %d %s; want 400 with %s at %s", clip(tt.body, 80), resp.StatusCode, clip(string(body), 300), tt.code, tt.in)
		}
		if len(body) > 8<<10 {
			t.Errorf("send %s: answer is %d bytes; want it bounded", clip(tt.body, 80), len(body))
		}
	}

	b := newBrowserHarness(t)
	resp := b.post(t, "https://shop.example.com", `{"site":"shop","events":[
		{"id":"good-1","name":"viewed_car"},
		{"id":"bad\nid","name":"viewed_car"},
		{"id":"`+strings.Repeat("i", 200)+`","name":"viewed_car"}]}`)
	if resp.StatusCode != 204 || len(b.sink.got) != 1 || b.sink.got[0].EventID != "good-1" {
		t.Errorf("snippet batch with two bad ids: %d, stored %d; want 204 and only good-1", resp.StatusCode, len(b.sink.got))
	}
	if len(b.rej.got) != 2 {
		t.Errorf("rejections = %d; want one per bad id", len(b.rej.got))
	}
}

// What a client sends comes back bounded: names and values echoed at most
// a few hundred characters, at most ten problems listed per input, one
// rejection row per bad input, and at most twenty notes per completion.
func TestAmplificationBounded(t *testing.T) {
	h := newAPIHarness(t)
	name := strings.Repeat("n", 1<<20)
	resp, body := h.do(t, "POST", "/events/v3/send", testToken, `{"eventName":"viewed_car","utk":"v","properties":{"`+name+`":"x"}}`)
	if resp.StatusCode != 400 || len(body) > 8<<10 {
		t.Errorf("1 MB property name: %d, %d-byte answer; want 400 and a bounded answer", resp.StatusCode, len(body))
	}
	for _, r := range h.rej.got {
		if len(r.Field) > 300 || len(r.EventName) > 100 {
			t.Errorf("rejection field of %d bytes, event name of %d; want them bounded", len(r.Field), len(r.EventName))
		}
	}

	// 500 inputs of 50 unknown properties each: 25,000 problems.
	var batch strings.Builder
	batch.WriteString(`{"inputs":[`)
	for i := range 500 {
		if i > 0 {
			batch.WriteByte(',')
		}
		batch.WriteString(`{"eventName":"viewed_car","utk":"v","properties":{`)
		for j := range 50 {
			if j > 0 {
				batch.WriteByte(',')
			}
			fmt.Fprintf(&batch, `"unknown_property_number_%02d_of_this_input":"x"`, j)
		}
		batch.WriteString(`}}`)
	}
	batch.WriteString(`]}`)
	before := len(h.rej.got)
	resp, body = h.do(t, "POST", "/events/v3/send/batch", testToken, batch.String())
	e := envelopeOf(t, body)
	if resp.StatusCode != 400 || len(e.Errors) > 500*maxErrorsPerItem || len(body) > 4<<20 {
		t.Errorf("25,000 problems: %d, %d entries, %d bytes; want 400, at most %d entries, under 4 MB", resp.StatusCode, len(e.Errors), len(body), 500*maxErrorsPerItem)
	}
	if !hasError(e, "inputs[0]", "TOO_MANY_ERRORS") {
		t.Errorf("the envelope does not say how many problems it left out")
	}
	if got := len(h.rej.got) - before; got != 500 {
		t.Errorf("rejection rows = %d; want 500, one per input", got)
	}

	b := newBrowserHarness(t)
	var props strings.Builder
	for i := 0; props.Len() < 1<<20-1000; i++ {
		if i > 0 {
			props.WriteByte(',')
		}
		fmt.Fprintf(&props, `"p%d":"x"`, i)
	}
	resp2 := b.post(t, "https://shop.example.com", `{"site":"shop","events":[{"id":"a","name":"viewed_car","props":{`+props.String()+`}}]}`)
	if resp2.StatusCode != 204 || len(b.sink.got) != 1 {
		t.Fatalf("1 MiB of unknown properties: %d, stored %d; want 204 and the completion kept", resp2.StatusCode, len(b.sink.got))
	}
	if n := len(b.sink.got[0].Truncated); n > maxTruncated {
		t.Errorf("truncated holds %d notes; want at most %d", n, maxTruncated)
	}
	if n := len(b.rej.got); n != 1 {
		t.Errorf("rejection rows = %d; want 1 for the one item", n)
	}
}

// An event nested 10,001 levels deep is rejected alone; the rest of its
// batch is stored.
func TestDeepEventRejectedAlone(t *testing.T) {
	b := newBrowserHarness(t)
	deep := `{"id":"deep","name":"viewed_car","props":{"make":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`
	resp := b.post(t, "https://shop.example.com", `{"site":"shop","events":[{"id":"a","name":"viewed_car"},`+deep+`,{"id":"b","name":"viewed_car"}]}`)
	if resp.StatusCode != 204 || len(b.sink.got) != 2 {
		t.Fatalf("batch with one deep event: %d, stored %d; want 204 and 2", resp.StatusCode, len(b.sink.got))
	}
	if len(b.rej.got) != 1 || b.rej.got[0].Reason != "NESTED_TOO_DEEP" || !strings.HasPrefix(b.rej.got[0].Payload, `{"id":"deep"`) {
		t.Errorf("rejections = %+v; want one NESTED_TOO_DEEP with the event as payload", b.rej.got)
	}
}

// Nothing is changed without a word: an occurred time before 1970, a
// number with underscores, a property name folded from a non-ASCII letter
// are refused by the API and recorded by the snippet path; a lower-case
// bearer scheme is accepted.
func TestNoSilentClamping(t *testing.T) {
	h := newAPIHarness(t)
	for _, tt := range []struct{ body, in, code string }{
		{`{"eventName":"viewed_car","utk":"v","occurredAt":"1900-01-01T00:00:00Z"}`, "occurredAt", "INVALID_TIME"},
		{`{"eventName":"viewed_car","utk":"v","properties":{"year":"1_000"}}`, "properties.year", "INVALID_VALUE"},
		{`{"eventName":"viewed_car","utk":"v","properties":{"year":"0x10"}}`, "properties.year", "INVALID_VALUE"},
		{`{"eventName":"viewed_car","utk":"v","properties":{"year":"Infinity"}}`, "properties.year", "INVALID_VALUE"},
		{`{"eventName":"viewed_car","utk":"v","properties":{"ma\u212Ae":"volvo"}}`, "properties.ma\u212ae", "INVALID_NAME"},
	} {
		resp, body := h.do(t, "POST", "/events/v3/send", testToken, tt.body)
		if resp.StatusCode != 400 || !hasError(envelopeOf(t, body), tt.in, tt.code) {
			t.Errorf("send %s: %d %s; want 400 with %s at %s", tt.body, resp.StatusCode, clip(string(body), 400), tt.code, tt.in)
		}
	}
	req, _ := http.NewRequest("POST", "/events/v3/send", strings.NewReader(`{"eventName":"viewed_car","utk":"v","properties":{"year":"1e3"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "bearer "+testToken)
	if resp, err := h.c.App().Test(req, -1); err != nil || resp.StatusCode != 204 {
		t.Errorf("lower-case bearer scheme: %v %v; want 204", resp.StatusCode, err)
	}

	b := newBrowserHarness(t)
	resp := b.post(t, "https://shop.example.com", `{"site":"shop","events":[{"id":"a","name":"viewed_car","ts":"1900-01-01","props":{"ma\u212Ae":"volvo","year":"1_000"}}]}`)
	if resp.StatusCode != 204 || len(b.sink.got) != 1 {
		t.Fatalf("snippet: %d, stored %d; want 204 and the completion", resp.StatusCode, len(b.sink.got))
	}
	c := b.sink.got[0]
	notes := strings.Join(c.Truncated, " | ")
	if !strings.Contains(notes, "occurred_at: before 1970") || !strings.Contains(notes, "may use only the letters") || !strings.Contains(notes, "year: dropped") {
		t.Errorf("truncated = %q; want the old time, the non-ASCII name and the underscored number recorded", notes)
	}
	if _, ok := c.Prop("make"); ok {
		t.Errorf("a property named ma\\u212Ae was stored as make")
	}
	if c.OccurredAt.Year() < 1970 {
		t.Errorf("occurred at %v; want the receive time", c.OccurredAt)
	}
}

// FuzzSpliceDeep: setting deep events aside never panics, leaves a body
// nested no deeper than the limit as it is, and keeps what it sets aside
// intact.
func FuzzSpliceDeep(f *testing.F) {
	f.Add([]byte(`{"site":"s","events":[{"id":"a"},` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `]}`))
	f.Add([]byte(`{"events":[{"p":"\"[[[["}]}`))
	f.Add([]byte(`[[[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, deep := spliceDeep(body)
		if len(deep) == 0 && !bytes.Equal(out, body) {
			t.Fatalf("nothing set aside, yet the body changed")
		}
		for _, d := range deep {
			if !bytes.Contains(body, d) {
				t.Fatalf("set aside %q, which is not in the body", d)
			}
		}
	})
}

// Traits past their limit are dropped and recorded; a visitor cookie that
// is not an id tally minted is replaced by a new one.
func TestTraitAndCookieLimits(t *testing.T) {
	b := newBrowserHarness(t)
	resp := b.post(t, "https://shop.example.com",
		`{"site":"shop","events":[{"id":"a","name":"viewed_car","traits":{"phone":"`+strings.Repeat("1", 300)+`","external_id":"crm-1"}}]}`,
		"Cookie", "_tally_id="+strings.Repeat("v", 1000))
	if resp.StatusCode != 204 || len(b.sink.got) != 1 {
		t.Fatalf("status %d, stored %d; want 204 and 1", resp.StatusCode, len(b.sink.got))
	}
	c := b.sink.got[0]
	if c.Identity.Phone != "" || c.Identity.ExternalID != "crm-1" || !strings.Contains(strings.Join(c.Truncated, "|"), "traits.phone: dropped") {
		t.Errorf("phone %q, external id %q, truncated %q; want the long phone dropped and recorded", clip(c.Identity.Phone, 20), c.Identity.ExternalID, c.Truncated)
	}
	if len(c.VisitorID) != 36 {
		t.Errorf("visitor id %q; want a new UUID instead of the 1000-character cookie", clip(c.VisitorID, 40))
	}
}

// The tracker's identify call links the visitor to its traits at once.
func TestIdentifyBatchLinksVisitor(t *testing.T) {
	var gotVisitor string
	var gotID Identity
	b := newBrowserHarnessConfig(t, func(cfg *Config) {
		cfg.OnIdentify = func(v string, id Identity) { gotVisitor, gotID = v, id }
	})
	resp := b.post(t, "https://shop.example.com", `{"site":"shop","events":[],"traits":{"email":"grace@example.com","external_id":"crm-77"}}`,
		"Cookie", "_tally_id=11111111-2222-4333-8444-555555555555")
	if resp.StatusCode != 204 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if gotVisitor != "11111111-2222-4333-8444-555555555555" || gotID.Email != "grace@example.com" || gotID.ExternalID != "crm-77" {
		t.Errorf("OnIdentify(%q, %+v); want the cookie's visitor and the traits", gotVisitor, gotID)
	}
	if len(b.sink.got) != 0 {
		t.Errorf("stored %d completions from an identify call; want none", len(b.sink.got))
	}
}

// User data is made of identifiers too (external ids, click ids, phone
// numbers, forwarded for matching and used to link a visitor): a control
// character in one is refused by the API and dropped and recorded on the
// snippet path, like the other identifiers.
func TestUserDataControlCharacters(t *testing.T) {
	h := newAPIHarness(t)
	for _, tt := range []struct{ body, in string }{
		{`{"eventName":"viewed_car","utk":"v","properties":{"external_id":"crm-1\nX-Injected: 1"}}`, "properties.external_id"},
		{`{"eventName":"viewed_car","utk":"v","properties":{"fbc":"fb.1.1.abc\r"}}`, "properties.fbc"},
		{`{"eventName":"viewed_car","utk":"v","properties":{"phone":"+33 6\u0000"}}`, "properties.phone"},
	} {
		resp, body := h.do(t, "POST", "/events/v3/send", testToken, tt.body)
		if resp.StatusCode != 400 || !hasError(envelopeOf(t, body), tt.in, "INVALID_VALUE") {
			t.Errorf("send %q: %d %s; want 400 with INVALID_VALUE at %s", tt.body, resp.StatusCode, clip(string(body), 300), tt.in)
		}
	}

	b := newBrowserHarness(t)
	resp := b.post(t, "https://shop.example.com",
		`{"site":"shop","events":[{"id":"a","name":"viewed_car","traits":{"external_id":"crm-1\nX","phone":"+33 6 12","last_name":"Lovelace\u0007"}}]}`)
	if resp.StatusCode != 204 || len(b.sink.got) != 1 {
		t.Fatalf("status %d, stored %d; want 204 and 1", resp.StatusCode, len(b.sink.got))
	}
	c := b.sink.got[0]
	notes := strings.Join(c.Truncated, " | ")
	if c.Identity.ExternalID != "" || c.Identity.LastName != "" || c.Identity.Phone != "+33 6 12" ||
		!strings.Contains(notes, "traits.external_id: dropped, holds the control character U+000A") ||
		!strings.Contains(notes, "traits.last_name: dropped, holds the control character U+0007") {
		t.Errorf("identity %+v, truncated %q; want external_id and last_name dropped and recorded, phone kept", c.Identity, notes)
	}
}

// A body the path could never take is refused from its Content-Length,
// before it is read, as nginx's client_max_body_size does: the snippet
// path's 1 MiB, not the API's 16 MiB. The client sends the headers and a
// few bytes and gets its 413 without sending the rest.
func TestBodyRefusedBeforeItIsRead(t *testing.T) {
	h := newBrowserHarness(t)
	addr := serveOnLoopback(t, h.c.App())
	moved := newBrowserHarnessConfig(t, func(cfg *Config) { cfg.EventPath = "/events/collect" })
	movedAddr := serveOnLoopback(t, moved.c.App())
	for _, tt := range []struct {
		path, origin string
		length       int
		addr         string
	}{
		{"/e", "https://shop.example.com", 4 << 20, ""},
		{"/events/collect", "https://shop.example.com", 4 << 20, movedAddr},
		{"/e", "https://evil.example.net", 4 << 20, ""},
		{"/events/v3/send/batch", "", 17 << 20, ""},
	} {
		addr := cmp.Or(tt.addr, addr)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: shop.example.com\r\nOrigin: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n{\"site\":", tt.path, tt.origin, tt.length)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.HasPrefix(line, "HTTP/1.1 413") {
			t.Errorf("POST %s from %q with Content-Length %d and 8 bytes sent: %q, %v; want a 413 at once", tt.path, tt.origin, tt.length, line, err)
		}
	}
}

// A path or method that does not exist is not a validation error.
func TestUnknownPathAndMethodCategories(t *testing.T) {
	h := newAPIHarness(t)
	for _, tt := range []struct{ method, path string }{
		{"GET", "/events/v3/nope"},
		{"DELETE", "/events/v3/send"},
	} {
		resp, body := h.do(t, tt.method, tt.path, testToken, "")
		e := envelopeOf(t, body)
		if e.Category == "VALIDATION_ERROR" || (resp.StatusCode != 404 && resp.StatusCode != 405) {
			t.Errorf("%s %s: %d %q; want 404 or 405 with a category other than VALIDATION_ERROR", tt.method, tt.path, resp.StatusCode, e.Category)
		}
	}
}
