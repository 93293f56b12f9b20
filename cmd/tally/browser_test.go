package main

// The tracker in a real headless Chromium against a whole running tally,
// each test asserting on what reached storage.
//
// The browser talks to a front server (httptest) that serves the test pages
// and passes /t.js and /e through to tally, the way a site's reverse proxy
// would: the page, the script and the collector share one origin. The front
// server can also refuse collection requests, or pass one through and then
// cut the connection before the answer, to stage outages and lost answers.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tally-analytics/tally/snippet/chromiumtest"
)

// browserYAML is the config every browser test runs with.
const browserYAML = `
demo: true
sites:
  - id: web
    domains: [127.0.0.1, localhost, shop.test]
events:
  - name: viewed_car
    label: Viewed car
    properties:
      - {name: make, type: string}
      - {name: year, type: number}
      - {name: condition, type: enumeration, options: [new, used]}
      - {name: listing_url, type: string}
    capture:
      - clicked: "a.car-card"
      - visited: "/p/visit/cars/*"
      - visited: "/demo/cars/*"
  - name: form_submitted
    label: Form submitted
    properties:
      - {name: form_id, type: string}
      - {name: email, type: string}
      - {name: deal_amount, type: number}
`

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// normalUA is what the browser says it is: headless Chromium's own user
// agent contains HeadlessChrome and would be flagged as a bot.
const normalUA = chromiumtest.NormalUA

// eventRow is one stored completion as the tests read it back.
type eventRow struct {
	EventID    string
	EventName  string
	URL        string
	VisitorID  string
	SessionID  string
	Email      string
	OccurredMs int64
	Props      map[string]string
	Truncated  []string
	IsBot      bool
	Source     string
}

// front is the site's web server in front of tally.
type front struct {
	srv   *httptest.Server
	proxy *httputil.ReverseProxy
	tally *url.URL

	mu     sync.Mutex
	pages  map[string]string // path → head and body HTML
	refuse bool              // cut every collection request without passing it on
	lose   int               // pass this many through, then cut before the answer
	status []int             // answer the next requests with these statuses, not passing them on
	posts  []string          // bodies of collection requests seen
	passed []string          // bodies of those tally has answered
}

