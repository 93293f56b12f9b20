package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/deliver"
)

// Type is the destination type name in tally.yaml.
const Type = "webhook"

// Config is a webhook destination's block (destinations[].webhook).
type Config struct {
	URL string `yaml:"url"`
	// Secret is the signing secret, whsec_ and base64 of 24 to 64 random
	// bytes, as Standard Webhooks receivers show it; reference it as
	// ${ENV_NAME}.
	Secret string `yaml:"secret"`
	// MaxBatch is the most completions per request; default 100, at most
	// 1,000.
	MaxBatch int `yaml:"max_batch"`
}

// Limits of the block.
const (
	defaultBatch = 100
	maxBatch     = 1000
	secretPrefix = "whsec_"
)

// Check reports every problem of the block, with paths relative to it.
func (c Config) Check() []ingest.FieldError {
	var errs []ingest.FieldError
	add := func(field, code, format string, args ...any) {
		errs = append(errs, ingest.FieldError{Path: field, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("url", "INVALID_URL", "webhook url %q must be an absolute http(s) URL", c.URL)
	}
	if _, err := secretKey(c.Secret); err != nil {
		add("secret", "INVALID_SECRET", "webhook secret must be a Standard Webhooks secret: whsec_ followed by base64 of 24 to 64 random bytes")
	}
	if c.MaxBatch < 0 || c.MaxBatch > maxBatch {
		add("max_batch", "INVALID_VALUE", "max_batch must be between 1 and %d (0 means %d)", maxBatch, defaultBatch)
	}
	return errs
}

// secretKey decodes a whsec_ secret into the HMAC key.
func secretKey(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("secret does not start with %s", secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("secret is not base64: %w", err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("secret is %d bytes; want 24 to 64", len(key))
	}
	return key, nil
}

// Sign is the webhook-signature header for a message: v1, then the base64
// HMAC-SHA256 of "id.timestamp.body" under the secret's key.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, timestamp)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Completion is one completion as the webhook's data carries it. Identity
// fields are present only when the rule shares them.
type Completion struct {
	ID         string            `json:"id"`
	Event      string            `json:"event"`
	OccurredAt time.Time         `json:"occurred_at"`
	ReceivedAt time.Time         `json:"received_at"`
	Site       string            `json:"site,omitempty"`
	Source     string            `json:"source"`
	Rule       string            `json:"rule"`
	Properties map[string]string `json:"properties"`
	URL        string            `json:"url,omitempty"`
	Referrer   string            `json:"referrer,omitempty"`
	UTM        map[string]string `json:"utm,omitempty"`
	Country    string            `json:"country,omitempty"`
	Identity   map[string]string `json:"identity,omitempty"`
}

// Map turns c into an item for rule, with the identity fields shared
// (name → value, already chosen by the rule).
func Map(c *ingest.Completion, rule string, identity map[string]string) deliver.Item {
	w := Completion{ID: c.EventID, Event: c.EventName, OccurredAt: c.OccurredAt.UTC(), ReceivedAt: c.ReceivedAt.UTC(), Site: c.Site,
		Source: string(c.Source), Rule: rule, Properties: map[string]string{}, URL: c.Page.URL, Referrer: c.Page.Referrer,
		Country: c.Enrichment.Country}
	for _, p := range c.Props {
		w.Properties[p.Name] = p.Value
	}
	w.UTM = nonEmpty(map[string]string{"source": c.Enrichment.UTMSource, "medium": c.Enrichment.UTMMedium, "campaign": c.Enrichment.UTMCampaign, "term": c.Enrichment.UTMTerm, "content": c.Enrichment.UTMContent})
	w.Identity = nonEmpty(identity)
	b, _ := json.Marshal(w) // strings and times: cannot fail
	return deliver.Item{ID: c.EventID, Name: c.EventName, Time: c.OccurredAt, Payload: b}
}

// nonEmpty is the entries of m with a value; nil when there are none, so
// the field is left out.
func nonEmpty(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// Client posts signed batches to one URL.
type Client struct {
	url string
	key []byte
	hc  *http.Client
	now func() time.Time
}

// NewClient returns a client for cfg (which passed Check); hc nil means
// http.DefaultClient.
func NewClient(cfg Config, hc *http.Client) (*Client, error) {
	if errs := cfg.Check(); len(errs) > 0 {
		return nil, errs[0]
	}
	key, _ := secretKey(cfg.Secret)
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{url: cfg.URL, key: key, hc: hc, now: time.Now}, nil
}

// Destination is a webhook for the delivery engine.
func Destination(name string, cfg Config, c *Client) deliver.Destination {
	n := cfg.MaxBatch
	if n == 0 {
		n = defaultBatch
	}
	return deliver.Destination{Name: name, Type: Type, Sender: c, MaxBatch: n}
}

// Body is a request's JSON body: the Standard Webhooks envelope with the
// completions under data.
type Body struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		Completions []json.RawMessage `json:"completions"`
	} `json:"data"`
}

// MessageID is the webhook-id of a batch: the same completions make the
// same id, so a retried batch is recognisable as a repeat.
func MessageID(items []deliver.Item) string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID + "\x1f" + it.Name
	}
	sort.Strings(ids)
	h := sha256.Sum256([]byte(strings.Join(ids, "\x1e")))
	return "msg_" + hex.EncodeToString(h[:16])
}

// timeout bounds one request; receivers are asked to answer quickly
// (Standard Webhooks suggests 15 seconds), a batch takes longer.
const timeout = 30 * time.Second

// Send posts items as one signed request and classifies the answer.
func (c *Client) Send(ctx context.Context, items []deliver.Item) []deliver.Result {
	now := c.now()
	var body Body
	body.Type, body.Timestamp = "tally.completions", now.UTC().Format(time.RFC3339)
	for _, it := range items {
		body.Data.Completions = append(body.Data.Completions, json.RawMessage(it.Payload))
	}
	b, err := json.Marshal(body)
	if err != nil {
		return deliver.Same(len(items), deliver.Result{Class: deliver.Split, Message: "encode: " + err.Error()})
	}
	id, ts := MessageID(items), now.Unix()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(b))
	if err != nil {
		return deliver.Same(len(items), deliver.Result{Class: deliver.Pause, Message: err.Error()})
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(c.key, id, ts, b))
	resp, err := c.hc.Do(req)
	if err != nil {
		return deliver.Same(len(items), deliver.Result{Class: deliver.Retry, TraceID: id, Message: "post: " + err.Error()})
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	r := deliver.Result{HTTPStatus: resp.StatusCode, TraceID: id, Response: string(answer)}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		r.Class = deliver.Sent
	case s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s >= 500:
		r.Class, r.RetryAfter = deliver.Retry, deliver.RetryAfter(resp.Header.Get("Retry-After"), now)
	case s == http.StatusUnauthorized || s == http.StatusForbidden || s == http.StatusGone:
		r.Class = deliver.Pause
	default:
		r.Class = deliver.Split
	}
	if r.Class != deliver.Sent {
		r.Message = fmt.Sprintf("webhook answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(answer)))
	}
	return deliver.Same(len(items), r)
}
