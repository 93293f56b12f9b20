package salesforce_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf16"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/rules/deliver/delivertest"
	"github.com/tally-analytics/tally/rules/salesforce"
	"github.com/tally-analytics/tally/rules/salesforce/sftest"
)

const (
	clientID, clientSecret = "3MVG9-test-consumer-key", "test-consumer-secret"
	extField               = "Tally_Event_Id__c"
)

func standIn() *sftest.Server {
	return sftest.New(sftest.Config{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: "5Aep-refresh",
		APIVersion: salesforce.DefaultAPIVersion, ExternalIDField: extField})
}

func newClient(t *testing.T, srv *sftest.Server, refresh string) *salesforce.Client {
	t.Helper()
	c, err := salesforce.NewClient(salesforce.Config{InstanceURL: "https://acme.my.salesforce.com", ClientID: clientID,
		ClientSecret: clientSecret, RefreshToken: refresh}, &http.Client{Transport: srv.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type env struct {
	srv *sftest.Server
	fwd *deliver.Forwarder
	log *delivertest.Log
	m   *salesforce.Mapping
}

func start(t *testing.T, srv *sftest.Server, task salesforce.Task) env {
	t.Helper()
	l := &delivertest.Log{}
	f, err := deliver.NewForwarder(deliver.Config{Dir: t.TempDir()}, []deliver.Destination{salesforce.Destination("crm", newClient(t, srv, ""))},
		l, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := salesforce.NewMapping(task, map[string]string{"form_submitted": "Form submitted"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return env{srv: srv, fwd: f, log: l, m: m}
}

func completion(id, email string, at time.Time, props ...ingest.Prop) ingest.Completion {
	return ingest.Completion{EventID: id, EventName: "form_submitted", OccurredAt: at, ReceivedAt: at,
		Identity: ingest.Identity{Email: email}, Props: props, Page: ingest.Page{URL: "https://shop.example.com/contact"}}
}

// enqueue maps each completion and puts the task in the outbox; a
// completion the mapping refuses fails the test.
func (e env) enqueue(t *testing.T, cs ...ingest.Completion) {
	t.Helper()
	for _, c := range cs {
		it, st, msg := e.m.Map(&c, time.Now())
		if st != "" {
			t.Fatalf("Map(%s) = %s: %s", c.EventID, st, msg)
		}
		if err := e.fwd.Enqueue(context.Background(), "crm", deliver.Origin{Rule: "crm_forms", Source: c.EventName}, it); err != nil {
			t.Fatal(err)
		}
	}
}

// logRequests writes the requests the stand-in received to the test log:
// the exact requests tally sends.
func logRequests(t *testing.T, srv *sftest.Server) {
	for _, r := range srv.Requests() {
		line := r.Method + " " + r.Path
		if r.SOQL != "" {
			line += "?q=" + r.SOQL
		}
		if r.Path == "/services/oauth2/token" {
			r.Body = "[form redacted: grant_type, client_id, client_secret]"
		}
		t.Logf("%s → %d\n%s", line, r.Status, r.Body)
	}
}

func TestTasksGoToTheNewestContactElseLead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := standIn()
		now := time.Now()
		srv.AddContact("ada@example.com", now.Add(-48*time.Hour))
		newest := srv.AddContact("Ada@Example.com", now.Add(-time.Hour))
		lead := srv.AddLead("o'brien@example.com", now.Add(-time.Hour), false)
		srv.AddLead("converted@example.com", now.Add(-time.Hour), true)
		e := start(t, srv, salesforce.Task{Subject: "{{label}}: {{form_id}}", Type: "Email", Priority: "High"})
		e.enqueue(t,
			completion("ev-ada", "ada@example.com", now.Add(-time.Minute), ingest.Prop{Name: "form_id", Value: "contact"}, ingest.Prop{Name: "make", Value: "volvo"}),
			completion("ev-lead", "o'brien@example.com", now.Add(-time.Minute), ingest.Prop{Name: "form_id", Value: "brochure"}),
			completion("ev-none", "nobody@example.com", now.Add(-time.Minute)),
			completion("ev-conv", "converted@example.com", now.Add(-time.Minute)))
		time.Sleep(time.Minute)
		synctest.Wait()
		logRequests(t, srv)

		tasks := srv.Tasks()
		if len(tasks) != 2 {
			t.Fatalf("tasks = %+v; want 2", tasks)
		}
		ada := tasks["ev-ada"].Fields
		want := map[string]any{extField: "ev-ada", "WhoId": newest, "Subject": "Form submitted: contact", "Status": "Completed",
			"ActivityDate": now.Add(-time.Minute).UTC().Format(time.DateOnly), "Type": "Email", "Priority": "High",
			"Description": "Form submitted (form_submitted) at " + now.Add(-time.Minute).UTC().Format(time.RFC3339) +
				"\nurl: https://shop.example.com/contact\nform_id: contact\nmake: volvo"}
		for k, v := range want {
			if ada[k] != v {
				t.Errorf("task ev-ada %s = %q; want %q", k, ada[k], v)
			}
		}
		if who := tasks["ev-lead"].Fields["WhoId"]; who != lead {
			t.Errorf("task ev-lead WhoId = %v; want the lead %s", who, lead)
		}
		got := e.log.Outcomes()
		slices.Sort(got)
		if w := []string{"ev-ada:sent/1", "ev-conv:skipped_no_contact/1", "ev-lead:sent/1", "ev-none:skipped_no_contact/1"}; !slices.Equal(got, w) {
			t.Errorf("deliveries = %q; want %q", got, w)
		}
		for _, d := range e.log.All() {
			if d.Status == deliver.StatusSent && (!strings.HasPrefix(d.TraceID, "00T") || len(d.TraceID) != 18 || d.ForwardedName != "Task") {
				t.Errorf("sent delivery %+v; want the task's 18-character 00T id as trace id", d)
			}
		}
		// One token, one query per object, one upsert.
		var calls []string
		for _, r := range srv.Requests() {
			calls = append(calls, r.Method+" "+r.Path)
		}
		if w := []string{"POST /services/oauth2/token", "GET /services/data/v62.0/query", "GET /services/data/v62.0/query",
			"PATCH /services/data/v62.0/composite/sobjects/Task/" + extField}; !slices.Equal(calls, w) {
			t.Errorf("requests = %q; want %q", calls, w)
		}
	})
}

// An upsert whose answer is lost is retried with the same external id: the
// task is updated, never created twice.
func TestRetryNeverCreatesASecondTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := standIn()
		srv.AddContact("ada@example.com", time.Now().Add(-time.Hour))
		// The contact query meets REQUEST_LIMIT_EXCEEDED twice; the third
		// attempt's query passes and its upsert's answer is lost.
		srv.FailNext(2, sftest.FailLimit)
		srv.FailNext(1, sftest.Pass)
		srv.FailNext(1, sftest.FailLostAnswer)
		e := start(t, srv, salesforce.Task{})
		e.enqueue(t, completion("ev-1", "ada@example.com", time.Now()))
		time.Sleep(time.Hour)
		synctest.Wait()

		tasks := srv.Tasks()
		if len(tasks) != 1 || tasks["ev-1"].Updates < 1 {
			t.Fatalf("tasks = %+v; want one task, updated by the retry", tasks)
		}
		out := e.log.Outcomes()
		if len(out) < 3 || out[len(out)-1] != fmt.Sprintf("ev-1:sent/%d", len(out)) {
			t.Errorf("deliveries = %q; want retries, then sent", out)
		}
		for _, d := range e.log.All()[:2] {
			if d.Status != deliver.StatusRetrying || !strings.Contains(d.Message, "REQUEST_LIMIT_EXCEEDED") || d.HTTPStatus != 403 {
				t.Errorf("delivery %+v; want retrying on REQUEST_LIMIT_EXCEEDED (403)", d)
			}
		}
		if last := e.log.All()[len(out)-1]; !strings.Contains(last.Message, "updated") {
			t.Errorf("final delivery %+v; want the update of the task the lost answer created", last)
		}
	})
}

