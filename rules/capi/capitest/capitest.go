package capitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tally-analytics/tally/rules/capi"
)

// Config describes the pixel the stand-in serves.
type Config struct {
	PixelID     string
	AccessToken string
	// Now is the stand-in's clock; default time.Now (which testing/synctest
	// fakes inside a bubble).
	Now func() time.Time
}

// Failure is a canned error answer.
type Failure int

// The failures the stand-in can be told to give.
const (
	// Fail5xx answers 503 with Meta's transient code 2.
	Fail5xx Failure = iota + 1
	// FailThrottle answers 429 with Retry-After and code 4.
	FailThrottle
	// FailInvalidParameter answers 400 with code 100.
	FailInvalidParameter
	// FailInvalidToken answers 400 OAuthException code 190.
	FailInvalidToken
	// FailHang never answers until the request's context ends.
	FailHang
)

// Request is one request the stand-in received.
type Request struct {
	Status        int
	Events        []capi.Event // decoded data, also for rejected requests
	TestEventCode string
	PartnerAgent  string
	Auth          string // "header", "query" or ""
	Error         string // the error message answered, if any
}

// Server is a Graph API stand-in for POST /{version}/{pixel_id}/events.
type Server struct {
	cfg Config
	srv *httptest.Server

	mu         sync.Mutex
	requests   []Request
	received   []capi.Event
	failures   []Failure
	retryAfter time.Duration
	trace      int

	pathRE, hashRE, anyHashRE *regexp.Regexp
	// onRequest, when set, is called before answering (tests use it to kill
	// a child process or block a request).
	onRequest func()
}

// New returns a stand-in usable as an http.Handler (see Transport) without
// a listener.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{
		cfg:        cfg,
		retryAfter: 30 * time.Second,
		pathRE:     regexp.MustCompile(`^/(v[0-9]+\.[0-9]+)/([^/]+)/events$`),
		hashRE:     regexp.MustCompile(`^[0-9a-f]{64}$`),
		anyHashRE:  regexp.MustCompile(`^[0-9a-fA-F]{64}$`),
	}
}

// Start returns a stand-in listening on loopback; Close stops it.
func Start(cfg Config) *Server {
	s := New(cfg)
	s.srv = httptest.NewServer(s)
	return s
}

// URL is the stand-in's base URL, to use as graph_url.
func (s *Server) URL() string {
	if s.srv == nil {
		return "http://capitest.invalid"
	}
	return s.srv.URL
}

// Close stops the listener, if any.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// Transport serves requests in-process, without sockets or goroutines, so
// clients can run inside a testing/synctest bubble.
func (s *Server) Transport() http.RoundTripper { return roundTripper{s} }

type roundTripper struct{ s *Server }

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	w := httptest.NewRecorder()
	rt.s.ServeHTTP(w, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

// FailNext makes the next n requests fail with f, after any failures
// already queued.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// ClearFailures drops failures not yet given.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = nil
}

// SetRetryAfter sets the Retry-After sent with FailThrottle (default 30s).
func (s *Server) SetRetryAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = d
}

// OnRequest sets a hook run at the start of every request.
func (s *Server) OnRequest(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRequest = f
}

// Received returns every event Meta would have accepted, in arrival order.
func (s *Server) Received() []capi.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]capi.Event(nil), s.received...)
}

