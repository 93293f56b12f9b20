package ingest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var browserDefs = []Definition{
	testDef,
	{Name: "form_submitted", Properties: []Property{
		{Name: "form_id", Type: TypeString},
		{Name: "deal_amount", Type: TypeNumber},
		{Name: "stage", Type: TypeEnumeration, Options: []string{"lead", "mql", "sql"}},
	}},
}

func browserCtx() BrowserContext {
	return BrowserContext{Now: fixedNow, UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/150", Language: "de-DE", IP: "192.0.2.7"}
}

func parseBatch(t *testing.T, body string, bc BrowserContext) BrowserBatch {
	t.Helper()
	b, err := ParseBrowserBatch(NewCatalog(browserDefs), []byte(body), bc)
	if err != nil {
		t.Fatalf("ParseBrowserBatch(%s): %v", body, err)
	}
	return b
}

func TestParseBrowserBatchKeepsGoodItems(t *testing.T) {
	ms := fixedNow.Add(-time.Minute).UnixMilli()
	body := fmt.Sprintf(`{"site":"shop","sent":%d,"lang":"en-GB","events":[
		{"id":"e1","name":"viewed_car","ts":%d,"props":{"make":"volvo","year":2020,"color":"red"},
		 "url":"https://shop.example.com/cars/1?fbclid=AbC-123_xY","ref":"https://www.google.com/","title":"Volvo",
		 "traits":{"email":"ada@example.com","external_id":"crm-1","shoe_size":"44"},"fbp":"fb.1.1700000000000.123"},
		{"id":"e2","name":"not_defined","ts":%d},
		42,
		{"id":"e3","name":"page_view","ts":%d,"url":"https://shop.example.com/"},
		{"id":"e4","name":"form_submitted","props":{"deal_amount":"abc","stage":["lead","mql"],"form_id":{"x":1}}}
	]}`, fixedNow.UnixMilli(), ms, ms, ms)
	b := parseBatch(t, body, browserCtx())
	if b.Site != "shop" {
		t.Errorf("Site = %q; want shop", b.Site)
	}
	var ids []string
	for _, c := range b.Completions {
		ids = append(ids, c.EventID)
	}
	if want := []string{"e1", "e3", "e4"}; !slices.Equal(ids, want) {
		t.Fatalf("completions %v; want %v", ids, want)
	}
	c := b.Completions[0]
	if c.Source != SourceBrowser || !c.OccurredAt.Equal(fixedNow.Add(-time.Minute)) || c.ReceivedAt != fixedNow {
		t.Errorf("source/occurred/received = %s/%s/%s", c.Source, c.OccurredAt, c.ReceivedAt)
	}
	if c.Page.Title != "Volvo" || c.Page.Referrer != "https://www.google.com/" || c.Client.Language != "en-GB" ||
		c.Client.UserAgent != browserCtx().UserAgent || c.Client.IP != "192.0.2.7" {
		t.Errorf("page/client = %+v / %+v", c.Page, c.Client)
	}
	if c.Identity.Email != "ada@example.com" || c.Identity.ExternalID != "crm-1" {
		t.Errorf("identity = %+v", c.Identity)
	}
	if c.Identity.Fbp != "fb.1.1700000000000.123" {
		t.Errorf("Fbp = %q", c.Identity.Fbp)
	}
	// No _fbc was sent, so it is built from the URL's fbclid, case kept.
	if want := fmt.Sprintf("fb.1.%d.AbC-123_xY", ms); c.Identity.Fbc != want {
		t.Errorf("Fbc = %q; want %q", c.Identity.Fbc, want)
	}
	if !c.Consent.Analytics || !c.Consent.Ads {
		t.Errorf("consent = %+v; want both true by default", c.Consent)
	}
	if got := fmt.Sprint(c.Props); got != "[{make volvo} {year 2020}]" {
		t.Errorf("props = %s", got)
	}
	if !hasPrefix(c.Truncated, "color: dropped") || !hasPrefix(c.Truncated, "traits.shoe_size: dropped") {
		t.Errorf("Truncated = %q; want the dropped property and trait recorded", c.Truncated)
	}
	e4 := b.Completions[2]
	if got := fmt.Sprint(e4.Props); got != "[{stage lead;mql}]" {
		t.Errorf("form_submitted props = %s; want the list joined and the bad values dropped", got)
	}
	if !hasPrefix(e4.Truncated, "deal_amount: dropped") || !hasPrefix(e4.Truncated, "form_id: dropped") {
		t.Errorf("form_submitted Truncated = %q", e4.Truncated)
	}
	if !e4.OccurredAt.Equal(fixedNow) {
		t.Errorf("occurred without ts = %s; want receive time", e4.OccurredAt)
	}

	var reasons []string
	for _, r := range b.Rejections {
		reasons = append(reasons, r.Reason+"@"+r.Field)
	}
	slices.Sort(reasons)
	want := []string{
		"INVALID_JSON@events[2]",
		"INVALID_VALUE@events[4].props.form_id (and 1 more)", // one row per bad item
		"UNKNOWN_EVENT@events[1].name",
		"UNKNOWN_PROPERTY@events[0].props.color",
	}
	if !slices.Equal(reasons, want) {
		t.Errorf("rejections = %q; want %q", reasons, want)
	}
	for _, r := range b.Rejections {
		if r.Source != SourceBrowser || r.Payload == "" {
			t.Errorf("rejection %+v lacks source or payload", r)
		}
	}
}

func hasPrefix(list []string, prefix string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func TestParseBrowserBatchTruncates(t *testing.T) {
	long := strings.Repeat("é", 300)
	longURL := "https://shop.example.com/?q=" + strings.Repeat("a", 2000)
	body := fmt.Sprintf(`{"site":"shop","events":[{"id":"e1","name":"viewed_car","url":%q,"title":%q,
		"props":{"make":%q,"listing_url":%q}}]}`, longURL, long, long, longURL)
	b := parseBatch(t, body, browserCtx())
	if len(b.Completions) != 1 {
		t.Fatalf("got %d completions; want 1", len(b.Completions))
	}
	c := b.Completions[0]
	make_, _ := c.Prop("make")
	lu, _ := c.Prop("listing_url")
	for _, tc := range []struct {
		what string
		v    string
		want int
	}{{"make", make_, 256}, {"listing_url", lu, 1024}, {"url", c.Page.URL, 1024}, {"title", c.Page.Title, 256}} {
		if n := utf8.RuneCountInString(tc.v); n != tc.want {
			t.Errorf("%s is %d characters; want %d", tc.what, n, tc.want)
		}
	}
	for _, want := range []string{
		"make: cut from 300 to 256 characters",
		fmt.Sprintf("listing_url: cut from %d to 1024 characters", len(longURL)),
		fmt.Sprintf("url: cut from %d to 1024 characters", len(longURL)),
		"page_title: cut from 300 to 256 characters",
	} {
		if !slices.Contains(c.Truncated, want) {
			t.Errorf("Truncated = %q; lacks %q", c.Truncated, want)
		}
	}
}

func TestParseBrowserBatchTime(t *testing.T) {
	f := func(name string, ts, sent int64, want time.Time) {
		t.Helper()
		body := fmt.Sprintf(`{"site":"shop","sent":%d,"events":[{"id":"e","name":"page_view","ts":%d}]}`, sent, ts)
		if sent == 0 {
			body = fmt.Sprintf(`{"site":"shop","events":[{"id":"e","name":"page_view","ts":%d}]}`, ts)
		}
		b := parseBatch(t, body, browserCtx())
		if got := b.Completions[0].OccurredAt; !got.Equal(want) {
			t.Errorf("%s: OccurredAt = %s; want %s", name, got, want)
		}
	}
	now := fixedNow.UnixMilli()
	hour := time.Hour.Milliseconds()
	f("clock right", now-5000, now, fixedNow.Add(-5*time.Second))
	// A browser clock 3 hours ahead: the 5 s between the completion and the
	// send are kept, the 3 h of skew are not.
	f("clock ahead", now+3*hour-5000, now+3*hour, fixedNow.Add(-5*time.Second))
	f("clock behind", now-2*hour-5000, now-2*hour, fixedNow.Add(-5*time.Second))
	f("no send time, future within skew", now+60000, 0, fixedNow.Add(time.Minute))
	f("no send time, far future", now+10*60000, 0, fixedNow)
}

func TestParseBrowserBatchConsent(t *testing.T) {
	body := `{"site":"shop","events":[
		{"id":"a","name":"page_view","consent":{"analytics":true,"ads":true},"traits":{"email":"a@b.example"},"fbp":"fb.1.1.2"},
		{"id":"b","name":"page_view","consent":{"analytics":false,"ads":false},"fbp":"fb.1.1.2","fbc":"fb.1.1.x"}]}`
	b := parseBatch(t, body, browserCtx())
	if b.Analytics {
		t.Error("Analytics = true; want the last completion's false")
	}
	a, c := b.Completions[0], b.Completions[1]
	if !a.Consent.Ads || a.Identity.Fbp != "fb.1.1.2" {
		t.Errorf("ads consent: consent %+v fbp %q", a.Consent, a.Identity.Fbp)
	}
	if c.Consent.Ads || c.Consent.Analytics || c.Identity.Fbp != "" || c.Identity.Fbc != "" {
		t.Errorf("no consent: consent %+v identity %+v; want no Meta ids", c.Consent, c.Identity)
	}
	gpc := browserCtx()
	gpc.GPC = true
	b = parseBatch(t, body, gpc)
	if b.Completions[0].Consent.Ads || b.Completions[0].Identity.Fbp != "" {
		t.Errorf("Sec-GPC: consent %+v fbp %q; want ads off", b.Completions[0].Consent, b.Completions[0].Identity.Fbp)
	}
}

func TestParseBrowserBatchRefuses(t *testing.T) {
	for _, body := range []string{``, `[`, `{"events":{}}`, `"x"`} {
		if _, err := ParseBrowserBatch(NewCatalog(nil), []byte(body), browserCtx()); err == nil {
			t.Errorf("ParseBrowserBatch(%q): nil error; want one", body)
		}
	}
	// Over 100 completions: the first 100 are kept, the rest rejected.
	var evs []string
	for i := range 105 {
		evs = append(evs, fmt.Sprintf(`{"id":"e%d","name":"page_view"}`, i))
	}
	b := parseBatch(t, `{"events":[`+strings.Join(evs, ",")+`]}`, browserCtx())
	if len(b.Completions) != 100 || len(b.Rejections) != 5 || b.Rejections[0].Reason != "BATCH_TOO_LARGE" {
		t.Errorf("105 completions: kept %d, rejected %d; want 100 and 5", len(b.Completions), len(b.Rejections))
	}
	// The same id twice in one batch is stored once.
	b = parseBatch(t, `{"events":[{"id":"x1234567","name":"page_view"},{"id":"x1234567","name":"page_view"}]}`, browserCtx())
	if len(b.Completions) != 1 {
		t.Errorf("repeated id: %d completions; want 1", len(b.Completions))
	}
}

func TestFbcFromURL(t *testing.T) {
	at := time.UnixMilli(1700000000123)
	for _, tc := range []struct{ url, want string }{
		{"https://x.example/?fbclid=IwAR2F-aBc_9", "fb.1.1700000000123.IwAR2F-aBc_9"},
		{"https://x.example/?a=1&fbclid=Zz", "fb.1.1700000000123.Zz"},
		{"https://x.example/", ""},
		{"https://x.example/?fbclid=", ""},
		{"https://x.example/?fbclid=a%20b", ""},
	} {
		if got := fbcFromURL(tc.url, at); got != tc.want {
			t.Errorf("fbcFromURL(%q) = %q; want %q", tc.url, got, tc.want)
		}
	}
}

// browserHarness runs a collector with two sites and a fake script source.
type browserHarness struct {
	c    *Collector
	sink *fakeSink
	rej  *fakeRejections
}

type fakeScripts map[string]Script

func (f fakeScripts) Script(site string) (Script, bool) { s, ok := f[site]; return s, ok }

func newBrowserHarness(t *testing.T, sites ...Site) *browserHarness {
	t.Helper()
	return newBrowserHarnessConfig(t, func(cfg *Config) {
		if len(sites) > 0 {
			cfg.Sites = sites
		}
	})
}

func newBrowserHarnessConfig(t *testing.T, edit func(*Config)) *browserHarness {
	t.Helper()
	sites := []Site{
		{ID: "shop", Domains: []string{"shop.example.com", "*.shop.example.com"}, CookieDomain: "shop.example.com", CookieDays: 30},
		{ID: "blog", Domains: []string{"blog.example.org"}},
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("console.log(1)"))
	zw.Close()
	h := &browserHarness{sink: &fakeSink{}, rej: &fakeRejections{}}
	cfg := Config{
		Sites: sites, Definitions: browserDefs,
		Pipeline: NewPipeline(PipelineConfig{Sink: h.sink, Dedup: &mapDedup{}}), Rejections: h.rej,
		Scripts: fakeScripts{"shop": {JS: []byte("console.log(1)"), Gzip: gz.Bytes(), ETag: `"abc"`}},
		Now:     func() time.Time { return fixedNow },
	}
	edit(&cfg)
	c, err := NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

func (h *browserHarness) post(t *testing.T, origin, body string, headers ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("POST", "/e", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("User-Agent", "Mozilla/5.0 test")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.c.App().Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

const shopBatch = `{"site":"shop","events":[{"id":"11111111-1111-4111-8111-111111111111","name":"viewed_car","props":{"make":"volvo"}}]}`

func TestCollectAllowedOrigin(t *testing.T) {
	h := newBrowserHarness(t)
	resp := h.post(t, "https://www.shop.example.com", shopBatch)
	if resp.StatusCode != 204 {
		t.Fatalf("status = %d; want 204", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://www.shop.example.com" {
		t.Errorf("Allow-Origin = %q; want the origin echoed", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Allow-Credentials = %q; want true", got)
	}
	vc := cookieNamed(resp, VisitorCookie)
	if vc == nil {
		t.Fatal("no visitor cookie set")
	}
	if vc.MaxAge != 30*86400 || vc.Domain != "shop.example.com" || !vc.HttpOnly || vc.SameSite != http.SameSiteLaxMode || vc.Path != "/" {
		t.Errorf("visitor cookie = %+v", vc)
	}
	if sc := cookieNamed(resp, SessionCookie); sc == nil || sc.MaxAge != 1800 {
		t.Errorf("session cookie = %+v; want Max-Age 1800", sc)
	}
	if len(h.sink.got) != 1 {
		t.Fatalf("stored %d; want 1", len(h.sink.got))
	}
	c := h.sink.got[0]
	if c.Site != "shop" || c.VisitorID != vc.Value || c.SessionID == "" || c.Client.UserAgent != "Mozilla/5.0 test" {
		t.Errorf("completion site %q visitor %q session %q ua %q", c.Site, c.VisitorID, c.SessionID, c.Client.UserAgent)
	}
}

func TestCollectKeepsVisitorCookie(t *testing.T) {
	h := newBrowserHarness(t)
	const id = "0b5d1c0e-8f3a-4c1b-9e6d-2a7f4b8c9d10"
	resp := h.post(t, "https://shop.example.com", shopBatch, "Cookie", VisitorCookie+"="+id+"; "+SessionCookie+"=s-1234567890", "X-Forwarded-Proto", "https")
	vc := cookieNamed(resp, VisitorCookie)
	// X-Forwarded-Proto from a peer that is not a trusted proxy says nothing.
	if vc == nil || vc.Value != id || vc.Secure {
		t.Fatalf("visitor cookie = %+v; want %s re-set, not Secure", vc, id)
	}
	if h.sink.got[0].VisitorID != id || h.sink.got[0].SessionID != "s-1234567890" {
		t.Errorf("ids = %q, %q", h.sink.got[0].VisitorID, h.sink.got[0].SessionID)
	}
	// A cookie value that is not an id tally minted is replaced.
	resp = h.post(t, "https://shop.example.com", strings.Replace(shopBatch, "1111", "2222", 1), "Cookie", VisitorCookie+"=<script>")
	if vc := cookieNamed(resp, VisitorCookie); vc == nil || vc.Value == "<script>" || len(vc.Value) != 36 {
		t.Errorf("visitor cookie = %+v; want a fresh UUID", vc)
	}
}

func TestCollectSecureBehindTrustedProxy(t *testing.T) {
	h := newBrowserHarness(t)
	// app.Test's connections come from 0.0.0.0.
	trusted := newBrowserHarnessConfig(t, func(cfg *Config) { cfg.TrustedProxies = []string{"0.0.0.0/32", "127.0.0.0/8"} })
	for _, tc := range []struct {
		name   string
		h      *browserHarness
		proto  string
		secure bool
	}{
		{"untrusted peer says https", h, "https", false},
		{"trusted proxy says https", trusted, "https", true},
		{"trusted proxy says http", trusted, "http", false},
	} {
		resp := tc.h.post(t, "https://shop.example.com", shopBatch, "X-Forwarded-Proto", tc.proto)
		vc := cookieNamed(resp, VisitorCookie)
		if vc == nil || vc.Secure != tc.secure {
			t.Errorf("%s: visitor cookie %+v; want Secure %v", tc.name, vc, tc.secure)
		}
	}
}

func TestCollectWithoutConsent(t *testing.T) {
	h := newBrowserHarness(t)
	body := `{"site":"shop","events":[{"id":"33333333-1111-4111-8111-111111111111","name":"page_view","consent":{"analytics":false,"ads":false}}]}`
	resp := h.post(t, "https://shop.example.com", body)
	if resp.StatusCode != 204 || len(resp.Cookies()) != 0 {
		t.Errorf("status %d, cookies %v; want 204 and no cookie", resp.StatusCode, resp.Cookies())
	}
	if c := h.sink.got[0]; c.VisitorID != "" || c.SessionID != "" || c.Consent.Analytics {
		t.Errorf("anonymous completion has visitor %q session %q consent %+v", c.VisitorID, c.SessionID, c.Consent)
	}
	// An existing cookie is cleared.
	body = strings.Replace(body, "3333", "4444", 1)
	resp = h.post(t, "https://shop.example.com", body, "Cookie", VisitorCookie+"=0b5d1c0e-8f3a-4c1b-9e6d-2a7f4b8c9d10")
	vc := cookieNamed(resp, VisitorCookie)
	if vc == nil || vc.Value != "" || !vc.Expires.Before(fixedNow) {
		t.Errorf("visitor cookie = %+v; want it cleared", vc)
	}
}

func TestCollectRefusesForeignOrigins(t *testing.T) {
	h := newBrowserHarness(t)
	for _, tc := range []struct{ name, origin, body string }{
		{"foreign origin", "https://evil.example", shopBatch},
		{"other site's origin", "https://blog.example.org", shopBatch},
		{"look-alike", "https://shop.example.com.evil.example", shopBatch},
		{"no origin", "", shopBatch},
		{"unknown site", "https://shop.example.com", `{"site":"nope","events":[]}`},
	} {
		resp := h.post(t, tc.origin, tc.body)
		if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" || len(resp.Cookies()) != 0 {
			t.Errorf("%s: status %d, allow-origin %q, cookies %d; want 403 without CORS or cookies", tc.name, resp.StatusCode,
				resp.Header.Get("Access-Control-Allow-Origin"), len(resp.Cookies()))
		}
	}
	if len(h.sink.got) != 0 {
		t.Errorf("stored %d completions from refused origins", len(h.sink.got))
	}
	// Without Origin, a Referer from the site's domain is enough (some
	// same-origin beacons carry only that).
	resp := h.post(t, "", shopBatch, "Referer", "https://shop.example.com/cars/1")
	if resp.StatusCode != 204 {
		t.Errorf("same-site Referer: status %d; want 204", resp.StatusCode)
	}
}

func TestCollectStoresGoodItemsOfBadBatch(t *testing.T) {
	h := newBrowserHarness(t)
	body := `{"site":"shop","events":[{"id":"55555555-1","name":"viewed_car"},{"name":"nope"},"junk",{"id":"55555555-2","name":"page_view"}]}`
	if resp := h.post(t, "https://shop.example.com", body); resp.StatusCode != 204 {
		t.Fatalf("status %d; want 204", resp.StatusCode)
	}
	if len(h.sink.got) != 2 || len(h.rej.got) != 2 {
		t.Errorf("stored %d, rejected %d; want 2 and 2", len(h.sink.got), len(h.rej.got))
	}
	for _, r := range h.rej.got {
		if r.Site != "shop" {
			t.Errorf("rejection site = %q; want shop", r.Site)
		}
	}
	// A retry of the same batch stores nothing new.
	h.post(t, "https://shop.example.com", body)
	if len(h.sink.got) != 2 {
		t.Errorf("after retry stored %d; want still 2", len(h.sink.got))
	}
	// Not JSON at all: 400, recorded.
	if resp := h.post(t, "https://shop.example.com", `{"site":`); resp.StatusCode != 400 {
		t.Errorf("bad JSON: status %d; want 400", resp.StatusCode)
	}
}

func TestCollectSinkFull(t *testing.T) {
	h := newBrowserHarness(t)
	h.sink.err = ErrFull
	resp := h.post(t, "https://shop.example.com", shopBatch)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("status %d, Retry-After %q, Allow-Origin %q; want 503 the page can read", resp.StatusCode,
			resp.Header.Get("Retry-After"), resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestCollectBodyLimit(t *testing.T) {
	h := newBrowserHarness(t)
	big := `{"site":"shop","events":[{"id":"x","name":"page_view","title":"` + strings.Repeat("x", defaultBrowserBody) + `"}]}`
	if resp := h.post(t, "https://shop.example.com", big); resp.StatusCode != 413 {
		t.Errorf("status %d; want 413", resp.StatusCode)
	}
}

func TestPreflight(t *testing.T) {
	h := newBrowserHarness(t)
	for _, tc := range []struct {
		origin string
		want   int
	}{{"https://blog.example.org", 204}, {"https://evil.example", 403}} {
		req := httptest.NewRequest("OPTIONS", "/e", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := h.c.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("OPTIONS from %s: status %d; want %d", tc.origin, resp.StatusCode, tc.want)
		}
		if tc.want == 204 && (resp.Header.Get("Access-Control-Allow-Origin") != tc.origin || resp.Header.Get("Access-Control-Max-Age") == "") {
			t.Errorf("OPTIONS headers = %v", resp.Header)
		}
	}
}

func TestServeScript(t *testing.T) {
	h := newBrowserHarness(t)
	get := func(path string, headers ...string) (*http.Response, []byte) {
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := h.c.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get("/t.js?site=shop")
	if resp.StatusCode != 200 || string(body) != "console.log(1)" || resp.Header.Get("ETag") != `"abc"` ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "must-revalidate") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/javascript") {
		t.Errorf("plain: status %d body %q headers %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get("/t.js?site=shop", "Accept-Encoding", "gzip, br")
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("ETag") != `"abc-gz"` || bytes.Equal(body, []byte("console.log(1)")) {
		t.Errorf("gzip: encoding %q etag %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("ETag"))
	}
	resp, _ = get("/t.js?site=shop", "Accept-Encoding", "gzip", "If-None-Match", `"abc-gz"`)
	if resp.StatusCode != 304 {
		t.Errorf("If-None-Match: status %d; want 304", resp.StatusCode)
	}
	resp, _ = get("/t.js?site=shop", "If-None-Match", `"abc-gz"`)
	if resp.StatusCode != 200 {
		t.Errorf("If-None-Match of the other representation: status %d; want 200", resp.StatusCode)
	}
	resp, _ = get("/t.js?site=blog")
	if resp.StatusCode != 404 {
		t.Errorf("site without a script: status %d; want 404", resp.StatusCode)
	}
	// Two sites and no ?site=: which one is meant is unknown.
	resp, _ = get("/t.js")
	if resp.StatusCode != 404 {
		t.Errorf("no site among two: status %d; want 404", resp.StatusCode)
	}
	one := newBrowserHarness(t, Site{ID: "shop", Domains: []string{"shop.example.com"}})
	req := httptest.NewRequest("GET", "/t.js", nil)
	resp, err := one.c.App().Test(req, -1)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("the only site without ?site=: status %d err %v; want 200", resp.StatusCode, err)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"": false, "gzip": true, "br, gzip;q=0.5": true, "gzip;q=0": false, "identity": false, "*": true, "GZIP": true,
	} {
		if got := acceptsGzip(in); got != want {
			t.Errorf("acceptsGzip(%q) = %v; want %v", in, got, want)
		}
	}
}

func FuzzParseBrowserBatch(f *testing.F) {
	f.Add([]byte(shopBatch))
	f.Add([]byte(`{"site":"shop","sent":1700000000000,"lang":"en","events":[{"id":"a","name":"viewed_car","ts":"2026-01-01T00:00:00Z","props":{"make":["a",1,true],"year":"x"},"traits":{"email":"a@b.c"},"consent":{"ads":false},"url":"https://x/?fbclid=Ab"}]}`))
	f.Add([]byte(`{"events":[null,1,"x",[],{"name":"page_view","ts":-1}]}`))
	f.Add([]byte(`{"events":[{"name":"form_submitted","props":{"STAGE":"lead","stage":"mql","deal_amount":1e400}}]}`))
	cat := NewCatalog(browserDefs)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := ParseBrowserBatch(cat, body, browserCtx())
		if err != nil {
			return
		}
		if len(b.Completions) > maxBrowserEvents {
			t.Fatalf("%d completions; limit %d", len(b.Completions), maxBrowserEvents)
		}
		for _, c := range b.Completions {
			if _, ok := cat.Lookup(c.EventName); !ok || c.EventID == "" {
				t.Fatalf("completion %q/%q is not of a defined event with an id", c.EventName, c.EventID)
			}
			if c.OccurredAt.After(fixedNow.Add(MaxFutureSkew)) {
				t.Fatalf("OccurredAt %s is beyond the future limit", c.OccurredAt)
			}
			if len(c.Props) > MaxPropsPerCompletion {
				t.Fatalf("%d properties", len(c.Props))
			}
			for _, p := range c.Props {
				if utf8.RuneCountInString(p.Value) > MaxLen(p.Name) {
					t.Fatalf("property %s is %d characters", p.Name, utf8.RuneCountInString(p.Value))
				}
			}
			if utf8.RuneCountInString(c.Page.URL) > MaxLongValueLen || utf8.RuneCountInString(c.Page.Title) > MaxValueLen {
				t.Fatal("page field over its limit")
			}
		}
		for _, r := range b.Rejections {
			if len(r.Payload) > MaxRejectionPayload {
				t.Fatalf("rejection payload %d bytes", len(r.Payload))
			}
		}
	})
}

func BenchmarkParseBrowserBatch(b *testing.B) {
	var evs []string
	for i := range 10 {
		evs = append(evs, fmt.Sprintf(`{"id":"3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e%02d","name":"viewed_car","ts":%d,
			"props":{"make":"volvo","year":2020,"listing_url":"https://shop.example.com/cars/%d"},
			"url":"https://shop.example.com/cars/%d?utm_source=news","ref":"https://www.google.com/","title":"Volvo XC60",
			"consent":{"analytics":true,"ads":true},"traits":{"email":"ada@example.com"},"fbp":"fb.1.1700000000000.123456"}`,
			i, fixedNow.UnixMilli()-int64(i), i, i))
	}
	body := []byte(fmt.Sprintf(`{"site":"shop","sent":%d,"lang":"en-GB","events":[%s]}`, fixedNow.UnixMilli(), strings.Join(evs, ",")))
	cat := NewCatalog(browserDefs)
	bc := browserCtx()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBrowserBatch(cat, body, bc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseBrowserBatchWire pins what the batch reader accepts and refuses,
// as encoding/json did before it: malformed items are rejected one by one
// while the rest are kept; a repeated member's last value wins; null leaves
// a string member unset; member names match exactly.
func TestParseBrowserBatchWire(t *testing.T) {
	for _, body := range []string{`{} {}`, `{"site":5}`, `{"lang":true}`, `{"events":[{},]}`, `{"events":[{"name":"page_view"}]`, `[]`} {
		if _, err := ParseBrowserBatch(NewCatalog(browserDefs), []byte(body), browserCtx()); err == nil {
			t.Errorf("ParseBrowserBatch(%q): nil error; want one", body)
		}
	}
	if b := parseBatch(t, ` null `, browserCtx()); len(b.Completions)+len(b.Rejections) != 0 {
		t.Errorf("null body: %+v; want an empty batch", b)
	}

	body := `{"site":"shop","events":[null, 7 ,"x",[],{"name":5},{"name":"page_view","consent":{"ads":"yes"}},
		{"Name":"page_view"},{"name":"page_view","props":{"x":1},"url":{}},
		{"id":"good1234","name":"form_submitted","ts":` + fmt.Sprint(fixedNow.Add(-time.Hour-5*time.Second).UnixMilli()) + `,"title":"Form","title":null,"unknown":{"a":[1,{"b":null}]},
		 "props":{"stage":{},"form_id":"f1","stage":"mql"},"props":{"deal_amount":12.5},
		 "traits":{"zip":[1],"zip":" 12345 ","city":{}}}],
		"sent":1700000000000,"lang":"fr","sent":` + fmt.Sprint(fixedNow.Add(-time.Hour).UnixMilli()) + `}`
	b := parseBatch(t, body, browserCtx())
	type rej struct{ reason, field, payload string }
	var got []rej
	for _, r := range b.Rejections {
		got = append(got, rej{r.Reason, r.Field, r.Payload})
	}
	want := []rej{
		{"REQUIRED", "events[0].name", "null"},
		{"INVALID_JSON", "events[1]", "7"},
		{"INVALID_JSON", "events[2]", `"x"`},
		{"INVALID_JSON", "events[3]", "[]"},
		{"INVALID_JSON", "events[4]", `{"name":5}`},
		{"INVALID_JSON", "events[5]", `{"name":"page_view","consent":{"ads":"yes"}}`},
		{"REQUIRED", "events[6].name", `{"Name":"page_view"}`},
		{"INVALID_JSON", "events[7]", `{"name":"page_view","props":{"x":1},"url":{}}`},
	}
	if !slices.Equal(got, want) {
		t.Errorf("rejections\n got %q\nwant %q", got, want)
	}
	if len(b.Completions) != 1 {
		t.Fatalf("%d completions; want 1", len(b.Completions))
	}
	c := b.Completions[0]
	if c.EventID != "good1234" || c.Page.Title != "Form" || c.Client.Language != "fr" {
		t.Errorf("completion id %q title %q language %q; want good1234, Form, fr", c.EventID, c.Page.Title, c.Client.Language)
	}
	// "sent" came after the events, twice: the last one sets the skew.
	if want := fixedNow.Add(-5 * time.Second).Truncate(time.Millisecond); !c.OccurredAt.Equal(want) {
		t.Errorf("OccurredAt = %s; want %s", c.OccurredAt, want)
	}
	props := map[string]string{}
	for _, p := range c.Props {
		props[p.Name] = p.Value
	}
	if props["stage"] != "mql" || props["form_id"] != "f1" || props["deal_amount"] != "12.5" {
		t.Errorf("props = %v; want stage mql, form_id f1, deal_amount 12.5", props)
	}
	if c.Identity.Zip != "12345" || c.Identity.City != "" {
		t.Errorf("identity %+v; want zip 12345 and no city", c.Identity)
	}
	if !slices.Contains(c.Truncated, "traits.city: dropped, not a string or number") {
		t.Errorf("Truncated = %q; lacks the dropped city", c.Truncated)
	}
}

// TestParseBrowserMirrorReportAndDebug: the snippet's pixel mirror report is
// kept as rule=outcome for known outcomes only, and debug mode rides along.
func TestParseBrowserMirrorReportAndDebug(t *testing.T) {
	body := `{"site":"shop","events":[
		{"id":"e1","name":"page_view","debug":true,"mirror":{"leads":"sent","bad\u0001name":"sent","other":"queued","x":"lost","y":7}},
		{"id":"e2","name":"page_view","mirror":{"*":"gpc"}},
		{"id":"e3","name":"page_view"}
	]}`
	b := parseBatch(t, body, browserCtx())
	if len(b.Completions) != 3 {
		t.Fatalf("%d completions; want 3", len(b.Completions))
	}
	for i, want := range []struct {
		debug  bool
		mirror []string
	}{{true, []string{"leads=sent", "other=queued"}}, {false, []string{"*=gpc"}}, {false, nil}} {
		c := b.Completions[i]
		if c.Debug != want.debug || !slices.Equal(c.Mirror, want.mirror) {
			t.Errorf("completion %s: Debug %v, Mirror %q; want %v, %q", c.EventID, c.Debug, c.Mirror, want.debug, want.mirror)
		}
	}
}