// An expired session is renewed once without the engine noticing; refused
// credentials pause the destination with its tasks kept until a reload.
func TestSessionsAndCredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := standIn()
		srv.AddContact("ada@example.com", time.Now().Add(-time.Hour))
		e := start(t, srv, salesforce.Task{})
		e.enqueue(t, completion("ev-1", "ada@example.com", time.Now()))
		time.Sleep(time.Minute)
		synctest.Wait()
		srv.ExpireSessions()
		e.enqueue(t, completion("ev-2", "ada@example.com", time.Now()))
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := e.log.Outcomes(); !slices.Equal(got, []string{"ev-1:sent/1", "ev-2:sent/1"}) {
			t.Fatalf("deliveries = %q; want both sent, the expired session renewed", got)
		}
		n401 := 0
		for _, r := range srv.Requests() {
			if r.Status == 401 {
				n401++
			}
		}
		if n401 != 1 {
			t.Errorf("%d INVALID_SESSION_ID answers; want 1, then a new token", n401)
		}

		srv.RefuseCredentials(true)
		for i := range 300 {
			e.enqueue(t, completion(fmt.Sprintf("ev-p%03d", i), "ada@example.com", time.Now()))
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		h := e.fwd.Health()[0]
		if h.State != deliver.StatePaused || h.Backlog != 300 || !strings.Contains(h.Reason, "invalid_client") {
			t.Fatalf("Health = %+v; want paused with 300 tasks kept, for invalid_client", h)
		}
		srv.RefuseCredentials(false)
		if err := e.fwd.SetDestinations([]deliver.Destination{salesforce.Destination("crm", newClient(t, srv, ""))}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(srv.Tasks()); n != 302 {
			t.Errorf("%d tasks after the reload; want 302", n)
		}
		// 300 tasks: batches of at most 200.
		for _, r := range srv.Requests() {
			if r.Method == http.MethodPatch {
				var body struct {
					AllOrNone bool              `json:"allOrNone"`
					Records   []json.RawMessage `json:"records"`
				}
				if err := json.Unmarshal([]byte(r.Body), &body); err != nil || body.AllOrNone || len(body.Records) > salesforce.MaxRecords {
					t.Errorf("upsert of %d records, allOrNone %v; want at most 200, allOrNone false", len(body.Records), body.AllOrNone)
				}
			}
		}
	})
}

