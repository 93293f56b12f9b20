package capi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tally-analytics/tally/rules/deliver"
)

// Defaults for ClientConfig.
const (
	// DefaultGraphURL is Meta's Graph API host; tests point GraphURL at a
	// local stand-in.
	DefaultGraphURL = "https://graph.facebook.com"
	// DefaultAPIVersion is the Graph version used when APIVersion is empty:
	// v25.0 was released 2026-02-18 and expires 2028-07-29, so it outlives
	// v24.0, whose Marketing API support ends 2026-10-06.
	DefaultAPIVersion = "v25.0"
)

// ClientConfig says where and as whom events are sent.
type ClientConfig struct {
	// GraphURL is Meta's Graph API base. Default DefaultGraphURL.
	GraphURL string
	// APIVersion such as "v25.0". Default DefaultAPIVersion.
	APIVersion string
	// PixelID is the pixel (or dataset) ID events are sent to.
	PixelID string
	// AccessToken is sent in the Authorization header, never in the URL, so
	// it does not land in proxy logs.
	AccessToken string
	// AppSecret, when set, adds appsecret_proof = HMAC-SHA256(secret, token).
	AppSecret string
	// TestEventCode routes events to Events Manager's Test Events tab. Meta
	// still uses such events for ads: keep it empty in production.
	TestEventCode string
	// PartnerAgent names the sending platform to Meta; sent only when set.
	PartnerAgent string
	// Timeout bounds one request. Default 30s: a 1,000-event body is about
	// 1 MB, which Meta accepts within a few seconds when healthy.
	Timeout time.Duration
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.GraphURL == "" {
		c.GraphURL = DefaultGraphURL
	}
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	return c
}

// Client sends batches of events to one pixel. It is safe for concurrent use.
type Client struct {
	cfg      ClientConfig
	endpoint string
	hc       *http.Client
}

