package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// writeCompletions stores cs the way the events writer does: person rows,
// then events.
func writeCompletions(t *testing.T, in *Inserter, cs []ingest.Completion) {
	t.Helper()
	ctx := context.Background()
	if err := in.InsertPersons(ctx, cs); err != nil {
		t.Fatalf("InsertPersons: %v", err)
	}
	var b EventBatch
	b.Encode(cs)
	if err := in.InsertEvents(ctx, &b); err != nil {
		t.Fatalf("InsertEvents: %v", err)
	}
}

func ids(cs []ingest.Completion) []string {
	out := make([]string, len(cs))
	for i := range cs {
		out[i] = cs[i].EventID
	}
	return out
}

// TestReaderTimelineByEmail: a visitor browses anonymously, identifies,
// browses on; a read by email returns all of it, newest first, paged,
// and nobody else's.
func TestReaderTimelineByEmail(t *testing.T) {
	conn, db := migrated(t)
	in := NewInserter(conn, db)
	r := NewReader(conn, db)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute).Add(123 * time.Millisecond) }
	c := func(id, name string, m int, visitor, email string) ingest.Completion {
		return ingest.Completion{EventID: id, EventName: name, Site: "shop", Source: ingest.SourceBrowser, OccurredAt: at(m), ReceivedAt: at(m),
			VisitorID: visitor, Identity: ingest.Identity{Email: email}, Props: []ingest.Prop{{Name: "make", Value: "volvo"}},
			Page: ingest.Page{URL: "https://shop.example.com/" + id}}
	}
	writeCompletions(t, in, []ingest.Completion{
		c("a1", "page_view", 0, "v-ada", ""),                 // anonymous, before identify
		c("a2", "viewed_car", 1, "v-ada", ""),                // anonymous, before identify
		c("a3", "viewed_car", 2, "v-ada", "ada@example.com"), // identify rides on this one
		c("b1", "page_view", 3, "v-bob", ""),                 // someone else
	})
	// Later batches: the same visitor, anonymous again (traits not sent),
	// and an API completion by email only, from another month.
	writeCompletions(t, in, []ingest.Completion{c("a4", "page_view", 4, "v-ada", "")})
	api := c("a5", "viewed_car", 60*24*40, "", "ada@example.com")
	api.Source = ingest.SourceAPI
	writeCompletions(t, in, []ingest.Completion{api})

	got, err := r.ReadEvents(ctx, ingest.EventQuery{Email: "ada@example.com", Descending: true, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a5", "a4", "a3", "a2", "a1"}; !slices.Equal(ids(got), want) {
		t.Fatalf("timeline of ada = %v; want %v", ids(got), want)
	}
	if g := got[3]; g.OccurredAt != at(1) || g.Page.URL != "https://shop.example.com/a2" || len(g.Props) != 1 || g.Props[0] != (ingest.Prop{Name: "make", Value: "volvo"}) {
		t.Errorf("a2 read back as %+v", g)
	}

	// Paging: two at a time, oldest first, from each page's last row.
	var pages [][]string
	q := ingest.EventQuery{Email: "ada@example.com", Limit: 2}
	for range 4 {
		page, err := r.ReadEvents(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages = append(pages, ids(page))
		cur := ingest.CursorOf(&page[len(page)-1])
		q.Cursor = &cur
	}
	if len(pages) != 3 || !slices.Equal(pages[0], []string{"a1", "a2"}) || !slices.Equal(pages[1], []string{"a3", "a4"}) || !slices.Equal(pages[2], []string{"a5"}) {
		t.Errorf("pages = %v; want [a1 a2] [a3 a4] [a5]", pages)
	}

	f := func(q ingest.EventQuery, want ...string) {
		t.Helper()
		q.Limit = 100
		got, err := r.ReadEvents(ctx, q)
		if err != nil {
			t.Fatalf("ReadEvents(%+v): %v", q, err)
		}
		if !slices.Equal(ids(got), want) {
			t.Errorf("ReadEvents(%+v) = %v; want %v", q, ids(got), want)
		}
	}
	f(ingest.EventQuery{Email: "ada@example.com", EventNames: []string{"viewed_car"}}, "a2", "a3", "a5")
	f(ingest.EventQuery{Email: "ada@example.com", After: at(1), Before: at(4)}, "a3")
	f(ingest.EventQuery{Email: "ada@example.com", IDs: []string{"a4", "b1"}}, "a4")
	f(ingest.EventQuery{Email: "nobody@example.com"})
	f(ingest.EventQuery{EventNames: []string{"page_view"}}, "a1", "b1", "a4")
	f(ingest.EventQuery{EventNames: []string{}})
	f(ingest.EventQuery{IDs: []string{"b1"}}, "b1")
	f(ingest.EventQuery{Email: "ada@example.com", Properties: []ingest.Prop{{Name: "make", Value: "saab"}}})
	f(ingest.EventQuery{Properties: []ingest.Prop{{Name: "make", Value: "volvo"}}, Descending: true}, "a5", "a4", "b1", "a3", "a2", "a1")

	// The analysts' view has the same timeline.
	view := queryStrings(t, conn, "SELECT event_id FROM "+db+".contact_timeline WHERE contact = 'ada@example.com' ORDER BY occurred_at")
	if want := []string{"a1", "a2", "a3", "a4", "a5"}; !slices.Equal(view, want) {
		t.Errorf("contact_timeline for ada = %v; want %v", view, want)
	}
	// And so has the lookup by hand that docs/analysts.md shows.
	byHand := queryStrings(t, conn, `SELECT event_id FROM `+db+`.events
WHERE (event_name, event_id) IN (
    SELECT event_name, event_id FROM `+db+`.person_events
    WHERE person IN (SELECT concat('v:', visitor_id) FROM `+db+`.identities
                     WHERE kind = 'email' AND value = 'ada@example.com')
       OR person = 'e:ada@example.com')
ORDER BY occurred_at, occurred_at_ms`)
	if want := []string{"a1", "a2", "a3", "a4", "a5"}; !slices.Equal(byHand, want) {
		t.Errorf("the analysts' lookup for ada = %v; want %v", byHand, want)
	}
}

// TestReaderObjectID: objectId finds the API's object id and the visitors
// an identify linked to that external id.
func TestReaderObjectID(t *testing.T) {
	conn, db := migrated(t)
	in := NewInserter(conn, db)
	r := NewReader(conn, db)
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	writeCompletions(t, in, []ingest.Completion{
		{EventID: "x1", EventName: "page_view", Site: "shop", OccurredAt: t0, VisitorID: "v1"},
		{EventID: "x2", EventName: "page_view", Site: "shop", OccurredAt: t0.Add(time.Second), VisitorID: "v1", Identity: ingest.Identity{ExternalID: "crm-7"}},
		{EventID: "x3", EventName: "deal_closed", Source: ingest.SourceAPI, OccurredAt: t0.Add(2 * time.Second), ObjectID: "crm-7"},
		{EventID: "x4", EventName: "deal_closed", Source: ingest.SourceAPI, OccurredAt: t0.Add(3 * time.Second), ObjectID: "crm-8"},
	})
	got, err := r.ReadEvents(context.Background(), ingest.EventQuery{ObjectID: "crm-7", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"x1", "x2", "x3"}; !slices.Equal(ids(got), want) {
		t.Errorf("objectId crm-7 = %v; want %v", ids(got), want)
	}
}