func newFront(t *testing.T, tallyURL string) *front {
	t.Helper()
	u, err := url.Parse(tallyURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &front{tally: u, proxy: httputil.NewSingleHostReverseProxy(u), pages: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// page registers the HTML of a test page; head goes after the stub and
// before the script tag, so calls in it are queued before load.
func (f *front) page(path, head, body string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pages[path] = `<!doctype html><html><head><meta charset="utf-8"><title>` + path + `</title>
<script>window.tally=window.tally||function(){(tally.q=tally.q||[]).push(arguments)}</script>
` + head + `
<script async src="/t.js?site=web"></script></head><body>` + body + `</body></html>`
	return f.srv.URL + path
}

// answer makes the next collection requests get these statuses from the
// front server instead of reaching tally.
func (f *front) answer(statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = append(f.status, statuses...)
}

func (f *front) set(refuse bool, lose int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse, f.lose = refuse, lose
}

// postsWith counts collection requests whose body contains s.
func (f *front) postsWith(s string) int { return f.count(&f.posts, s) }

// passedWith counts collection requests tally has answered whose body
// contains s.
func (f *front) passedWith(s string) int { return f.count(&f.passed, s) }

func (f *front) count(bodies *[]string, s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range *bodies {
		if strings.Contains(p, s) {
			n++
		}
	}
	return n
}

func (f *front) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/t.js" || r.URL.Path == "/demo" || strings.HasPrefix(r.URL.Path, "/demo/"):
		f.proxy.ServeHTTP(w, r)
	case r.URL.Path == "/e" && r.Method == http.MethodPost:
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.posts = append(f.posts, string(body))
		refuse, lose := f.refuse, f.lose > 0
		if lose {
			f.lose--
		}
		status := 0
		if len(f.status) > 0 {
			status, f.status = f.status[0], f.status[1:]
		}
		f.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		if refuse {
			cut(w)
			return
		}
		if lose {
			// The collector gets and stores the batch; the browser never
			// hears so, and must retry.
			req, _ := http.NewRequest(http.MethodPost, f.tally.String()+"/e", strings.NewReader(string(body)))
			req.Header = r.Header.Clone()
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			cut(w)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		f.proxy.ServeHTTP(w, r)
		f.mu.Lock()
		f.passed = append(f.passed, string(body))
		f.mu.Unlock()
	case r.URL.Path == "/e":
		f.proxy.ServeHTTP(w, r)
	default:
		f.mu.Lock()
		html, ok := f.pages[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			html = "<!doctype html><title>plain</title><p>a page without the tracker"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, html)
	}
}

// cut closes the connection without an answer: the browser's fetch fails
// as it does when the network drops.
func cut(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// newBrowser starts a headless Chromium with a fresh profile.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	return chromiumtest.New(t, extra...)
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	return chromiumtest.Eval[T](t, ctx, js)
}

// loaded waits until the tracker has replaced the stub.
func loaded(t *testing.T, ctx context.Context) {
	t.Helper()
	// Evaluating right after a navigation can meet the old document's
	// execution context on its way out; such an answer is asked again.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(window.tally && window.tally.l)`))
		if ok && err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracker did not load: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling the page, not waiting for time to pass
	}
}

// waitRows polls storage until the rows under pathPrefix satisfy ok, and
// returns them; it fails after 20 s with what it saw last.
func waitRows(t *testing.T, tu *tallyUnderTest, pathPrefix string, ok func([]eventRow) bool) []eventRow {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows := tu.rowsUnder(t, pathPrefix)
		slices.SortStableFunc(rows, func(a, b eventRow) int { return int(a.OccurredMs - b.OccurredMs) })
		if ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows under %s never matched; last seen:\n%s", pathPrefix, dumpRows(rows))
		}
		time.Sleep(100 * time.Millisecond) // polling storage, not waiting for time to pass
	}
}

func dumpRows(rows []eventRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %s %s %s visitor=%q email=%q props=%v truncated=%q\n", r.EventName, r.EventID, r.URL, r.VisitorID, r.Email, r.Props, r.Truncated)
	}
	return b.String()
}

func named(rows []eventRow, name string) []eventRow {
	var out []eventRow
	for _, r := range rows {
		if r.EventName == name {
			out = append(out, r)
		}
	}
	return out
}

func atLeast(name string, n int) func([]eventRow) bool {
	return func(rows []eventRow) bool { return len(named(rows, name)) >= n }
}

