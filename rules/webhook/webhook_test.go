package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/rules/deliver/delivertest"
	"github.com/tally-analytics/tally/rules/webhook"
)

// secret is a whsec_ secret as a receiver's dashboard shows it (24 bytes).
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// verify is the Standard Webhooks reference verification, written from the
// specification: strip whsec_, base64-decode the key, HMAC-SHA256 over
// "msg_id.timestamp.payload", base64, compare in constant time with each
// space-separated "v1,<sig>" of webhook-signature; refuse a timestamp more
// than five minutes away.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing required headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("invalid timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp outside tolerance")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(s, ",")
		if ok && version == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// receiver is a webhook endpoint that verifies every request and answers
// what the test scripts.
type receiver struct {
	mu       sync.Mutex
	answers  []int // status per request, then 204
	reqs     []request
	badEvent string // a request holding this event id is answered 422
}

type request struct {
	id   string
	body webhook.Body
	raw  string
	code int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := verify(secret, r.Header, body, time.Now()); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, fmt.Sprintf("refused: %v", err), http.StatusUnauthorized)
		return
	}
	var b webhook.Body
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	code := http.StatusNoContent
	if len(rc.answers) > 0 {
		code, rc.answers = rc.answers[0], rc.answers[1:]
	}
	if rc.badEvent != "" && strings.Contains(string(body), `"id":"`+rc.badEvent+`"`) {
		code = http.StatusUnprocessableEntity
	}
	rc.reqs = append(rc.reqs, request{id: r.Header.Get("webhook-id"), body: b, raw: string(body), code: code})
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "120")
	}
	w.WriteHeader(code)
}

