package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memReader is an EventReader over a slice, sorted and paged the way the
// store's reader is; a completion belongs to an email when it carries it.
type memReader struct {
	mu   sync.Mutex
	all  []Completion
	last EventQuery
}

func (r *memReader) ReadEvents(_ context.Context, q EventQuery) ([]Completion, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = q
	less := func(a, b Cursor) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := strings.Compare(a.EventName, b.EventName); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	}
	var out []Completion
	for _, c := range r.all {
		cur := CursorOf(&c)
		switch {
		case q.Email != "" && c.Identity.Email != q.Email,
			q.EventNames != nil && !slices.Contains(q.EventNames, c.EventName),
			!q.After.IsZero() && !c.OccurredAt.After(q.After),
			!q.Before.IsZero() && !c.OccurredAt.Before(q.Before),
			q.Cursor != nil && !q.Descending && less(cur, *q.Cursor) <= 0,
			q.Cursor != nil && q.Descending && less(cur, *q.Cursor) >= 0:
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Completion) int {
		if q.Descending {
			return less(CursorOf(&b), CursorOf(&a))
		}
		return less(CursorOf(&a), CursorOf(&b))
	})
	return out[:min(len(out), q.Limit)], nil
}

const (
	readToken = "read-token-0123456789"
	bothToken = "both-token-0123456789"
)

