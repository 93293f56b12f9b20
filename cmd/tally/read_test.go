package main

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

const testReadToken = "serve-read-token-0123456789"

// TestReadBackOneIdentity runs the whole path: a visitor browses
// anonymously, identifies with a mixed-case email, browses on; the CRM
// sends a completion for the same address in another case; the events API
// then answers all four for the address, and a send-only token may not ask.
func TestReadBackOneIdentity(t *testing.T) {
	yaml := serveYAML + `
  - name: deal_closed
    label: Deal closed
    properties:
      - {name: amount, type: number}
`
	yaml = strings.Replace(yaml, "  - {name: crm, token: "+testAPIToken+"}",
		"  - {name: crm, token: "+testAPIToken+"}\n  - {name: bi, token: "+testReadToken+", scopes: [read]}", 1)
	ts := startTestServer(t, yaml, serverOptions{})

	var visitor string
	browse := func(id, name, at, traits string) {
		t.Helper()
		ev := `{"id":"` + id + `","name":"` + name + `","ts":` + at + `,"url":"https://shop.example.com/cars/1","consent":{"analytics":true,"ads":false}` + traits + `}`
		req, _ := http.NewRequest("POST", ts.url+"/e", strings.NewReader(`{"site":"shop","events":[`+ev+`]}`))
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		req.Header.Set("Origin", "https://shop.example.com")
		req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
		if visitor != "" {
			req.AddCookie(&http.Cookie{Name: "_tally_id", Value: visitor})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("POST /e: %d", resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if c.Name == "_tally_id" && c.Value != "" {
				visitor = c.Value
			}
		}
	}
	browse("11111111-0000-4000-8000-000000000001", "page_view", "1772359200000", "") // 2026-03-01T10:00:00Z
	browse("11111111-0000-4000-8000-000000000002", "viewed_car", "1772359260000", `,"props":{"make":"volvo"},"traits":{"email":"  Ada.Lovelace@Example.com"}`)
	browse("11111111-0000-4000-8000-000000000003", "page_view", "1772359320000", "")
	if code, body := ts.post(t, "/events/v3/send", `{"eventName":"deal_closed","email":"ADA.LOVELACE@example.com","uuid":"11111111-0000-4000-8000-000000000004","occurredAt":"2026-03-02T09:00:00.250Z","properties":{"amount":"500"}}`); code != 204 {
		t.Fatalf("send: %d %s", code, body)
	}

	get := func(token, query string) (int, []byte) {
		req, _ := http.NewRequest("GET", ts.url+"/events/v3/events?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	var body []byte
	eventually(t, "the four completions read back by email", func() (bool, string) {
		var code int
		code, body = get(testReadToken, "objectType=contact&objectProperty.email=ada.lovelace@example.com&sort=ASCENDING&limit=3")
		var page struct{ Results []struct{ ID string } }
		json.Unmarshal(body, &page)
		var got []string
		for _, r := range page.Results {
			got = append(got, r.ID[len(r.ID)-1:])
		}
		return code == 200 && slices.Equal(got, []string{"1", "2", "3"}), string(body)
	})
	_, body = get(testReadToken, "objectProperty.email=Ada.Lovelace@example.com")
	if !strings.HasPrefix(string(body), `{"results":[{"id":"11111111-0000-4000-8000-000000000004"`) || strings.Count(string(body), `"id":`) != 4 {
		t.Errorf("newest first: %s", body)
	}
	t.Logf("GET /events/v3/events?objectProperty.email=Ada.Lovelace@example.com →\n%s", body)
	// The identified completion, the visitor's page view after it (the
	// collector gives a visitor's later completions the user data they
	// identified with) and the API one: all with the normalised email, none
	// with the forms sent.
	if n := ts.count(t, "SELECT count() FROM DB.events WHERE email = 'ada.lovelace@example.com'"); n != 3 {
		t.Errorf("%d events rows hold the normalised email; want 3", n)
	}
	if n := ts.count(t, "SELECT count() FROM DB.events WHERE email != '' AND email != 'ada.lovelace@example.com'"); n != 0 {
		t.Errorf("%d events rows hold an email as sent, not normalised", n)
	}
	if n := ts.count(t, "SELECT count() FROM DB.contact_timeline WHERE contact = 'ada.lovelace@example.com'"); n != 4 {
		t.Errorf("contact_timeline has %d rows for the contact; want 4", n)
	}
	if code, b := get(testAPIToken, "objectProperty.email=ada.lovelace@example.com"); code != 403 {
		t.Errorf("send-only token read: %d %s; want 403", code, b)
	}
}
