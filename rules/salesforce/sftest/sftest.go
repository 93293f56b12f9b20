package sftest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config is the org the stand-in plays.
type Config struct {
	ClientID, ClientSecret string
	// RefreshToken is the refresh token the token endpoint accepts (empty:
	// none).
	RefreshToken string
	// APIVersion is the version served, e.g. v62.0.
	APIVersion string
	// ExternalIDField is the Task custom field marked External ID.
	ExternalIDField string
}

// Failure is a failure injected into the next API calls (not the token
// endpoint).
type Failure int

// Failures.
const (
	Pass      Failure = iota // answer normally (to place failures later in a sequence)
	Fail5xx                  // 503 Service Unavailable
	FailLimit                // 403 REQUEST_LIMIT_EXCEEDED: the org's daily API limit
	// FailLostAnswer does the work, then answers 503, as when the answer is
	// lost on its way back.
	FailLostAnswer
)

// Request is one request the stand-in received.
type Request struct {
	Method, Path string
	SOQL         string // the q parameter of a query
	Body         string
	Status       int
}

// Task is a task as the stand-in stored it.
type Task struct {
	ID      string
	Fields  map[string]any
	Updates int
}

type person struct {
	id, email string
	created   time.Time
	converted bool
}

// Server is a running stand-in.
type Server struct {
	cfg Config
	srv *httptest.Server

	mu       sync.Mutex
	seq      int
	tokens   map[string]bool
	refused  bool // the token endpoint refuses the credentials
	contacts []person
	leads    []person
	tasks    map[string]*Task // by external id
	requests []Request
	failures []Failure
	hang     chan struct{} // closed to release withheld answers
	// withhold: upserts are done, and their answers withheld until
	// ClearFailures or Close (a crash between Salesforce's work and the
	// sender hearing of it).
	withhold bool
	creates  int
}

// New makes a stand-in reached only through Transport (it opens no
// socket, so it works inside a synctest bubble).
func New(cfg Config) *Server {
	return &Server{cfg: cfg, tokens: map[string]bool{}, tasks: map[string]*Task{}, hang: make(chan struct{})}
}

// Start serves a stand-in on a loopback port.
func Start(cfg Config) *Server {
	s := New(cfg)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Transport serves requests in-process (for tests inside a synctest
// bubble, which cannot wait on real sockets); any host reaches the org.
func (s *Server) Transport() http.RoundTripper {
	return roundTrip(func(r *http.Request) (*http.Response, error) {
		w := httptest.NewRecorder()
		s.serve(w, r)
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		return w.Result(), nil
	})
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// URL is the org's instance (and login) URL ("" for New).
func (s *Server) URL() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.URL
}

// Close stops the server.
func (s *Server) Close() {
	s.ClearFailures()
	if s.srv != nil {
		s.srv.Close()
	}
}

// AddContact creates a contact and returns its 18-character id.
func (s *Server) AddContact(email string, created time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := person{id: s.newID("003"), email: email, created: created}
	s.contacts = append(s.contacts, p)
	return p.id
}

// AddLead creates a lead (converted or not) and returns its id.
func (s *Server) AddLead(email string, created time.Time, converted bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := person{id: s.newID("00Q"), email: email, created: created, converted: converted}
	s.leads = append(s.leads, p)
	return p.id
}

// Tasks returns the stored tasks by external id.
func (s *Server) Tasks() map[string]Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Task{}
	for k, t := range s.tasks {
		out[k] = *t
	}
	return out
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// FailNext makes the next n API calls fail with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// ClearFailures drops pending failures and releases withheld answers.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = nil
	s.withhold = false
	select {
	case <-s.hang:
	default:
		close(s.hang)
	}
	s.hang = make(chan struct{}) // later withheld answers wait again
}

// WithholdUpsertAnswers makes every upsert do its work and then answer
// nothing until ClearFailures or Close.
func (s *Server) WithholdUpsertAnswers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.withhold = true
}

// Creates counts the tasks created (not updated) so far.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// ExpireSessions invalidates every access token issued so far, as a
// revoked session or an expired one: calls with them answer 401
// INVALID_SESSION_ID; a new token works.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// RefuseCredentials makes the token endpoint refuse (true) or accept
// (false) the connected app's credentials, and expires every session.
func (s *Server) RefuseCredentials(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused = refuse
	clear(s.tokens)
}

// newID makes a record id: the key prefix, a 12-character sequence, and
// the 3-character case-safe suffix of an 18-character id.
func (s *Server) newID(prefix string) string {
	s.seq++
	id15 := fmt.Sprintf("%s5g%010d", prefix, s.seq)
	return id15 + idSuffix(id15)
}