// The refresh-token flow gets its token from the refresh token; a refused
// one pauses.
func TestRefreshTokenFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := standIn()
		c := newClient(t, srv, "5Aep-refresh")
		if _, err := c.WhoIDs(context.Background(), []string{"a@example.com"}); err != nil {
			t.Fatalf("WhoIDs with a valid refresh token = %v", err)
		}
		bad := newClient(t, srv, "5Aep-revoked")
		_, err := bad.WhoIDs(context.Background(), []string{"a@example.com"})
		var e *salesforce.Error
		if !errorsAs(err, &e) || e.Code != "invalid_grant" || e.Class() != deliver.Pause {
			t.Errorf("WhoIDs with a revoked refresh token = %v; want invalid_grant, which pauses", err)
		}
	})
}

// Subject and Description are cut to Salesforce's lengths (in UTF-16
// units, never mid-character); the stand-in refuses what is longer, as
// Salesforce does, and such a record fails alone.
func TestFieldLengths(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := standIn()
		who := srv.AddContact("ada@example.com", time.Now().Add(-time.Hour))
		e := start(t, srv, salesforce.Task{Subject: "{{note}}{{note}}"})
		long := strings.Repeat("é😀", 100) // 300 UTF-16 units per copy
		var props []ingest.Prop
		for i := range 50 {
			props = append(props, ingest.Prop{Name: fmt.Sprintf("p%02d", i), Value: strings.Repeat("x", 1000)})
		}
		props = append(props, ingest.Prop{Name: "note", Value: long})
		e.enqueue(t, completion("ev-long", "ada@example.com", time.Now(), props...))
		time.Sleep(time.Minute)
		synctest.Wait()
		f := srv.Tasks()["ev-long"].Fields
		subject, _ := f["Subject"].(string)
		desc, _ := f["Description"].(string)
		if n := len(utf16.Encode([]rune(subject))); n < salesforce.MaxSubject-1 || n > salesforce.MaxSubject {
			t.Errorf("Subject is %d UTF-16 units; want cut to %d", n, salesforce.MaxSubject)
		}
		if n := len(utf16.Encode([]rune(desc))); n != salesforce.MaxDescription {
			t.Errorf("Description is %d UTF-16 units; want cut to %d", n, salesforce.MaxDescription)
		}

		c := newClient(t, srv, "")
		res, err := c.UpsertTasks(context.Background(), []map[string]any{
			{extField: "too-long", "WhoId": who, "Subject": strings.Repeat("s", 256), "Status": "Completed", "ActivityDate": "2026-11-28"},
			{extField: "bad-who", "WhoId": "001000000000001AAA", "Subject": "s", "Status": "Completed", "ActivityDate": "2026-11-28"},
			{extField: "bad-status", "WhoId": who, "Subject": "s", "Status": "Done", "ActivityDate": "2026-11-28"},
			{extField: "fine", "WhoId": who[:15], "Subject": "s", "Status": "Completed", "ActivityDate": "2026-11-28"},
		})
		if err != nil {
			t.Fatal(err)
		}
		var codes []string
		for _, r := range res {
			code := "ok"
			if !r.Success {
				code = r.Errors[0].StatusCode
			}
			codes = append(codes, code)
		}
		if w := []string{"STRING_TOO_LONG", "FIELD_INTEGRITY_EXCEPTION", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "ok"}; !slices.Equal(codes, w) {
			t.Errorf("upsert results = %q; want %q", codes, w)
		}
		if _, err := c.UpsertTasks(context.Background(), []map[string]any{{extField: "x", "Subjekt": "s", "Status": "Completed"}}); err == nil || !strings.Contains(err.Error(), "INVALID_FIELD") {
			t.Errorf("upsert with a misspelt field = %v; want INVALID_FIELD", err)
		}
	})
}