func TestBrowser(t *testing.T) {
	start := time.Now()
	tu := startBrowserTally(t, browserYAML)
	f := newFront(t, tu.url)
	t.Cleanup(func() { t.Logf("browser suite wall time: %s", time.Since(start).Round(10*time.Millisecond)) })

	t.Run("queued before load arrive in order", func(t *testing.T) {
		ctx := newBrowser(t)
		u := f.page("/p/queue", `<script>
tally('track', 'viewed_car', {make: 'first'});
tally('track', 'viewed_car', {make: 'second'});
tally('identify', {email: 'queued@example.com'});
tally('track', 'form_submitted', {form_id: 'third', deal_amount: 12.5});
</script>`, "")
		do(t, ctx, chromedp.Navigate(u))
		rows := waitRows(t, tu, "/p/queue", func(r []eventRow) bool { return len(r) >= 4 })
		var got []string
		for _, r := range rows {
			got = append(got, r.EventName+":"+r.Props["make"]+r.Props["form_id"])
		}
		want := []string{"page_view:", "viewed_car:first", "viewed_car:second", "form_submitted:third"}
		if !slices.Equal(got, want) {
			t.Errorf("stored in order %q; want %q", got, want)
		}
		// identify rides on the completions after it, not before.
		if rows[3].Email != "queued@example.com" || rows[1].Email != "" {
			t.Errorf("emails = %q, %q; want only the completion after identify to carry it", rows[1].Email, rows[3].Email)
		}
		if rows[3].Props["deal_amount"] != "12.5" {
			t.Errorf("deal_amount = %q; want 12.5", rows[3].Props["deal_amount"])
		}
	})

	t.Run("a page view per SPA navigation", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/spa", "", "")))
		loaded(t, ctx)
		// The rows are ordered by their occurred time in milliseconds: each
		// navigation waits for the clock to move on, so no two share one.
		eval[chromedp.Void](t, ctx, `const tick = () => { const t = Date.now(); while (Date.now() === t) {} };
history.pushState({}, '', '/p/spa/two'); tick();
history.replaceState({scroll: 1}, '', '/p/spa/two'); tick();
history.pushState({}, '', '/p/spa/three#top'); tick();
history.back();`)
		rows := waitRows(t, tu, "/p/spa", atLeast("page_view", 4))
		var paths []string
		for _, r := range named(rows, "page_view") {
			u, _ := url.Parse(r.URL)
			paths = append(paths, u.Path)
		}
		if want := []string{"/p/spa", "/p/spa/two", "/p/spa/three", "/p/spa/two"}; !slices.Equal(paths, want) {
			t.Errorf("page views %q; want %q (replaceState to the same URL is not a view)", paths, want)
		}
	})

	t.Run("click and visited-URL captures", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/visit", "", `<a class="car-card" id="card" href="#" onclick="return false"
data-tally-make="volvo" data-tally-year="2020" data-tally-condition="used"><span id="inner">Volvo XC60</span></a>`)))
		loaded(t, ctx)
		// The visit first: a visit right after a click capture of the same
		// event is the click's own (the demo page's test covers that).
		eval[chromedp.Void](t, ctx, `history.pushState({}, '', '/p/visit/cars/xc60')`)
		do(t, ctx, chromedp.Click(chromedp.ID("inner")))
		rows := waitRows(t, tu, "/p/visit", atLeast("viewed_car", 2))
		cars := named(rows, "viewed_car")
		visit, click := cars[0], cars[1]
		if click.Props["make"] != "volvo" || click.Props["year"] != "2020" || click.Props["condition"] != "used" {
			t.Errorf("clicked capture props = %v; want the card's data-tally-* attributes", click.Props)
		}
		if u, _ := url.Parse(visit.URL); u.Path != "/p/visit/cars/xc60" || len(visit.Props) != 0 {
			t.Errorf("visited capture at %s with %v; want /p/visit/cars/xc60 without props", visit.URL, visit.Props)
		}
	})

	t.Run("tracked right before navigation arrives", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/leave", "", `<form id="f" action="/p/left" method="get"><button id="go">Send</button></form>
<script>document.getElementById('f').onsubmit = function () { tally('track', 'form_submitted', {form_id: 'leaving'}); };
// Tracked while the page is already going away. Chromium would still run a
// fetch queued now; browsers that do not are stood in for by taking fetch
// away, so only the tracker's beacon can carry it.
addEventListener('pagehide', function () {
  tally('track', 'form_submitted', {form_id: 'pagehide'});
  window.fetch = function () { return Promise.reject(new TypeError('unloading')); };
});</script>`)))
		loaded(t, ctx)
		do(t, ctx, chromedp.Click(chromedp.ID("go")))
		rows := waitRows(t, tu, "/p/leave", atLeast("form_submitted", 2))
		var ids []string
		for _, r := range named(rows, "form_submitted") {
			ids = append(ids, r.Props["form_id"])
		}
		if want := []string{"leaving", "pagehide"}; !slices.Equal(ids, want) {
			t.Errorf("form_id = %q; want %q", ids, want)
		}
		if loc := eval[string](t, ctx, `location.pathname`); loc != "/p/left" {
			t.Errorf("browser is at %s; want the form's target /p/left", loc)
		}
	})

	t.Run("over-limit values arrive truncated and recorded", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/long", `<script>
tally('track', 'viewed_car', {make: 'm'.repeat(300), listing_url: 'https://x.example/' + 'u'.repeat(1100), colour: 'red'});
tally('track', 'no_such_event', {marker: 'long-test'});
</script>`, "")))
		rows := waitRows(t, tu, "/p/long", atLeast("viewed_car", 1))
		r := named(rows, "viewed_car")[0]
		if n := len(r.Props["make"]); n != 256 {
			t.Errorf("make is %d characters; want 256", n)
		}
		if n := len(r.Props["listing_url"]); n != 1024 {
			t.Errorf("listing_url is %d characters; want 1024", n)
		}
		if _, ok := r.Props["colour"]; ok {
			t.Error("undefined property colour was stored")
		}
		for _, want := range []string{"make: cut from 300 to 256", "listing_url: cut from 1118 to 1024", "colour: dropped"} {
			if !slices.ContainsFunc(r.Truncated, func(s string) bool { return strings.HasPrefix(s, want) }) {
				t.Errorf("truncated = %q; lacks %q", r.Truncated, want)
			}
		}
		// The undefined event of the same batch, and the dropped property,
		// are rejections; the good completion was stored regardless.
		want := map[string]bool{"UNKNOWN_EVENT no_such_event": false, "UNKNOWN_PROPERTY viewed_car": false}
		deadline := time.Now().Add(20 * time.Second)
		for {
			for _, rj := range tu.rejections(t) {
				key := rj[0] + " " + rj[2]
				if _, ok := want[key]; ok && (strings.Contains(rj[3], "long-test") || strings.Contains(rj[3], "colour")) {
					want[key] = true
				}
			}
			if want["UNKNOWN_EVENT no_such_event"] && want["UNKNOWN_PROPERTY viewed_car"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rejections found: %v; want both", want)
			}
			time.Sleep(100 * time.Millisecond) // polling storage
		}
	})

	t.Run("a retried batch is stored once", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/retry", "", "")))
		loaded(t, ctx)
		waitRows(t, tu, "/p/retry", atLeast("page_view", 1))
		f.set(false, 1) // the next batch is stored, but its answer is lost
		id := eval[string](t, ctx, `(function () {
  var id; tally('debug', function (k, d) { if (k == 'track' && d.name == 'viewed_car') id = d.id; });
  tally('track', 'viewed_car', {make: 'retried'}); return id; })()`)
		if id == "" {
			t.Fatal("debug hook did not report the event id")
		}
		waitRows(t, tu, "/p/retry", atLeast("viewed_car", 1))
		// The browser saw a network error and sends the batch again.
		deadline := time.Now().Add(15 * time.Second)
		for f.postsWith(id) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("batch with %s was sent %d times; want a retry", id, f.postsWith(id))
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Once the retry's answer is in, the browser forgets the batch.
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!localStorage.getItem('tally_q')`)); err != nil {
			t.Fatalf("retry queue never emptied: %v", err)
		}
		rows := waitRows(t, tu, "/p/retry", atLeast("viewed_car", 1))
		if n := len(named(rows, "viewed_car")); n != 1 {
			t.Errorf("%d rows for a completion sent %d times; want 1", n, f.postsWith(id))
		}
	})

	t.Run("4xx is not retried, 429 is", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/status", "", "")))
		loaded(t, ctx)
		waitRows(t, tu, "/p/status", atLeast("page_view", 1))
		eval[chromedp.Void](t, ctx, `window.answers = []; tally('debug', function (k, d) { if (k == 'result') answers.push(d); })`)
		f.answer(400)
		eval[chromedp.Void](t, ctx, `tally('track', 'viewed_car', {make: 'refused'})`)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`answers.indexOf(400) >= 0`)); err != nil {
			t.Fatal(err)
		}
		if q := eval[string](t, ctx, `localStorage.getItem('tally_q') || ''`); q != "" {
			t.Errorf("after a 400 the retry queue holds %s; want nothing", q)
		}
		f.answer(429)
		eval[chromedp.Void](t, ctx, `tally('track', 'viewed_car', {make: 'later'})`)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`answers.indexOf(429) >= 0`)); err != nil {
			t.Fatal(err)
		}
		if q := eval[string](t, ctx, `localStorage.getItem('tally_q') || ''`); !strings.Contains(q, `"later"`) {
			t.Errorf("after a 429 the retry queue holds %q; want the completion", q)
		}
		rows := waitRows(t, tu, "/p/status", atLeast("viewed_car", 1))
		var makes []string
		for _, r := range named(rows, "viewed_car") {
			makes = append(makes, r.Props["make"])
		}
		if !slices.Equal(makes, []string{"later"}) {
			t.Errorf("stored %q; want only the completion retried after 429", makes)
		}
	})

	t.Run("an offline period is replayed when back online", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/offline", "", "")))
		loaded(t, ctx)
		waitRows(t, tu, "/p/offline", atLeast("page_view", 1))
		f.set(true, 0)
		if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: true}); err != nil {
			t.Fatal(err)
		}
		eval[chromedp.Void](t, ctx, `tally('track', 'viewed_car', {make: 'offline-1'}); tally('track', 'viewed_car', {make: 'offline-2'})`)
		// While the network is down the completions wait in localStorage.
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(JSON.parse(localStorage.getItem('tally_q')) || []).length == 2`)); err != nil {
			t.Fatalf("completions were not queued while offline: %v", err)
		}
		if got := named(tu.rowsUnder(t, "/p/offline"), "viewed_car"); len(got) != 0 {
			t.Fatalf("stored while offline: %s", dumpRows(got))
		}
		f.set(false, 0)
		if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: false}); err != nil {
			t.Fatal(err)
		}
		rows := waitRows(t, tu, "/p/offline", atLeast("viewed_car", 2))
		if got := named(rows, "viewed_car"); got[0].Props["make"] != "offline-1" || got[1].Props["make"] != "offline-2" {
			t.Errorf("replayed %s", dumpRows(got))
		}
	})

	t.Run("plain-http site: event ids without crypto.randomUUID, _fbc from fbclid", func(t *testing.T) {
		// shop.test is an insecure context (unlike 127.0.0.1 and localhost),
		// where crypto.randomUUID does not exist.
		ctx := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP shop.test 127.0.0.1"))
		u, _ := url.Parse(f.page("/p/insecure", "", ""))
		u.Host = "shop.test:" + u.Port()
		do(t, ctx, chromedp.Navigate(u.String()+"?fbclid=AbC-123_xY"))
		loaded(t, ctx)
		if eval[bool](t, ctx, `isSecureContext || typeof crypto.randomUUID == 'function'`) {
			t.Fatal("shop.test is a secure context; the test needs an insecure one")
		}
		rows := waitRows(t, tu, "/p/insecure", atLeast("page_view", 1))
		if id := rows[0].EventID; !uuidV4.MatchString(id) {
			t.Errorf("event id %q is not a UUID v4", id)
		}
		fbc := eval[string](t, ctx, `(document.cookie.match(/(?:^|; )_fbc=([^;]*)/) || [])[1] || ''`)
		if !regexp.MustCompile(`^fb\.1\.\d{13}\.AbC-123_xY$`).MatchString(fbc) {
			t.Errorf("_fbc = %q; want fb.1.<ms>.AbC-123_xY", fbc)
		}
	})

	t.Run("demo page", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.srv.URL+"/demo"))
		loaded(t, ctx)
		do(t, ctx, chromedp.Click(chromedp.CSS(`a.car-card[href="/demo/cars/volvo-xc60"]`)))
		do(t, ctx, chromedp.Click(chromedp.CSS(`#contact button`)))
		rows := waitRows(t, tu, "/demo", func(r []eventRow) bool {
			return len(named(r, "viewed_car")) >= 1 && len(named(r, "form_submitted")) >= 1
		})
		// The click capture counts the visit it leads to: the visited
		// capture of the same event does not count it again (it would have
		// been sent before the form's completion, which is stored).
		cars := named(rows, "viewed_car")
		if len(cars) != 1 {
			t.Fatalf("a card click stored %d viewed_car; want 1: %+v", len(cars), cars)
		}
		if cars[0].Props["make"] != "volvo" || cars[0].Props["listing_url"] != "/demo/cars/volvo-xc60" {
			t.Errorf("card click stored %v", cars[0].Props)
		}
		form := named(rows, "form_submitted")[0]
		if form.Props["form_id"] != "contact" || form.Props["deal_amount"] != "120" || form.Email != "ada@example.com" {
			t.Errorf("form stored %v with email %q", form.Props, form.Email)
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`/send +\d completion.*\n.*answer 204/.test(document.getElementById('log').textContent)`)); err != nil {
			t.Errorf("the demo's log never showed a batch answered 204: %v", err)
		}
	})

	t.Run("without analytics consent no cookie", func(t *testing.T) {
		ctx := newBrowser(t)
		u := f.page("/p/noconsent", `<script>tally('consent', {analytics: false, ads: false});
tally('identify', {email: 'private@example.com'});
tally('track', 'viewed_car', {make: 'anonymous'});</script>`, "")
		do(t, ctx, chromedp.Navigate(u))
		rows := waitRows(t, tu, "/p/noconsent", atLeast("viewed_car", 1))
		for _, r := range rows {
			if r.VisitorID != "" || r.SessionID != "" || r.Email != "" {
				t.Errorf("row without consent carries visitor %q session %q email %q", r.VisitorID, r.SessionID, r.Email)
			}
		}
		for _, c := range cookies(t, ctx, f.srv.URL) {
			if strings.HasPrefix(c.Name, "_tally") {
				t.Errorf("cookie %s=%s set without analytics consent", c.Name, c.Value)
			}
		}
		if v := eval[bool](t, ctx, `localStorage.getItem('tally_u') === null && localStorage.getItem('tally_q') === null`); !v {
			t.Error("traits or queue kept in localStorage without analytics consent")
		}
		// The opt-out persists: the next page sends anonymously too.
		do(t, ctx, chromedp.Navigate(f.page("/p/noconsent/next", "", "")))
		rows = waitRows(t, tu, "/p/noconsent/next", atLeast("page_view", 1))
		if rows[0].VisitorID != "" || len(cookies(t, ctx, f.srv.URL)) != 0 {
			t.Errorf("after opt-out: visitor %q, cookies %v", rows[0].VisitorID, cookies(t, ctx, f.srv.URL))
		}
	})

	t.Run("no clear-text traits in localStorage", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/pii", `<script>tally('identify', {email: 'pii.person@example.com', phone: '+49 151 2345 6789', first_name: 'Ada'});</script>`, "")))
		loaded(t, ctx)
		waitRows(t, tu, "/p/pii", atLeast("page_view", 1))
		f.set(true, 0) // the collector is unreachable: the next completion waits in the retry queue
		eval[chromedp.Void](t, ctx, `tally('track', 'viewed_car', {make: 'queued'})`)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(JSON.parse(localStorage.getItem('tally_q')) || []).length >= 1`)); err != nil {
			t.Fatalf("the completion was not queued: %v", err)
		}
		all := eval[string](t, ctx, `JSON.stringify(Object.keys(localStorage).map(function (k) { return [k, localStorage.getItem(k)] }))`)
		for _, pii := range []string{"pii.person@example.com", "2345 6789", "Ada"} {
			if strings.Contains(all, pii) {
				t.Errorf("localStorage holds %q: %s", pii, all)
			}
		}
		f.set(false, 0)
		eval[chromedp.Void](t, ctx, `dispatchEvent(new Event('online'))`)
		rows := waitRows(t, tu, "/p/pii", atLeast("viewed_car", 1))
		if r := named(rows, "viewed_car")[0]; r.Props["make"] != "queued" {
			t.Errorf("replayed %s", dumpRows([]eventRow{r}))
		}
	})

	t.Run("withdrawing consent clears cookies, storage and the queue at once", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/withdraw", `<script>tally('identify', {email: 'leaving@example.com'});</script>`, "")))
		loaded(t, ctx)
		waitRows(t, tu, "/p/withdraw", atLeast("page_view", 1))
		has := func() bool {
			for _, c := range cookies(t, ctx, f.srv.URL) {
				if c.Name == "_tally_id" {
					return true
				}
			}
			return false
		}
		if !has() {
			t.Fatal("no visitor cookie before the withdrawal")
		}
		f.set(true, 0)
		eval[chromedp.Void](t, ctx, `tally('track', 'viewed_car', {make: 'pending'})`)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!localStorage.getItem('tally_q')`)); err != nil {
			t.Fatalf("nothing queued: %v", err)
		}
		f.set(false, 0)
		// No completion follows the withdrawal: the tracker tells the
		// collector itself.
		eval[chromedp.Void](t, ctx, `tally('consent', {analytics: false})`)
		deadline := time.Now().Add(10 * time.Second)
		for has() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if has() {
			t.Error("the visitor cookie is still set after consent was withdrawn")
		}
		if v := eval[bool](t, ctx, `localStorage.getItem('tally_q') === null && localStorage.getItem('tally_u') === null`); !v {
			t.Error("the retry queue or traits are still in localStorage after the withdrawal")
		}
		eval[chromedp.Void](t, ctx, `dispatchEvent(new Event('online'))`)
		time.Sleep(500 * time.Millisecond)
		if got := named(tu.rowsUnder(t, "/p/withdraw"), "viewed_car"); len(got) != 0 {
			t.Errorf("a completion queued before the withdrawal was sent after it: %s", dumpRows(got))
		}
	})

	t.Run("the browser keeps the server-set visitor cookie", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/cookie", "", "")))
		rows := waitRows(t, tu, "/p/cookie", atLeast("page_view", 1))
		var vc *network.Cookie
		for _, c := range cookies(t, ctx, f.srv.URL) {
			if c.Name == "_tally_id" {
				vc = c
			}
		}
		if vc == nil {
			t.Fatal("no _tally_id cookie in the browser")
		}
		if r := rows[0]; r.IsBot || r.Source != "browser" {
			t.Errorf("row is_bot %v, source %q; want a browser completion not flagged as a bot", r.IsBot, r.Source)
		}
		if vc.Value != rows[0].VisitorID || !vc.HTTPOnly || vc.SameSite != network.CookieSameSiteLax {
			t.Errorf("cookie %s (HttpOnly %v, SameSite %s); row visitor %q", vc.Value, vc.HTTPOnly, vc.SameSite, rows[0].VisitorID)
		}
		days := time.Until(time.Unix(int64(vc.Expires), 0)).Hours() / 24
		if days < 389 || days > 391 {
			t.Errorf("cookie expires in %.1f days; want 390", days)
		}
		// The next page view carries the same visitor.
		do(t, ctx, chromedp.Navigate(f.page("/p/cookie/again", "", "")))
		again := waitRows(t, tu, "/p/cookie/again", atLeast("page_view", 1))
		if again[0].VisitorID != vc.Value || again[0].SessionID != rows[0].SessionID {
			t.Errorf("second page: visitor %q session %q; want %q %q", again[0].VisitorID, again[0].SessionID, vc.Value, rows[0].SessionID)
		}
		// Withdrawing analytics consent clears the cookies the server set.
		loaded(t, ctx)
		eval[chromedp.Void](t, ctx, `tally('consent', {analytics: false}); tally('track', 'viewed_car', {make: 'withdrawn'})`)
		after := waitRows(t, tu, "/p/cookie/again", atLeast("viewed_car", 1))
		if v := named(after, "viewed_car")[0].VisitorID; v != "" {
			t.Errorf("visitor %q after consent was withdrawn; want none", v)
		}
		for _, c := range cookies(t, ctx, f.srv.URL) {
			if strings.HasPrefix(c.Name, "_tally") {
				t.Errorf("cookie %s still set after consent was withdrawn", c.Name)
			}
		}
	})
}

func cookies(t *testing.T, ctx context.Context, u string) []*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Cookies
}

// tallyUnderTest is a running tally and a way to read its stored rows.
type tallyUnderTest struct {
	ts   *testServer
	url  string
	read func(t *testing.T) []eventRow
	// rejections reads the site's browser rejections as reason, field,
	// event name, payload.
	rejections func(t *testing.T) [][4]string
}

// rowsUnder returns the stored rows whose page path starts with prefix.
func (tu *tallyUnderTest) rowsUnder(t *testing.T, prefix string) []eventRow {
	var out []eventRow
	for _, r := range tu.read(t) {
		if u, err := url.Parse(r.URL); err == nil && strings.HasPrefix(u.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}