// Requests returns every request, accepted or not.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ServeHTTP answers like Meta's Graph API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hook := s.onRequest
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	rec := Request{}
	status, answer := s.handle(r, &rec)
	rec.Status = status
	if e, ok := answer["error"].(map[string]any); ok {
		rec.Error, _ = e["message"].(string)
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	if status == http.StatusOK {
		s.received = append(s.received, rec.Events...)
	}
	s.mu.Unlock()
	if answer == nil { // FailHang: the client gave up
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if status == http.StatusTooManyRequests {
		s.mu.Lock()
		w.Header().Set("Retry-After", strconv.Itoa(int(s.retryAfter/time.Second)))
		s.mu.Unlock()
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(answer)
}

func (s *Server) fbtrace() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trace++
	return fmt.Sprintf("AbCdTrace%04d", s.trace)
}

func (s *Server) metaError(status int, typ string, code, subcode int, transient bool, msg, title, userMsg string) (int, map[string]any) {
	e := map[string]any{
		"message": msg, "type": typ, "code": code, "is_transient": transient, "fbtrace_id": s.fbtrace(),
	}
	if subcode != 0 {
		e["error_subcode"] = subcode
	}
	if title != "" {
		e["error_user_title"] = title
		e["error_user_msg"] = userMsg
	}
	return status, map[string]any{"error": e}
}

func (s *Server) invalid(msg string) (int, map[string]any) {
	return s.metaError(http.StatusBadRequest, "OAuthException", 100, 0, false, "Invalid parameter", "Invalid parameter", msg)
}

func (s *Server) handle(r *http.Request, rec *Request) (int, map[string]any) {
	if r.Method != http.MethodPost {
		return s.metaError(http.StatusBadRequest, "GraphMethodException", 100, 33, false, "Unsupported get request.", "", "")
	}
	m := s.pathRE.FindStringSubmatch(r.URL.Path)
	if m == nil || m[2] != s.cfg.PixelID {
		return s.metaError(http.StatusBadRequest, "GraphMethodException", 100, 33, false,
			fmt.Sprintf("Unsupported post request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", strings.TrimPrefix(r.URL.Path, "/")), "", "")
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return s.invalid("unreadable body")
	}
	// The token may come as a Bearer header, a query parameter or a body field.
	token := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		token, rec.Auth = strings.TrimPrefix(h, "Bearer "), "header"
	} else if q := r.URL.Query().Get("access_token"); q != "" {
		token, rec.Auth = q, "query"
	}
	var body struct {
		Data          json.RawMessage `json:"data"`
		TestEventCode string          `json:"test_event_code"`
		PartnerAgent  string          `json:"partner_agent"`
		AccessToken   string          `json:"access_token"`
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&body); err != nil {
			return s.invalid("body is not JSON: " + err.Error())
		}
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		f, err := url.ParseQuery(string(raw))
		if err != nil {
			return s.invalid("bad form body")
		}
		body.Data = json.RawMessage(f.Get("data"))
		body.TestEventCode, body.PartnerAgent, body.AccessToken = f.Get("test_event_code"), f.Get("partner_agent"), f.Get("access_token")
	default:
		return s.invalid("unsupported content type " + ct)
	}
	if token == "" && body.AccessToken != "" {
		token, rec.Auth = body.AccessToken, "body"
	}
	rec.TestEventCode, rec.PartnerAgent = body.TestEventCode, body.PartnerAgent

	var events []json.RawMessage
	if len(body.Data) > 0 {
		if err := json.Unmarshal(body.Data, &events); err != nil {
			return s.invalid("data must be an array of events")
		}
	}
	for _, e := range events {
		var ev capi.Event
		_ = json.Unmarshal(e, &ev) // best effort: recorded for inspection only
		rec.Events = append(rec.Events, ev)
	}

	if token == "" {
		return s.metaError(http.StatusBadRequest, "OAuthException", 2500, 0, false, "An active access token must be used to query information about the current user.", "", "")
	}
	if token != s.cfg.AccessToken {
		return s.metaError(http.StatusBadRequest, "OAuthException", 190, 0, false, "Invalid OAuth access token - Cannot parse access token", "", "")
	}
	s.mu.Lock()
	var fail Failure
	if len(s.failures) > 0 {
		fail, s.failures = s.failures[0], s.failures[1:]
	}
	s.mu.Unlock()
	switch fail {
	case Fail5xx:
		return s.metaError(http.StatusServiceUnavailable, "OAuthException", 2, 0, true, "An unexpected error has occurred. Please retry your request later.", "", "")
	case FailThrottle:
		return s.metaError(http.StatusTooManyRequests, "OAuthException", 4, 0, true, "(#4) Application request limit reached", "", "")
	case FailInvalidParameter:
		return s.invalid("injected failure")
	case FailInvalidToken:
		return s.metaError(http.StatusBadRequest, "OAuthException", 190, 463, false, "Error validating access token: Session has expired.", "", "")
	case FailHang:
		<-r.Context().Done()
		return 0, nil
	}

	if len(events) == 0 {
		return s.invalid("The parameter data is required")
	}
	if len(events) > 1000 {
		return s.invalid(fmt.Sprintf("data holds %d events; at most 1000 are allowed", len(events)))
	}
	now := s.cfg.Now()
	for i, e := range events {
		if status, ans := s.checkEvent(i, e, now); ans != nil {
			return status, ans
		}
	}
	return http.StatusOK, map[string]any{"events_received": len(events), "messages": []string{}, "fbtrace_id": s.fbtrace()}
}

