package capitest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// post sends body to the stand-in over a real socket and decodes Meta's answer.
func post(t *testing.T, s *Server, path, contentType, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, m
}

func code(m map[string]any) int {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return int(c)
}

func TestStandIn(t *testing.T) {
	s := Start(Config{PixelID: "42", AccessToken: "tok"})
	defer s.Close()
	now := strconv.FormatInt(time.Now().Unix(), 10)
	hash := strings.Repeat("ab", 32)
	event := `{"event_name":"Lead","event_time":` + now + `,"event_id":"x","action_source":"system_generated","user_data":{"em":"` + hash + `","lead_id":123456789012345}}`

	// JSON body with a Bearer token.
	status, m := post(t, s, "/v25.0/42/events", "application/json", "tok", `{"data":[`+event+`]}`)
	if status != 200 || m["events_received"] != float64(1) || m["fbtrace_id"] == "" {
		t.Errorf("JSON post = %d %v; want 200 with events_received 1", status, m)
	}
	// Form body with the token in the query, as Meta's curl examples do.
	form := url.Values{"data": {"[" + event + "]"}}.Encode()
	status, m = post(t, s, "/v21.0/42/events?access_token=tok", "application/x-www-form-urlencoded", "", form)
	if status != 200 {
		t.Errorf("form post = %d %v; want 200", status, m)
	}
	if r := s.Requests(); len(r) != 2 || r[0].Auth != "header" || r[1].Auth != "query" {
		t.Errorf("requests = %+v; want header then query auth", r)
	}
	if got := s.Received(); len(got) != 2 || got[1].UserData.LeadID != 123456789012345 {
		t.Errorf("received = %+v; want two events with the lead id", got)
	}

	tests := []struct {
		name, path, token, body string
		status, code            int
	}{
		{"wrong pixel", "/v25.0/43/events", "tok", `{"data":[` + event + `]}`, 400, 100},
		{"no version", "/42/events", "tok", `{"data":[` + event + `]}`, 400, 100},
		{"bad token", "/v25.0/42/events", "nope", `{"data":[` + event + `]}`, 400, 190},
		{"empty data", "/v25.0/42/events", "tok", `{"data":[]}`, 400, 100},
		{"website without url", "/v25.0/42/events", "tok", `{"data":[` + strings.Replace(event, "system_generated", "website", 1) + `]}`, 400, 100},
		{"string lead id", "/v25.0/42/events", "tok", `{"data":[` + strings.Replace(event, "123456789012345", `"abc"`, 1) + `]}`, 400, 100},
		{"unhashed email", "/v25.0/42/events", "tok", `{"data":[` + strings.Replace(event, hash, "a@b.co", 1) + `]}`, 400, 100},
	}
	for _, tt := range tests {
		status, m := post(t, s, tt.path, "application/json", tt.token, tt.body)
		if status != tt.status || code(m) != tt.code {
			t.Errorf("%s: %d code %d (%v); want %d code %d", tt.name, status, code(m), m, tt.status, tt.code)
		}
	}
	if n := len(s.Received()); n != 2 {
		t.Errorf("received %d events; want 2 (rejected requests add none)", n)
	}

	s.SetRetryAfter(7 * time.Second)
	s.FailNext(1, FailThrottle)
	s.FailNext(1, Fail5xx)
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v25.0/42/events", strings.NewReader(`{"data":[`+event+`]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("throttled answer = %d Retry-After %q; want 429, 7", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if status, m := post(t, s, "/v25.0/42/events", "application/json", "tok", `{"data":[`+event+`]}`); status != 503 || code(m) != 2 {
		t.Errorf("5xx answer = %d code %d; want 503 code 2", status, code(m))
	}
	if status, _ := post(t, s, "/v25.0/42/events", "application/json", "tok", `{"data":[`+event+`]}`); status != 200 {
		t.Errorf("after the failures = %d; want 200", status)
	}
}