func newReadHarness(t *testing.T) (*apiHarness, *memReader) {
	t.Helper()
	rd := &memReader{}
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, name := range []string{"page_view", "viewed_car", "viewed_car", "page_view", "viewed_car"} {
		rd.all = append(rd.all, Completion{EventID: "ev-" + string(rune('a'+i)), EventName: name, Site: "shop",
			OccurredAt: base.Add(time.Duration(i) * time.Minute).Add(5 * time.Millisecond), VisitorID: "v1",
			Identity: Identity{Email: "ada@example.com"}, Props: []Prop{{Name: "make", Value: "volvo"}},
			Page: Page{URL: "https://shop.example.com/cars/1"}, Enrichment: Enrichment{Country: "SE"}})
	}
	rd.all = append(rd.all, Completion{EventID: "ev-bob", EventName: "viewed_car", OccurredAt: base, ObjectID: "42"})
	h := &apiHarness{sink: &fakeSink{}, rej: &fakeRejections{}}
	c, err := NewCollector(Config{
		Tokens: []Token{{Name: "crm", Token: testToken}, {Name: "bi", Token: readToken, Scopes: []string{ScopeRead}},
			{Name: "both", Token: bothToken, Scopes: []string{ScopeSend, ScopeRead}}},
		Definitions: []Definition{testDef, {Name: "deal_closed", Object: "deal"}},
		Pipeline:    NewPipeline(PipelineConfig{Sink: h.sink}), Rejections: h.rej, Reader: rd,
		Now: func() time.Time { return fixedNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h, rd
}

func TestReadScopes(t *testing.T) {
	h, _ := newReadHarness(t)
	send := `{"eventName":"viewed_car","email":"a@b.com"}`
	f := func(method, path, token, body string, want int) {
		t.Helper()
		resp, b := h.do(t, method, path, token, body)
		if resp.StatusCode != want {
			t.Errorf("%s %s with %s = %d (%s); want %d", method, path, token, resp.StatusCode, b, want)
		}
		if want == 403 && !strings.Contains(string(b), `"category":"MISSING_SCOPES"`) {
			t.Errorf("%s %s with %s: body %s; want MISSING_SCOPES", method, path, token, b)
		}
	}
	f("GET", "/events/v3/events?objectType=contact", testToken, "", 403) // a token without scopes sends only
	f("GET", "/events/v3/events/?objectType=contact", readToken, "", 200)
	f("GET", "/events/v3/events/event-types", readToken, "", 200)
	f("GET", "/events/v3/events", bothToken, "", 200)
	f("GET", "/events/v3/events", "", "", 401)
	f("POST", "/events/v3/send", readToken, send, 403)
	f("POST", "/events/v3/send/batch", readToken, `{"inputs":[`+send+`]}`, 403)
	f("POST", "/events/v3/send", bothToken, send, 204)
	f("POST", "/events/v3/send", testToken, send, 204)
	f("GET", "/events/v3/event-definitions", readToken, "", 200)
}

func TestParseReadRequest(t *testing.T) {
	cat := NewCatalog([]Definition{testDef, {Name: "deal_closed", Object: "deal"}})
	f := func(query string, check func(r readRequest) bool) {
		t.Helper()
		vals, err := url.ParseQuery(query)
		if err != nil {
			t.Fatal(err)
		}
		r, errs := parseReadRequest(cat, vals)
		if len(errs) > 0 || !check(r) {
			t.Errorf("parseReadRequest(%q) = %+v, %v", query, r.q, errs)
		}
	}
	f("objectProperty.email=%20Ada.Lovelace@Example.COM%20", func(r readRequest) bool {
		return r.q.Email == "ada.lovelace@example.com" && r.q.Descending && r.q.Limit == 100 && r.q.EventNames == nil
	})
	f("eventType=pe1234567_viewed_car&sort=ASCENDING&limit=7", func(r readRequest) bool {
		return slices.Equal(r.q.EventNames, []string{"viewed_car"}) && !r.q.Descending && r.q.Limit == 7
	})
	f("objectType=contact", func(r readRequest) bool { return slices.Equal(r.q.EventNames, []string{"page_view", "viewed_car"}) })
	f("objectType=0-3", func(r readRequest) bool { return slices.Equal(r.q.EventNames, []string{"deal_closed"}) })
	f("objectType=contact&eventType=deal_closed", func(r readRequest) bool { return r.q.EventNames != nil && len(r.q.EventNames) == 0 })
	f("occurredAfter=2026-01-02T03:04:05.678Z&occurredBefore=1767225600000", func(r readRequest) bool {
		return r.q.After.Equal(time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)) && r.q.Before.Equal(time.UnixMilli(1767225600000))
	})
	f("id=a&id=b,c&property.Make=volvo", func(r readRequest) bool {
		return slices.Equal(r.q.IDs, []string{"a", "b", "c"}) && len(r.q.Properties) == 1 && r.q.Properties[0] == (Prop{Name: "make", Value: "volvo"})
	})
	cur := Cursor{OccurredAt: time.UnixMilli(1767225600123).UTC(), EventName: "viewed_car", EventID: "x"}
	f("before="+cur.Encode(), func(r readRequest) bool { return r.backward && !r.q.Descending && *r.q.Cursor == cur })
	f("after="+cur.Encode()+"&sort=DESCENDING", func(r readRequest) bool { return r.paged && r.q.Descending && *r.q.Cursor == cur })

	bad := func(query, in string) {
		t.Helper()
		vals, _ := url.ParseQuery(query)
		_, errs := parseReadRequest(cat, vals)
		if len(errs) == 0 || errs[0].Path != in {
			t.Errorf("parseReadRequest(%q) errors = %v; want one in %s", query, errs, in)
		}
	}
	bad("limit=0", "limit")
	bad("limit=1001", "limit")
	bad("limit=ten", "limit")
	bad("sort=sideways", "sort")
	bad("eventType=nope", "eventType")
	bad("occurredAfter=yesterday", "occurredAfter")
	bad("after=!!", "after")
	bad("objectProperty.email=not-an-address", "objectProperty.email")
	bad("objectProperty.phone=1", "objectProperty.phone")
	bad("colour=red", "colour")
}

func TestReadResponseAndPaging(t *testing.T) {
	h, rd := newReadHarness(t)
	get := func(query string) (int, eventsPage) {
		t.Helper()
		resp, b := h.do(t, "GET", "/events/v3/events?"+query, readToken, "")
		var p eventsPage
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatalf("body %s: %v", b, err)
			}
		}
		return resp.StatusCode, p
	}
	code, p := get("objectType=contact&objectProperty.email=ADA@example.com&limit=2")
	if code != 200 || len(p.Results) != 2 || p.Paging == nil || p.Paging.Next == nil || p.Paging.Prev != nil {
		t.Fatalf("first page: %d %+v", code, p)
	}
	if rd.last.Email != "ada@example.com" {
		t.Errorf("reader asked for email %q", rd.last.Email)
	}
	first := p.Results[0]
	want := unifiedEvent{ID: "ev-e", EventType: "viewed_car", ObjectID: "ada@example.com", ObjectType: "CONTACT", OccurredAt: "2026-03-01T10:04:00.005Z",
		Properties: map[string]string{"make": "volvo", "hs_page_url": "https://shop.example.com/cars/1", "hs_country": "SE"}}
	if first.ID != want.ID || first.EventType != want.EventType || first.ObjectID != want.ObjectID || first.ObjectType != want.ObjectType ||
		first.OccurredAt != want.OccurredAt || !equalMaps(first.Properties, want.Properties) {
		t.Errorf("first result = %+v; want %+v", first, want)
	}
	var seen []string
	for _, r := range p.Results {
		seen = append(seen, r.ID)
	}
	after := p.Paging.Next.After
	if !strings.Contains(p.Paging.Next.Link, "after="+after) || !strings.HasPrefix(p.Paging.Next.Link, "/events/v3/events") {
		t.Errorf("next link %q", p.Paging.Next.Link)
	}
	for p.Paging != nil && p.Paging.Next != nil {
		_, p = get("objectProperty.email=ada@example.com&limit=2&after=" + url.QueryEscape(p.Paging.Next.After))
		for _, r := range p.Results {
			seen = append(seen, r.ID)
		}
		if len(seen) > 10 {
			break
		}
	}
	if want := []string{"ev-e", "ev-d", "ev-c", "ev-b", "ev-a"}; !slices.Equal(seen, want) {
		t.Errorf("paged through %v; want %v", seen, want)
	}
	// Back one page from the second page's first row.
	_, p2 := get("objectProperty.email=ada@example.com&limit=2&after=" + url.QueryEscape(after))
	_, back := get("objectProperty.email=ada@example.com&limit=2&before=" + url.QueryEscape(p2.Paging.Prev.Before))
	if len(back.Results) != 2 || back.Results[0].ID != "ev-e" || back.Results[1].ID != "ev-d" {
		t.Errorf("before the second page = %+v; want ev-e, ev-d", back.Results)
	}
	// objectId falls back to the object id, then email, then visitor id.
	_, p = get("eventType=viewed_car&sort=ASCENDING&limit=1")
	if len(p.Results) != 1 || p.Results[0].ID != "ev-bob" || p.Results[0].ObjectID != "42" {
		t.Errorf("ascending first viewed_car = %+v", p.Results)
	}
	// An object type no event has: an empty page, not an error.
	if code, p := get("objectType=ticket"); code != 200 || len(p.Results) != 0 || p.Paging != nil {
		t.Errorf("objectType=ticket: %d %+v", code, p)
	}
	resp, b := h.do(t, "GET", "/events/v3/events?limit=5000&sort=up", readToken, "")
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"in":"limit"`) || !strings.Contains(string(b), `"in":"sort"`) {
		t.Errorf("bad query: %d %s; want 400 naming limit and sort", resp.StatusCode, b)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEmailsNormalised(t *testing.T) {
	h := newAPIHarness(t)
	resp, body := h.do(t, "POST", "/events/v3/send", testToken, `{"eventName":"viewed_car","email":"  Ada.Lovelace@Example.com "}`)
	if resp.StatusCode != 204 {
		t.Fatalf("send: %d %s", resp.StatusCode, body)
	}
	if got := h.sink.got[0].Identity.Email; got != "ada.lovelace@example.com" {
		t.Errorf("API email stored as %q; want ada.lovelace@example.com", got)
	}
	var c Completion
	applyTraits(&c, []wireMember{{name: "email", value: " Ada.Lovelace@EXAMPLE.com", ok: true}})
	if c.Identity.Email != "ada.lovelace@example.com" || len(c.Truncated) != 0 {
		t.Errorf("identify email stored as %q (%v); want ada.lovelace@example.com", c.Identity.Email, c.Truncated)
	}
}

// TestHubSpotClientReadsEvents reads a contact's completions with HubSpot's
// own Node client (events.eventsApi.getPage): every page parses, the
// paging cursor leads through all of them, and a send-only token is
// refused with the client's 403.
func TestHubSpotClientReadsEvents(t *testing.T) {
	node := requireHubSpotClient(t)
	h, _ := newReadHarness(t)
	out := runHubSpotClient(t, h.c, node, "read.mjs", "TALLY_TOKEN="+readToken, "TALLY_SEND_TOKEN="+testToken)
	type result struct {
		Call   string
		OK     bool
		Code   int
		Body   json.RawMessage
		Result struct {
			Results []struct {
				ID, EventType, ObjectID, ObjectType string
				OccurredAt                          time.Time
				Properties                          map[string]string
			}
			Paging *struct{ Next *struct{ After string } }
		}
	}
	var pages []string
	calls := map[string]result{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		calls[r.Call] = r
		if strings.HasPrefix(r.Call, "page") {
			if !r.OK {
				t.Fatalf("%s failed: %d %s", r.Call, r.Code, r.Body)
			}
			for _, e := range r.Result.Results {
				pages = append(pages, e.ID)
			}
		}
	}
	if want := []string{"ev-e", "ev-d", "ev-c", "ev-b", "ev-a"}; !slices.Equal(pages, want) {
		t.Errorf("client paged through %v; want %v\n%s", pages, want, out)
	}
	f := calls["filtered"]
	if !f.OK || len(f.Result.Results) != 4 || f.Result.Results[0].ID != "ev-bob" || f.Result.Results[1].OccurredAt.UnixMilli() != time.Date(2026, 3, 1, 10, 1, 0, 5e6, time.UTC).UnixMilli() {
		t.Errorf("filtered call = %+v", f)
	}
	if s := calls["sendOnly"]; s.OK || s.Code != 403 {
		t.Errorf("send-only token read: ok=%v code=%d %s; want 403", s.OK, s.Code, s.Body)
	}
}