// NewClient returns a client for cfg; hc nil means http.DefaultClient.
func NewClient(cfg ClientConfig, hc *http.Client) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.PixelID == "" {
		return nil, errors.New("pixel id is empty")
	}
	if cfg.AccessToken == "" {
		return nil, errors.New("access token is empty")
	}
	base, err := url.Parse(strings.TrimRight(cfg.GraphURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("graph url %q is not an absolute URL", cfg.GraphURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{
		cfg:      cfg,
		endpoint: base.String() + "/" + url.PathEscape(cfg.APIVersion) + "/" + url.PathEscape(cfg.PixelID) + "/events",
		hc:       hc,
	}, nil
}

// Request is the body of POST /{pixel_id}/events.
type Request struct {
	Data           []Event `json:"data"`
	TestEventCode  string  `json:"test_event_code,omitempty"`
	PartnerAgent   string  `json:"partner_agent,omitempty"`
	AppSecretProof string  `json:"appsecret_proof,omitempty"`
}

// Response is Meta's answer to an accepted request.
type Response struct {
	EventsReceived int      `json:"events_received"`
	Messages       []string `json:"messages,omitempty"`
	FbtraceID      string   `json:"fbtrace_id,omitempty"`
	HTTPStatus     int      `json:"-"`
}

// Endpoint is the URL Send posts to (the access token goes in a header).
func (c *Client) Endpoint() string { return c.endpoint }

// Body returns the JSON request body Send would post for events.
func (c *Client) Body(events []Event) ([]byte, error) {
	req := Request{Data: events, TestEventCode: c.cfg.TestEventCode, PartnerAgent: c.cfg.PartnerAgent}
	if c.cfg.AppSecret != "" {
		m := hmac.New(sha256.New, []byte(c.cfg.AppSecret))
		m.Write([]byte(c.cfg.AccessToken))
		req.AppSecretProof = hex.EncodeToString(m.Sum(nil))
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %d events: %w", len(events), err)
	}
	return b, nil
}

// Send posts events (at most MaxBatch) in one request. Meta accepts or
// rejects the request as a whole. Any failure is an *Error; use
// (*Error).Retryable to decide what to do.
func (c *Client) Send(ctx context.Context, events []Event) (Response, error) {
	if len(events) == 0 {
		return Response{}, nil
	}
	if len(events) > MaxBatch {
		return Response{}, &Error{Message: fmt.Sprintf("%d events in one request; Meta accepts at most %d", len(events), MaxBatch)}
	}
	body, err := c.Body(events)
	if err != nil {
		return Response{}, &Error{Message: err.Error(), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return Response{}, &Error{Message: err.Error(), Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.cfg.AccessToken)
	resp, err := c.hc.Do(req)
	if err != nil {
		return Response{}, &Error{Message: "post events: " + redact(err.Error(), c.cfg.AccessToken), Err: err, network: true}
	}
	defer resp.Body.Close()
	// Meta's answers are small; 1 MiB bounds a misconfigured graph_url
	// serving something else.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Response{}, &Error{HTTPStatus: resp.StatusCode, Message: "read response: " + err.Error(), Err: err, network: true}
	}
	return parseResponse(resp.StatusCode, resp.Header, raw, time.Now())
}

// parseResponse turns Meta's answer into a Response or an *Error.
func parseResponse(status int, h http.Header, raw []byte, now time.Time) (Response, error) {
	if status >= 200 && status < 300 {
		var r Response
		if err := json.Unmarshal(raw, &r); err != nil {
			return Response{}, &Error{HTTPStatus: status, Message: "decode success response: " + err.Error(), network: true}
		}
		r.HTTPStatus = status
		return r, nil
	}
	e := &Error{HTTPStatus: status, RetryAfter: deliver.RetryAfter(h.Get("Retry-After"), now)}
	var env struct {
		Error struct {
			Message        string `json:"message"`
			Type           string `json:"type"`
			Code           int    `json:"code"`
			ErrorSubcode   int    `json:"error_subcode"`
			IsTransient    bool   `json:"is_transient"`
			ErrorUserTitle string `json:"error_user_title"`
			ErrorUserMsg   string `json:"error_user_msg"`
			FbtraceID      string `json:"fbtrace_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Error.Message == "" && env.Error.Code == 0 {
		snippet := strings.TrimSpace(string(raw))
		if len(snippet) > 200 {
			snippet = snippet[:200]
		}
		e.Message = fmt.Sprintf("HTTP %d: %s", status, snippet)
		return Response{}, e
	}
	m := env.Error
	e.Message, e.Type, e.Code, e.Subcode = m.Message, m.Type, m.Code, m.ErrorSubcode
	e.IsTransient, e.UserTitle, e.UserMessage, e.FbtraceID = m.IsTransient, m.ErrorUserTitle, m.ErrorUserMsg, m.FbtraceID
	return Response{}, e
}

func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[token]")
}

// Error is every failure of Send: a transport failure, or Meta's error
// envelope {"error":{"message","type","code","error_subcode","fbtrace_id",…}}.
type Error struct {
	HTTPStatus  int // 0 when no answer arrived
	Message     string
	Type        string // e.g. OAuthException
	Code        int
	Subcode     int
	IsTransient bool
	UserTitle   string
	UserMessage string
	FbtraceID   string
	// RetryAfter is the server's Retry-After, 0 when absent.
	RetryAfter time.Duration
	Err        error // the transport error, if any

	network bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("meta capi: ")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d: ", e.HTTPStatus)
	}
	b.WriteString(e.Message)
	if e.Code != 0 {
		fmt.Fprintf(&b, " (code %d", e.Code)
		if e.Subcode != 0 {
			fmt.Fprintf(&b, ", subcode %d", e.Subcode)
		}
		b.WriteString(")")
	}
	if e.UserTitle != "" {
		b.WriteString(": " + e.UserTitle)
	}
	if e.UserMessage != "" {
		b.WriteString(": " + e.UserMessage)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Meta error codes that tally treats specially.
const (
	CodeUnknown          = 1   // "possibly a temporary issue"
	CodeService          = 2   // temporary service error
	CodeTooManyCalls     = 4   // application request limit
	CodeUserTooManyCalls = 17  // user request limit
	CodePageTooManyCalls = 32  // page request limit
	CodeInvalidParameter = 100 // invalid parameter: the request's content is wrong
	CodeAppLimit         = 341 // application limit reached
	CodePolicyBlock      = 368 // temporarily blocked for policy violations
	CodeRateLimit        = 613 // calls exceeded the rate limit
	CodeAccessToken      = 190 // token expired or invalid
	// SubcodeEventTooOld answers an event_time more than 7 days old.
	SubcodeEventTooOld = 2804003
)

// Retryable reports whether the same request may succeed later: transport
// failures, HTTP 5xx and 429, Meta's transient and throttling codes (1, 2,
// 4, 17, 32, 341, 368, 613, the 80000–80014 business-use-case rate limits),
// and anything Meta flags is_transient. Everything else — invalid token
// (190), invalid parameter (100), permissions (3, 10, 200–299) — is
// permanent: sending it again cannot help.
func (e *Error) Retryable() bool {
	if e.network || e.IsTransient {
		return true
	}
	switch e.Code {
	case CodeUnknown, CodeService, CodeTooManyCalls, CodeUserTooManyCalls, CodePageTooManyCalls,
		CodeAppLimit, CodePolicyBlock, CodeRateLimit:
		return true
	}
	if e.Code >= 80000 && e.Code <= 80014 {
		return true
	}
	if e.HTTPStatus == http.StatusTooManyRequests || e.HTTPStatus == http.StatusRequestTimeout || e.HTTPStatus >= 500 {
		return true
	}
	return false
}

// EventSpecific reports whether the rejection may be caused by one event in
// the batch (invalid parameter), so that splitting the batch can save the
// others. A bad token or missing permission fails every event alike.
func (e *Error) EventSpecific() bool {
	return !e.Retryable() && e.Code == CodeInvalidParameter && e.Subcode != 33
}