// checkEvent validates one event the way Meta does, from the raw JSON so
// the stand-in does not share the client's decoding or validation.
func (s *Server) checkEvent(i int, raw json.RawMessage, now time.Time) (int, map[string]any) {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ev); err != nil {
		return s.invalid(fmt.Sprintf("data[%d] is not an object", i))
	}
	str := func(k string) (string, bool) {
		var v string
		if ev[k] == nil {
			return "", false
		}
		if err := json.Unmarshal(ev[k], &v); err != nil {
			return "", false
		}
		return v, true
	}
	if name, _ := str("event_name"); name == "" {
		return s.invalid(fmt.Sprintf("data[%d]: event_name is required", i))
	}
	var t int64
	if err := json.Unmarshal(ev["event_time"], &t); err != nil || t <= 0 {
		return s.invalid(fmt.Sprintf("data[%d]: event_time must be a unix timestamp in seconds", i))
	}
	if now.Sub(time.Unix(t, 0)) > 7*24*time.Hour {
		return s.metaError(http.StatusBadRequest, "OAuthException", 100, 2804003, false, "Invalid parameter",
			"Event Timestamp Too Old", "The timestamp for this event is too far in the past. Events need to be sent from your server within 7 days of when they occurred. Enter a timestamp that has occurred within the last 7 days.")
	}
	if time.Unix(t, 0).Sub(now) > time.Minute {
		return s.invalid(fmt.Sprintf("data[%d]: event_time is in the future", i))
	}
	as, _ := str("action_source")
	switch as {
	case "website":
		if u, _ := str("event_source_url"); u == "" {
			return s.invalid(fmt.Sprintf("data[%d]: event_source_url is required for website events", i))
		}
	case "email", "app", "phone_call", "chat", "physical_store", "system_generated", "business_messaging", "other":
	default:
		return s.invalid(fmt.Sprintf("data[%d]: action_source %q is invalid", i, as))
	}
	var ud map[string]json.RawMessage
	if err := json.Unmarshal(ev["user_data"], &ud); err != nil || len(ud) == 0 {
		return s.invalid(fmt.Sprintf("data[%d]: user_data is required", i))
	}
	for _, k := range []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"} {
		if ud[k] == nil {
			continue
		}
		var one string
		var many []string
		if err := json.Unmarshal(ud[k], &one); err == nil {
			many = []string{one}
		} else if err := json.Unmarshal(ud[k], &many); err != nil {
			return s.invalid(fmt.Sprintf("data[%d]: user_data.%s must be a string or a list of strings", i, k))
		}
		for _, v := range many {
			if !s.hashRE.MatchString(v) {
				return s.invalid(fmt.Sprintf("data[%d]: user_data.%s must be hashed (SHA-256, lowercase hex)", i, k))
			}
		}
	}
	udStr := func(k string) string {
		var v string
		_ = json.Unmarshal(ud[k], &v)
		return v
	}
	if ua := udStr("client_user_agent"); as == "website" && ua == "" {
		return s.invalid(fmt.Sprintf("data[%d]: client_user_agent is required for website events", i))
	}
	for _, k := range []string{"client_ip_address", "client_user_agent", "fbp", "fbc"} {
		if ud[k] == nil {
			continue
		}
		v := udStr(k)
		if v == "" || s.anyHashRE.MatchString(v) {
			return s.invalid(fmt.Sprintf("data[%d]: user_data.%s must be sent unhashed", i, k))
		}
	}
	if ip := udStr("client_ip_address"); ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return s.invalid(fmt.Sprintf("data[%d]: client_ip_address is not a valid IP", i))
		}
	}
	if ud["lead_id"] != nil {
		var id int64
		if err := json.Unmarshal(ud["lead_id"], &id); err != nil || id <= 0 {
			return s.invalid(fmt.Sprintf("data[%d]: lead_id must be a positive integer, unhashed", i))
		}
	}
	return 0, nil
}