func (rc *receiver) delivered() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var ids []string
	for _, r := range rc.reqs {
		if r.code/100 != 2 {
			continue
		}
		for _, c := range r.body.Data.Completions {
			var w webhook.Completion
			_ = json.Unmarshal(c, &w)
			ids = append(ids, w.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func start(t *testing.T, rc *receiver, cfg webhook.Config) (*deliver.Forwarder, *delivertest.Log) {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	cfg.URL, cfg.Secret = srv.URL+"/hooks/tally", secret
	c, err := webhook.NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &delivertest.Log{}
	f, err := deliver.NewForwarder(deliver.Config{Dir: t.TempDir(), Linger: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		[]deliver.Destination{webhook.Destination("hooks", cfg, c)}, l, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return f, l
}

func enqueue(t *testing.T, f *deliver.Forwarder, ids ...string) {
	t.Helper()
	for _, id := range ids {
		c := ingest.Completion{EventID: id, EventName: "form_submitted", Site: "shop", Source: ingest.SourceAPI, OccurredAt: time.Now().UTC(), ReceivedAt: time.Now().UTC(),
			Identity: ingest.Identity{Email: "ada@example.com", Phone: "+4915112345678"}, Props: []ingest.Prop{{Name: "form_id", Value: "contact"}}}
		it := webhook.Map(&c, "hook_rule", map[string]string{"email": c.Identity.Email})
		if err := f.Enqueue(context.Background(), "hooks", deliver.Origin{Rule: "hook_rule", Source: c.EventName}, it); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Batches arrive signed as the reference verification accepts, at most
// max_batch each; a 503 is retried until every completion arrived; only
// what the rule shares of the identity is sent.
func TestSignedBatchesAndTheirRetries(t *testing.T) {
	rc := &receiver{answers: []int{503}}
	f, l := start(t, rc, webhook.Config{MaxBatch: 3})
	enqueue(t, f, "e1", "e2", "e3", "e4", "e5")
	waitFor(t, "five delivered", func() bool { return l.Count(deliver.StatusSent) == 5 })
	if got := rc.delivered(); !slices.Equal(got, []string{"e1", "e2", "e3", "e4", "e5"}) {
		t.Errorf("delivered %q; want e1…e5 once each", got)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, r := range rc.reqs {
		t.Logf("POST /hooks/tally webhook-id: %s → %d\n%s", r.id, r.code, r.raw)
		if n := len(r.body.Data.Completions); n > 3 {
			t.Errorf("a request carried %d completions; want at most max_batch 3", n)
		}
		if r.body.Type != "tally.completions" || strings.Contains(r.raw, "+4915112345678") || !strings.Contains(r.raw, `"identity":{"email":"ada@example.com"}`) {
			t.Errorf("body %s; want type tally.completions with the shared email and not the phone", r.raw)
		}
	}
	if len(rc.reqs) < 3 || rc.reqs[0].code != 503 {
		t.Fatalf("%d requests, the first answered %d; want a refused one, then the retries", len(rc.reqs), rc.reqs[0].code)
	}
	// A retried completion may travel in another batch (docs/destinations.md):
	// the refused batch's completions all arrive later, and requests carry
	// the same webhook-id exactly when they carry the same completions.
	ids := func(r request) string {
		var b struct {
			Data struct {
				Completions []struct{ ID string }
			}
		}
		json.Unmarshal([]byte(r.raw), &b)
		var out []string
		for _, c := range b.Data.Completions {
			out = append(out, c.ID)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	later := map[string]bool{}
	for _, r := range rc.reqs[1:] {
		for _, id := range strings.Split(ids(r), ",") {
			later[id] = true
		}
	}
	for _, id := range strings.Split(ids(rc.reqs[0]), ",") {
		if !later[id] {
			t.Errorf("%s of the refused batch was not sent again", id)
		}
	}
	for _, a := range rc.reqs {
		for _, b := range rc.reqs {
			if (ids(a) == ids(b)) != (a.id == b.id) {
				t.Errorf("requests of %s and %s have webhook-ids %s and %s; want the same exactly for the same completions", ids(a), ids(b), a.id, b.id)
			}
		}
	}
	// The webhook-id names the batch's completions, whichever request
	// carries them.
	a := []deliver.Item{{ID: "e1", Name: "x"}, {ID: "e2", Name: "x"}}
	if webhook.MessageID(a) != webhook.MessageID([]deliver.Item{a[1], a[0]}) || webhook.MessageID(a) == webhook.MessageID(a[:1]) {
		t.Errorf("MessageID is not a function of the batch's completions")
	}
}

// A receiver that refuses one completion (422) gets the batch bisected:
// the others arrive, the bad one fails alone.
func TestBisectsARefusedBatch(t *testing.T) {
	rc := &receiver{badEvent: "e5"}
	f, l := start(t, rc, webhook.Config{})
	enqueue(t, f, "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8")
	waitFor(t, "all settled", func() bool { return l.Count(deliver.StatusSent)+l.Count(deliver.StatusFailed) == 8 })
	if got := rc.delivered(); !slices.Equal(got, []string{"e1", "e2", "e3", "e4", "e6", "e7", "e8"}) {
		t.Errorf("delivered %q; want all but e5", got)
	}
	if n := l.Count(deliver.StatusFailed); n != 1 {
		t.Errorf("%d failed; want only e5", n)
	}
}

// A receiver that refuses tally's signature (401) pauses the destination;
// the completions wait, and a reload with the right secret delivers them.
func TestWrongSecretPausesUntilReload(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	wrong := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another-secret-of-24-byt"))
	cfg := webhook.Config{URL: srv.URL, Secret: wrong}
	c, err := webhook.NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &delivertest.Log{}
	f, err := deliver.NewForwarder(deliver.Config{Dir: t.TempDir(), Linger: 10 * time.Millisecond}, []deliver.Destination{webhook.Destination("hooks", cfg, c)}, l, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	enqueue(t, f, "p1", "p2")
	waitFor(t, "paused", func() bool { return f.Health()[0].State == deliver.StatePaused })
	if h := f.Health()[0]; h.Backlog != 2 || l.Count(deliver.StatusFailed) != 0 {
		t.Fatalf("Health = %+v, %d failed; want both completions kept", h, l.Count(deliver.StatusFailed))
	}
	cfg.Secret = secret
	good, _ := webhook.NewClient(cfg, nil)
	if err := f.SetDestinations([]deliver.Destination{webhook.Destination("hooks", cfg, good)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivered after reload", func() bool { return l.Count(deliver.StatusSent) == 2 })
}

func TestSignMatchesTheSpecExample(t *testing.T) {
	// The Standard Webhooks specification's example: this secret, id,
	// timestamp and payload sign to this signature.
	key, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := webhook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s; want %s", got, want)
	}
}
