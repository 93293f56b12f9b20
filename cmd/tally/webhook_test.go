package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-analytics/tally/rules/deliver"
)

// A webhook rule forwards a completion through tally serve: one signed POST
// whose signature the receiver checks as Standard Webhooks says, with the
// shared email and nothing else of the person, and a sent row in
// deliveries whose trace id is the webhook-id.
func TestWebhookEndToEnd(t *testing.T) {
	const key = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var (
		mu   sync.Mutex
		got  []string
		hdrs []http.Header
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		k, _ := base64.StdEncoding.DecodeString(key)
		m := hmac.New(sha256.New, k)
		m.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(body)))
		if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got, hdrs = append(got, string(body)), append(hdrs, r.Header.Clone())
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	yaml := serveYAML + `  - name: form_submitted
    properties: [{name: form_id, type: string}]
destinations:
  - name: hooks
    type: webhook
    webhook: {url: "` + recv.URL + `/in", secret: "whsec_` + key + `"}
rules:
  - name: form_hooks
    when: {event: form_submitted}
    forward: {to: hooks, share: [email]}
`
	ts := startTestServer(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	code, body := ts.post(t, "/events/v3/send", `{"eventName":"form_submitted","email":"ada@example.com","uuid":"hook-1",
		"properties":{"form_id":"contact","hs_page_url":"https://shop.example.com/c?utm_source=news","hs_user_agent":"Mozilla/5.0"}}`)
	if code != 204 {
		t.Fatalf("send: %d %s", code, body)
	}
	eventually(t, "the signed POST", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1, fmt.Sprint(len(got), " requests")
	})
	mu.Lock()
	b, h := got[0], hdrs[0]
	mu.Unlock()
	t.Logf("POST /in\nwebhook-id: %s\nwebhook-timestamp: %s\nwebhook-signature: %s\n%s", h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature"), b)
	for _, want := range []string{`"id":"hook-1"`, `"event":"form_submitted"`, `"properties":{"form_id":"contact"}`, `"identity":{"email":"ada@example.com"}`, `"utm":{"source":"news"}`, `"rule":"form_hooks"`} {
		if !strings.Contains(b, want) {
			t.Errorf("body %s; want it to hold %s", b, want)
		}
	}
	if strings.Contains(b, "Mozilla") {
		t.Errorf("body %s holds the user agent, which the rule does not share", b)
	}
	eventually(t, "a sent row with the webhook-id", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.deliveries WHERE event_id = 'hook-1' AND destination = 'hooks' AND status = 'sent' AND forwarded_name = 'form_submitted' AND http_status = 204 AND trace_id = '"+h.Get("webhook-id")+"'")
		return n == 1, fmt.Sprint(n)
	})
}