// idSuffix computes the case-safe suffix of a 15-character id: for each
// 5-character chunk, a bit per upper-case letter, read as an index into
// A–Z0–5.
func idSuffix(id15 string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	var b strings.Builder
	for chunk := range 3 {
		n := 0
		for i := range 5 {
			if c := id15[chunk*5+i]; c >= 'A' && c <= 'Z' {
				n |= 1 << i
			}
		}
		b.WriteByte(alphabet[n])
	}
	return b.String()
}

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$`)

// validID reports whether id is a well-formed 15- or 18-character id.
func validID(id string) bool {
	return idPattern.MatchString(id) && (len(id) == 15 || idSuffix(id[:15]) == id[15:])
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil { // nil on a client's GET served in-process
		body, _ = io.ReadAll(io.LimitReader(r.Body, 64<<20))
	}
	rec := Request{Method: r.Method, Path: r.URL.Path, SOQL: r.URL.Query().Get("q"), Body: string(body)}
	status, answer := s.answer(r, body)
	rec.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	if status == 0 { // a withheld answer
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(answer)
}

type apiError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

func refuse(status int, code, format string, args ...any) (int, any) {
	return status, []apiError{{Message: fmt.Sprintf(format, args...), ErrorCode: code}}
}

// maxRequestHead is what Salesforce allows a request's URI and headers
// together; a URI longer than it alone is answered 414 (knowledge article
// 000386264).
const maxRequestHead = 16384

func (s *Server) answer(r *http.Request, body []byte) (int, any) {
	if len(r.URL.RequestURI()) > maxRequestHead {
		return http.StatusRequestURITooLong, []apiError{{Message: "URI Too Long", ErrorCode: "URI_TOO_LONG"}}
	}
	if r.URL.Path == "/services/oauth2/token" {
		return s.token(r, body)
	}
	base := "/services/data/" + s.cfg.APIVersion
	rest, ok := strings.CutPrefix(r.URL.Path, base)
	if !ok {
		return refuse(404, "NOT_FOUND", "The requested resource does not exist")
	}
	s.mu.Lock()
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	valid := s.tokens[token]
	var f Failure
	if valid && len(s.failures) > 0 {
		f, s.failures = s.failures[0], s.failures[1:]
	}
	s.mu.Unlock()
	if !valid {
		return refuse(401, "INVALID_SESSION_ID", "Session expired or invalid")
	}
	switch f {
	case Fail5xx:
		return refuse(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable")
	case FailLimit:
		return refuse(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
	case FailLostAnswer:
		s.route(r, rest, body)
		return refuse(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable")
	}
	return s.route(r, rest, body)
}

func (s *Server) route(r *http.Request, rest string, body []byte) (int, any) {
	switch {
	case rest == "/query" && r.Method == http.MethodGet:
		return s.query(r.URL.Query().Get("q"))
	case strings.HasPrefix(rest, "/composite/sobjects/") && r.Method == http.MethodPatch:
		status, answer := s.upsert(strings.TrimPrefix(rest, "/composite/sobjects/"), r.Header.Get("Content-Type"), body)
		s.mu.Lock()
		withhold, hang := s.withhold, s.hang
		s.mu.Unlock()
		if withhold {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return 0, nil
		}
		return status, answer
	}
	return refuse(404, "NOT_FOUND", "The requested resource does not exist")
}

// token serves POST /services/oauth2/token.
func (s *Server) token(r *http.Request, body []byte) (int, any) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return 400, map[string]string{"error": "invalid_request", "error_description": "must use HTTP POST with a form body"}
	}
	form, err := parseForm(body)
	if err != nil {
		return 400, map[string]string{"error": "invalid_request", "error_description": err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if form["client_id"] != s.cfg.ClientID || form["client_secret"] != s.cfg.ClientSecret || s.refused {
		return 400, map[string]string{"error": "invalid_client", "error_description": "invalid client credentials"}
	}
	switch form["grant_type"] {
	case "client_credentials":
	case "refresh_token":
		if s.cfg.RefreshToken == "" || form["refresh_token"] != s.cfg.RefreshToken {
			return 400, map[string]string{"error": "invalid_grant", "error_description": "expired access/refresh token"}
		}
	default:
		return 400, map[string]string{"error": "unsupported_grant_type", "error_description": "grant type not supported"}
	}
	s.seq++
	tok := fmt.Sprintf("00D5g000000TEST!AQ%08d", s.seq)
	s.tokens[tok] = true
	base := s.URL()
	if base == "" {
		base = "https://" + r.Host
	}
	return 200, map[string]string{"access_token": tok, "instance_url": base, "id": base + "/id/00D5g000000TEST/0055g000000USER",
		"token_type": "Bearer", "issued_at": fmt.Sprint(time.Now().UnixMilli()), "signature": "c3RhbmQtaW4="}
}