func TestWindow(t *testing.T) {
	m, err := salesforce.NewMapping(salesforce.Task{WithinDays: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		age    time.Duration
		status string
	}{
		{29 * 24 * time.Hour, ""},
		{31 * 24 * time.Hour, salesforce.StatusSkippedTooOld},
	} {
		c := completion("e", "ada@example.com", now.Add(-tt.age))
		it, st, _ := m.Map(&c, now)
		if st != tt.status {
			t.Errorf("Map(%v old) status %q; want %q", tt.age, st, tt.status)
		}
		if st == "" {
			if h := salesforce.Horizon(it); h != 30*24*time.Hour {
				t.Errorf("Horizon = %v; want the 30-day window", h)
			}
		}
	}
	c := completion("e", "", now)
	if _, st, _ := m.Map(&c, now); st != salesforce.StatusSkippedNoContact {
		t.Errorf("Map without email = %q; want %s", st, salesforce.StatusSkippedNoContact)
	}
}

func errorsAs(err error, target **salesforce.Error) bool { return errors.As(err, target) }

// The lookup of a full batch's emails goes in as many queries as keep each
// URI within Salesforce's limit (the stand-in answers 414 past 16,384
// bytes, as Salesforce does), and finds every one.
func TestLookupOfLongEmailsSplitsItsQueries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := standIn()
		c := newClient(t, srv, "5Aep-refresh")
		var emails []string
		want := map[string]string{}
		for i := range salesforce.MaxRecords {
			e := fmt.Sprintf("%s%03d@%s.example.com", strings.Repeat("l", 61), i, strings.Repeat("d", 60)+"."+strings.Repeat("o", 60))
			emails = append(emails, e)
			if i%2 == 0 {
				want[e] = srv.AddContact(e, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			} else {
				want[e] = srv.AddLead(e, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), false)
			}
		}
		got, err := c.WhoIDs(context.Background(), emails)
		if err != nil {
			t.Fatalf("WhoIDs of %d emails of %d characters: %v", len(emails), len(emails[0]), err)
		}
		if len(got) != len(want) {
			t.Errorf("found %d of %d emails", len(got), len(want))
		}
		for e, id := range want {
			if got[e] != id {
				t.Errorf("%s… = %q; want %q", e[:20], got[e], id)
				break
			}
		}
		queries := 0
		for _, r := range srv.Requests() {
			if r.SOQL != "" {
				queries++
				if r.Status != http.StatusOK {
					t.Errorf("a query was answered %d", r.Status)
				}
			}
		}
		if queries < 4 {
			t.Errorf("%d queries; want the %d emails split over several for each object", queries, len(emails))
		}
	})
}
