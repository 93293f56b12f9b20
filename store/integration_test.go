package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/chtest"
)

// migrated returns a connection and a freshly migrated database on the
// test binary's real ClickHouse server.
func migrated(t testing.TB) (driver.Conn, string) {
	t.Helper()
	dsn := chtest.DSN(t)
	db := chtest.Database(t, dsn)
	conn, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := Migrate(context.Background(), conn, db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return conn, db
}

// queryStrings reads a one-column String result.
func queryStrings(t *testing.T, conn driver.Conn, q string) []string {
	t.Helper()
	var out []string
	for _, r := range queryRowsOfStrings(t, conn, q) {
		out = append(out, r[0])
	}
	return out
}

func TestMigrateIdempotent(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	if err := Migrate(ctx, conn, db); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	v, err := SchemaVersion(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if want := migrations()[len(migrations())-1].version; v != want {
		t.Errorf("SchemaVersion = %d; want %d", v, want)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(migrations())) {
		t.Errorf("schema_migrations has %d rows after two runs; want %d", n, len(migrations()))
	}
	tables := queryStrings(t, conn, "SELECT name FROM system.tables WHERE database = '"+db+"' ORDER BY name")
	var want []string
	for _, nk := range schemaTables("", db) {
		want = append(want, strings.TrimSuffix(strings.TrimSuffix(nk, "View"), ":"))
	}
	if !slices.Equal(tables, want) {
		t.Errorf("tables = %v; want %v", tables, want)
	}
	for table, want := range map[string][]string{"events": eventColumns, "rejections": rejectionColumns, "deliveries": deliveryTable} {
		var got []string
		for _, r := range queryRowsOfStrings(t, conn, "DESCRIBE TABLE "+db+"."+table) { // in column order; 18.16's system.columns has no position
			got = append(got, r[0])
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s columns = %v; want %v", table, got, want)
		}
	}
	show := queryStrings(t, conn, "SHOW CREATE TABLE "+db+".events")
	t.Logf("SHOW CREATE TABLE events:\n%s", strings.Join(show, "\n"))
}

// fullCompletion sets every field that is stored, each to a distinct value.
func fullCompletion(i int, received time.Time) ingest.Completion {
	s := func(f string) string { return fmt.Sprintf("%s-%d", f, i) }
	return ingest.Completion{
		EventID:    s("id"),
		EventName:  "viewed_car",
		Site:       "shop",
		Source:     ingest.SourceBrowser,
		OccurredAt: time.Date(2026, 3, 4, 5, 6, 7, (100+i)*int(time.Millisecond), time.UTC),
		ReceivedAt: received,
		VisitorID:  s("visitor"),
		SessionID:  s("session"),
		ObjectID:   s("object"),
		Identity:   ingest.Identity{Email: s("a") + "@example.com", Phone: "+4912345"},
		Props:      []ingest.Prop{{Name: "make", Value: s("volvo")}, {Name: "year", Value: "2020"}},
		Truncated:  []string{"make: VALUE_TOO_LONG", "extra: TOO_MANY_PROPERTIES"},
		Debug:      i == 2,
		Mirror:     []string{"leads=" + s("sent")},
		Page:       ingest.Page{URL: "https://shop.example.com/cars/" + s("x"), Referrer: s("ref"), Title: s("title")},
		Client:     ingest.Client{IP: "203.0.113.0", UserAgent: s("ua"), Language: "de-DE"},
		Enrichment: ingest.Enrichment{
			Browser: "Firefox", BrowserVersion: "140.0", OS: "Linux", OSVersion: "6", DeviceType: "Desktop", IsBot: i%2 == 1,
			Country: "DE", Region: "BE", City: "Berlin", Path: "/cars/" + s("x"),
			UTMSource: s("us"), UTMMedium: s("um"), UTMCampaign: s("uc"), UTMTerm: s("ut"), UTMContent: s("uo"),
			ClickIDParam: "gclid", ClickID: s("click"), TouchpointSource: "PAID_SEARCH",
		},
	}
}

// eventRow is a row of events as read back, in eventColumns order.
type eventRow struct {
	EventID, Site, EventName                                        string
	OccurredAt                                                      time.Time
	OccurredMs                                                      uint16
	ReceivedAt                                                      time.Time
	Source, VisitorID, SessionID, Email, ObjectID                   string
	URL, Path, Referrer, PageTitle                                  string
	UTMSource, UTMMedium, UTMCampaign, UTMTerm, UTMContent          string
	Touchpoint, ClickIDParam, ClickID                               string
	IP, UserAgent, Language, Browser, BrowserVersion, OS, OSVersion string
	DeviceType                                                      string
	IsBot                                                           uint8
	Country, Region, City                                           string
	PropKeys, PropValues, Truncated                                 []string
	Debug                                                           uint8
	Mirror                                                          []string
}

func (r *eventRow) dest() []any {
	return []any{&r.EventID, &r.Site, &r.EventName, &r.OccurredAt, &r.OccurredMs, &r.ReceivedAt, &r.Source,
		&r.VisitorID, &r.SessionID, &r.Email, &r.ObjectID, &r.URL, &r.Path, &r.Referrer, &r.PageTitle,
		&r.UTMSource, &r.UTMMedium, &r.UTMCampaign, &r.UTMTerm, &r.UTMContent, &r.Touchpoint, &r.ClickIDParam, &r.ClickID,
		&r.IP, &r.UserAgent, &r.Language, &r.Browser, &r.BrowserVersion, &r.OS, &r.OSVersion, &r.DeviceType, &r.IsBot,
		&r.Country, &r.Region, &r.City, &r.PropKeys, &r.PropValues, &r.Truncated, &r.Debug, &r.Mirror}
}

func TestLogWriterRoundTrip(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	received := time.Date(2026, 3, 4, 5, 6, 9, 0, time.UTC)
	in := []ingest.Completion{fullCompletion(1, received), fullCompletion(2, received), {
		EventID: "bare", EventName: "page_view", Site: "blog", Source: ingest.SourceAPI,
		OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 999*int(time.Millisecond), time.UTC), ReceivedAt: received,
	}}
	for i := range in {
		if in[i].Client.IP != "" {
			in[i].Client.IP = "203.0.113.77" // the log keeps the full IP; the row gets 203.0.113.0
		}
	}
	l := openLog(t, t.TempDir())
	appendRecords(t, l, in[:2], in[2:])
	w := startLogWriter(t, l, conn, db, LogWriterConfig{FlushAge: 10 * time.Millisecond, StorageIP: anonymise})
	closeLogWriter(t, w, 30*time.Second)
	if p := w.Pending(); p != 0 {
		t.Errorf("log records pending after Close = %d; want 0", p)
	}

	rows, err := conn.Query(ctx, "SELECT "+strings.Join(eventColumns, ", ")+" FROM "+db+".events ORDER BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []eventRow
	for rows.Next() {
		var r eventRow
		if err := rows.Scan(r.dest()...); err != nil {
			t.Fatal(err)
		}
		r.OccurredAt, r.ReceivedAt = r.OccurredAt.UTC(), r.ReceivedAt.UTC()
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []eventRow{
		{EventID: "bare", Site: "blog", EventName: "page_view", OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), OccurredMs: 999,
			ReceivedAt: received, Source: "api", PropKeys: []string{}, PropValues: []string{}, Truncated: []string{}, Mirror: []string{}},
	}
	for i := 1; i <= 2; i++ {
		s := func(f string) string { return fmt.Sprintf("%s-%d", f, i) }
		want = append(want, eventRow{
			EventID: s("id"), Site: "shop", EventName: "viewed_car",
			OccurredAt: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), OccurredMs: uint16(100 + i), ReceivedAt: received,
			Source: "browser", VisitorID: s("visitor"), SessionID: s("session"), Email: s("a") + "@example.com", ObjectID: s("object"),
			URL: "https://shop.example.com/cars/" + s("x"), Path: "/cars/" + s("x"), Referrer: s("ref"), PageTitle: s("title"),
			UTMSource: s("us"), UTMMedium: s("um"), UTMCampaign: s("uc"), UTMTerm: s("ut"), UTMContent: s("uo"),
			Touchpoint: "PAID_SEARCH", ClickIDParam: "gclid", ClickID: s("click"),
			IP: "203.0.113.0", UserAgent: s("ua"), Language: "de-DE", Browser: "Firefox", BrowserVersion: "140.0", OS: "Linux", OSVersion: "6",
			DeviceType: "Desktop", IsBot: uint8(i % 2), Country: "DE", Region: "BE", City: "Berlin",
			PropKeys: []string{"make", "year"}, PropValues: []string{s("volvo"), "2020"},
			Truncated: []string{"make: VALUE_TOO_LONG", "extra: TOO_MANY_PROPERTIES"},
			Debug:     uint8(i / 2), Mirror: []string{"leads=" + s("sent")},
		})
	}
	if len(got) != len(want) {
		t.Fatalf("read %d rows; want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestTypedView(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	def := sampleDefinition()
	if err := SyncViews(ctx, conn, db, []ingest.Definition{def}); err != nil {
		t.Fatalf("SyncViews: %v", err)
	}
	rows := queryRowsOfStrings(t, conn, "DESCRIBE TABLE "+db+".event_viewed_car")
	wantTypes := map[string]string{
		"make": "String", "year": "Nullable(Float64)", "condition": "Array(String)",
		"delivered_at": "Nullable(DateTime('UTC'))", "first_registered": "Nullable(Date)",
		"financing": "Nullable(UInt8)", "prop_url": "String",
		"url": "String", "occurred_at": "DateTime('UTC')", "occurred_at_ms": "UInt16", "truncated": "Array(String)",
	}
	gotTypes := map[string]string{}
	var names []string
	for _, r := range rows {
		gotTypes[r[0]] = r[1]
		names = append(names, r[0])
	}
	for name, want := range wantTypes {
		if got := gotTypes[name]; got != want {
			t.Errorf("event_viewed_car.%s type = %q; want %q", name, got, want)
		}
	}
	if want := append(commonColumns(), PropertyColumns(def)...); !slices.Equal(names, want) {
		t.Errorf("event_viewed_car columns = %v; want %v", names, want)
	}
	if _, ok := gotTypes["prop_keys"]; ok {
		t.Error("view shows prop_keys")
	}

	received := time.Now().UTC().Truncate(time.Second)
	full := ingest.Completion{EventID: "full", EventName: "viewed_car", Site: "shop", OccurredAt: received, ReceivedAt: received,
		Page: ingest.Page{URL: "https://shop.example.com/page"},
		Props: []ingest.Prop{
			{Name: "condition", Value: "new;used"}, {Name: "delivered_at", Value: "1700000000123"},
			{Name: "financing", Value: "true"}, {Name: "first_registered", Value: "2019-03-01"},
			{Name: "make", Value: "volvo"}, {Name: "url", Value: "https://cars.example.com/1"}, {Name: "year", Value: "2020.5"},
		}}
	empty := ingest.Completion{EventID: "empty", EventName: "viewed_car", Site: "shop", OccurredAt: received, ReceivedAt: received}
	other := ingest.Completion{EventID: "other", EventName: "something_else", Site: "shop", OccurredAt: received, ReceivedAt: received,
		Props: []ingest.Prop{{Name: "make", Value: "saab"}}}
	var b EventBatch
	b.Encode([]ingest.Completion{full, empty, other})
	if err := NewInserter(conn, db).InsertEvents(ctx, &b); err != nil {
		t.Fatal(err)
	}

	q := fmt.Sprintf(`SELECT event_id, url, make, prop_url,
    ifNull(toString(year), 'NULL'), arrayStringConcat(condition, '|'),
    ifNull(toString(delivered_at), 'NULL'), ifNull(toString(first_registered), 'NULL'), ifNull(toString(financing), 'NULL')
FROM %s.event_viewed_car ORDER BY event_id`, db)
	got := queryRowsOfStrings(t, conn, q)
	want := [][]string{
		{"empty", "", "", "", "NULL", "", "NULL", "NULL", "NULL"},
		{"full", "https://shop.example.com/page", "volvo", "https://cars.example.com/1", "2020.5", "new|used", "2023-11-14 22:13:20", "2019-03-01", "1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event_viewed_car rows:\n got %q\nwant %q", got, want)
	}
}

// queryRowsOfStrings reads a result whose columns are all String.
func queryRowsOfStrings(t *testing.T, conn driver.Conn, q string) [][]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		r := make([]string, len(rows.Columns()))
		dest := make([]any, len(r))
		for i := range r {
			dest[i] = &r[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func TestSyncViewsFollowsDefinitions(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	views := func() []string {
		return queryStrings(t, conn, "SELECT name FROM system.tables WHERE engine = 'View' AND name LIKE 'event\\_%' AND database = '"+db+"' ORDER BY name")
	}
	columns := func(view string) []string {
		return queryStrings(t, conn, fmt.Sprintf("SELECT name FROM system.columns WHERE database = '%s' AND table = '%s' AND name IN ('a', 'b')", db, view))
	}
	a := ingest.Definition{Name: "signed_up", Properties: []ingest.Property{{Name: "a", Type: ingest.TypeString}}}
	other := ingest.Definition{Name: "left", Properties: []ingest.Property{{Name: "a", Type: ingest.TypeNumber}}}
	// An analyst's own view that follows the naming rule: never touched.
	if err := conn.Exec(ctx, "CREATE VIEW "+db+".event_mine AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}

	if err := SyncViews(ctx, conn, db, []ingest.Definition{a, other}); err != nil {
		t.Fatalf("SyncViews: %v", err)
	}
	if got, want := views(), []string{"event_left", "event_mine", "event_page_view", "event_signed_up"}; !slices.Equal(got, want) {
		t.Errorf("views = %v; want %v", got, want)
	}
	var tracked uint64
	count := func() uint64 {
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".typed_views").Scan(&tracked); err != nil {
			t.Fatal(err)
		}
		return tracked
	}
	before := count()
	if err := SyncViews(ctx, conn, db, []ingest.Definition{a, other}); err != nil {
		t.Fatalf("SyncViews unchanged: %v", err)
	}
	if after := count(); after != before {
		t.Errorf("unchanged definitions wrote %d typed_views rows; want none", after-before)
	}

	// A property added, an event removed.
	a.Properties = append(a.Properties, ingest.Property{Name: "b", Type: ingest.TypeBool})
	if err := SyncViews(ctx, conn, db, []ingest.Definition{a}); err != nil {
		t.Fatalf("SyncViews after change: %v", err)
	}
	if got, want := views(), []string{"event_mine", "event_page_view", "event_signed_up"}; !slices.Equal(got, want) {
		t.Errorf("views after removing left = %v; want %v", got, want)
	}
	if got := columns("event_signed_up"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("event_signed_up property columns = %v; want [a b]", got)
	}

	// Defining an event whose view name an analyst already took is reported,
	// and the analyst's view stays.
	err := SyncViews(ctx, conn, db, []ingest.Definition{a, {Name: "mine"}})
	if err == nil || !strings.Contains(err.Error(), "not created by tally") {
		t.Errorf("SyncViews over a foreign view = %v; want a 'not created by tally' error", err)
	}
	if got := queryStrings(t, conn, "SELECT name FROM system.columns WHERE database = '"+db+"' AND table = 'event_mine'"); !slices.Equal(got, []string{"x"}) {
		t.Errorf("event_mine columns = %v; want [x] (untouched)", got)
	}
	// A bad name (an unchecked config) makes no SQL, and the rest is synced.
	err = SyncViews(ctx, conn, db, []ingest.Definition{a, other, {Name: "x`; DROP TABLE events"}})
	if err == nil || !strings.Contains(err.Error(), "not an internal name") {
		t.Errorf("SyncViews with a bad name = %v; want a 'not an internal name' error", err)
	}
	// A removed event defined again gets its view back.
	if err := SyncViews(ctx, conn, db, []ingest.Definition{a, other}); err != nil {
		t.Fatalf("SyncViews re-adding left: %v", err)
	}
	if got, want := views(), []string{"event_left", "event_mine", "event_page_view", "event_signed_up"}; !slices.Equal(got, want) {
		t.Errorf("views after re-adding left = %v; want %v", got, want)
	}
}

func TestDeduperWarm(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	now := time.Now().UTC()
	cs := []ingest.Completion{
		{EventName: "e", EventID: "recent-1", OccurredAt: now, ReceivedAt: now.Add(-time.Hour)},
		{EventName: "e", EventID: "recent-2", OccurredAt: now, ReceivedAt: now.Add(-48 * time.Hour)},
		{EventName: "e", EventID: "old", OccurredAt: now, ReceivedAt: now.Add(-10 * 24 * time.Hour)},
	}
	var b EventBatch
	b.Encode(cs)
	if err := NewInserter(conn, db).InsertEvents(ctx, &b); err != nil {
		t.Fatal(err)
	}
	d := NewDeduper(DeduperConfig{})
	n, err := d.Warm(ctx, conn, db, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Warm read %d rows; want 2", n)
	}
	for id, want := range map[string]bool{"recent-1": false, "recent-2": false, "old": true, "new": true} {
		if got := d.FirstSeen("e", id); got != want {
			t.Errorf("FirstSeen(e, %s) after warm = %v; want %v", id, got, want)
		}
	}

	// Capacity bounds the warm-up, and the newest keys are the ones read:
	// 40 keys received a minute apart into a Deduper of 16 (one per shard).
	var many []ingest.Completion
	for i := range 40 {
		many = append(many, ingest.Completion{EventName: "m", EventID: fmt.Sprint(i), OccurredAt: now, ReceivedAt: now.Add(time.Duration(i-40) * time.Minute)})
	}
	b.Reset()
	b.Encode(many)
	if err := NewInserter(conn, db).InsertEvents(ctx, &b); err != nil {
		t.Fatal(err)
	}
	small := NewDeduper(DeduperConfig{MaxKeys: dedupShards})
	if n, err := small.Warm(ctx, conn, db, 2*time.Hour); err != nil || n != dedupShards {
		t.Fatalf("Warm into a Deduper of %d = %d, %v; want %d rows", dedupShards, n, err, dedupShards)
	}
	if small.FirstSeen("m", "39") {
		t.Error("the newest key was not remembered after warm-up")
	}
	if !small.FirstSeen("m", "0") {
		t.Error("the oldest key was remembered; capacity should have left it out")
	}
}

func TestRejectionsRoundTrip(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	long := strings.Repeat("é", ingest.MaxRejectionPayload) // 2 bytes each: cut to 4096 bytes, 2048 characters
	w := NewRejectionWriter(RejectionWriterConfig{}, NewInserter(conn, db).InsertRejections, nil, nil)
	w.Reject([]ingest.Rejection{
		{At: at, Site: "shop", Source: ingest.SourceAPI, EventName: "viewed_car", Reason: "UNKNOWN_PROPERTY", Field: "inputs[3].properties.colour", Payload: `{"colour":"red"}`},
		{At: at, Site: "shop", Source: ingest.SourceBrowser, EventName: "viewed_car", Reason: "VALUE_TOO_LONG", Field: "make", Payload: long},
	})
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	got := queryRowsOfStrings(t, conn, "SELECT toString(rejected_at), site, source, event_name, reason, field, payload FROM "+db+".rejections ORDER BY reason")
	want := [][]string{
		{"2026-05-06 07:08:09", "shop", "api", "viewed_car", "UNKNOWN_PROPERTY", "inputs[3].properties.colour", `{"colour":"red"}`},
		{"2026-05-06 07:08:09", "shop", "browser", "viewed_car", "VALUE_TOO_LONG", "make", strings.Repeat("é", ingest.MaxRejectionPayload/2)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rejections:\n got %q\nwant %q", got, want)
	}
}

// deliveryTable is the deliveries table in column order: fbtrace_id stays
// for the rows written before trace_id, which 18.16 can only append.
var deliveryTable = []string{"event_id", "event_name", "rule", "destination", "forwarded_name", "status", "attempts", "http_status", "fbtrace_id", "error", "created_at", "updated_at", "payload", "response", "trace_id"}

func TestDeliveriesRoundTrip(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	created := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	ds := []Delivery{
		{EventID: "e1", SourceEvent: "form_submitted", Rule: "contact_form_lead", Destination: "meta_shop", ForwardedName: "Lead",
			Status: "retrying", Attempts: 1, HTTPStatus: 503, Message: "service unavailable", QueuedAt: created, At: created.Add(time.Second)},
		{EventID: "e1", SourceEvent: "form_submitted", Rule: "contact_form_lead", Destination: "meta_shop", ForwardedName: "Lead",
			Status: "sent", Attempts: 2, HTTPStatus: 200, TraceID: "AbCdEf", QueuedAt: created, At: created.Add(time.Minute),
			Payload: `{"event_name":"Lead","event_id":"e1"}`, Response: `{"events_received":1,"fbtrace_id":"AbCdEf"}`},
	}
	in := NewInserter(conn, db)
	if err := in.InsertDeliveries(ctx, ds[:1]); err != nil {
		t.Fatal(err)
	}
	w := NewDeliveryWriter(in.InsertDeliveries, nil, nil)
	w.Record(ds[1:])
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	if err := in.InsertDeliveries(ctx, nil); err != nil {
		t.Errorf("InsertDeliveries(nil) = %v; want nil", err)
	}
	got := queryRowsOfStrings(t, conn, "SELECT event_id, event_name, rule, destination, forwarded_name, status, toString(attempts), toString(http_status), trace_id, error, toString(created_at), toString(updated_at), payload, response FROM "+db+".deliveries ORDER BY updated_at")
	want := [][]string{
		{"e1", "form_submitted", "contact_form_lead", "meta_shop", "Lead", "retrying", "1", "503", "", "service unavailable", "2026-05-06 07:08:09", "2026-05-06 07:08:10", "", ""},
		{"e1", "form_submitted", "contact_form_lead", "meta_shop", "Lead", "sent", "2", "200", "AbCdEf", "", "2026-05-06 07:08:09", "2026-05-06 07:09:09", `{"event_name":"Lead","event_id":"e1"}`, `{"events_received":1,"fbtrace_id":"AbCdEf"}`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deliveries:\n got %q\nwant %q", got, want)
	}

	// A row written before trace_id existed reads its fbtrace_id there.
	old, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".deliveries (event_id, destination, status, fbtrace_id, updated_at)")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Append("old", "meta_shop", "sent", "OldTrace", created.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := old.Send(); err != nil {
		t.Fatal(err)
	}
	read, err := ReadDeliveries(ctx, conn, db, DeliveryQuery{Destination: "meta_shop"})
	if err != nil {
		t.Fatal(err)
	}
	var traces []string
	for _, d := range read {
		traces = append(traces, d.EventID+":"+d.Status+":"+d.TraceID)
	}
	if want := []string{"e1:sent:AbCdEf", "e1:retrying:", "old:sent:OldTrace"}; !reflect.DeepEqual(traces, want) {
		t.Errorf("ReadDeliveries = %q; want %q (newest first, old rows' fbtrace_id as trace id)", traces, want)
	}
	if one, err := ReadDeliveries(ctx, conn, db, DeliveryQuery{EventID: "e1", Status: "sent"}); err != nil || len(one) != 1 || one[0].Payload == "" || one[0].Attempts != 2 {
		t.Errorf("ReadDeliveries(e1, sent) = %+v, %v; want the one sent row with its payload", one, err)
	}
}

// A migration step repeated after a crash (its columns added, its
// schema_migrations row not yet written) adds only what is missing:
// ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS.
func TestMigrateAddsOnlyMissingColumns(t *testing.T) {
	dsn := chtest.DSN(t)
	db := chtest.Database(t, dsn)
	ctx := context.Background()
	conn, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := quoteIdent(db)
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+q); err != nil {
		t.Fatal(err)
	}
	// deliveries as a crash left it: payload added, response not.
	half := strings.Replace(expand(deliveriesDDL, q), "\n)\nENGINE", ",\n    payload String DEFAULT ''\n)\nENGINE", 1)
	if err := conn.Exec(ctx, half); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, conn, db); err != nil {
		t.Fatalf("Migrate over a half-applied step: %v", err)
	}
	var got []string
	for _, r := range queryRowsOfStrings(t, conn, "DESCRIBE TABLE "+q+".deliveries") {
		got = append(got, r[0])
	}
	if !slices.Equal(got, deliveryTable) {
		t.Errorf("deliveries columns = %v; want %v", got, deliveryTable)
	}
}

// schemaTables lists, sorted, the tables and views SchemaDDLOn creates in
// db (not the typed views, which SyncViews makes), each with "View" for a
// view and "" for a table.
func schemaTables(cluster, db string) []string {
	var out []string
	seen := map[string]bool{}
	for _, stmt := range SchemaDDLOn(db, cluster) {
		name, kind := "", ""
		if m := createTableRe.FindStringSubmatch(stmt); m != nil {
			name = m[2]
		} else if rest, ok := strings.CutPrefix(stmt, "CREATE TABLE IF NOT EXISTS "+quoteIdent(db)+"."); ok {
			name = rest[:strings.IndexAny(rest, " \n")]
		} else if rest, ok := strings.CutPrefix(stmt, "CREATE VIEW "+quoteIdent(db)+"."); ok {
			name, kind = strings.Trim(rest[:strings.IndexAny(rest, " \n")], "`"), "View"
		}
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, name+":"+kind)
		}
	}
	slices.Sort(out)
	return out
}
