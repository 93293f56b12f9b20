package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tally-analytics/tally/rules/deliver"
)

// Client speaks Salesforce's REST API for one org. It is safe for
// concurrent use.
type Client struct {
	cfg  Config
	hc   *http.Client
	base string // instance URL + /services/data/<version>

	mu    sync.Mutex
	token string // the access token in use; "" until fetched
}

// timeout bounds one API call: a 200-record upsert takes Salesforce a few
// seconds when healthy.
const timeout = 60 * time.Second

// NewClient returns a client for cfg (which passed Check); hc nil means
// http.DefaultClient.
func NewClient(cfg Config, hc *http.Client) (*Client, error) {
	cfg = cfg.WithDefaults()
	if errs := cfg.Check(); len(errs) > 0 {
		return nil, errs[0]
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{cfg: cfg, hc: hc, base: strings.TrimRight(cfg.InstanceURL, "/") + "/services/data/" + cfg.APIVersion}, nil
}

// Error is every failure of a call: a transport failure, a refusal by the
// token endpoint, or Salesforce's error array [{"message","errorCode"}].
type Error struct {
	HTTPStatus int // 0 when no answer arrived
	Code       string
	Message    string
	RetryAfter time.Duration
	// Body is the answer as Salesforce sent it, bounded.
	Body    string
	network bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("salesforce: ")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d: ", e.HTTPStatus)
	}
	if e.Code != "" {
		b.WriteString(e.Code + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Class says what the delivery engine does with the tasks of a refused
// request: the org's API limit, 5xx and network failures retry; refused
// credentials, and any other refusal of a whole request (no such
// external-id field, no access to Task), pause the destination with its
// tasks kept, since no task is at fault and fixing the org or the config
// delivers them all.
func (e *Error) Class() deliver.Class {
	switch {
	case e.network, e.HTTPStatus >= 500, e.HTTPStatus == http.StatusTooManyRequests, e.Code == "REQUEST_LIMIT_EXCEEDED", e.Code == "UNABLE_TO_LOCK_ROW":
		return deliver.Retry
	}
	return deliver.Pause
}

// accessToken returns the token in use, fetching one when there is none.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" {
		return c.token, nil
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.hc)
	tokenURL := strings.TrimRight(c.cfg.LoginURL, "/") + "/services/oauth2/token"
	var (
		tok *oauth2.Token
		err error
	)
	if c.cfg.RefreshToken != "" {
		oc := oauth2.Config{ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret,
			Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}}
		tok, err = oc.TokenSource(ctx, &oauth2.Token{RefreshToken: c.cfg.RefreshToken}).Token()
	} else {
		cc := clientcredentials.Config{ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret, TokenURL: tokenURL,
			AuthStyle: oauth2.AuthStyleInParams}
		tok, err = cc.Token(ctx)
	}
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			e := &Error{HTTPStatus: re.Response.StatusCode, Code: re.ErrorCode, Message: "token: " + re.ErrorDescription, Body: bounded(re.Body)}
			if e.Message == "token: " {
				e.Message = "token: the token endpoint refused the credentials"
			}
			return "", e
		}
		return "", &Error{Message: "token: " + redact(err.Error(), c.cfg.ClientSecret), network: true}
	}
	c.token = tok.AccessToken
	return c.token, nil
}

// dropToken forgets token, so the next call fetches a new one (unless
// another call already did).
func (c *Client) dropToken(token string) {
	c.mu.Lock()
	if c.token == token {
		c.token = ""
	}
	c.mu.Unlock()
}

// call sends one API request and decodes a 2xx answer into out. A session
// Salesforce refuses (401 INVALID_SESSION_ID: the token expired or was
// revoked) is retried once with a new token.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	for try := 0; ; try++ {
		token, err := c.accessToken(ctx)
		if err != nil {
			return err
		}
		err = c.once(ctx, token, method, path, body, out)
		var e *Error
		if try == 0 && errors.As(err, &e) && e.HTTPStatus == http.StatusUnauthorized {
			c.dropToken(token)
			continue
		}
		return err
	}
}

func (c *Client) once(ctx context.Context, token, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &Error{Message: err.Error()}
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return &Error{Message: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Message: redact(err.Error(), token), network: true}
	}
	defer resp.Body.Close()
	// Answers are a few hundred bytes per record; 8 MiB bounds a
	// misconfigured instance URL serving something else.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return &Error{HTTPStatus: resp.StatusCode, Message: "read answer: " + err.Error(), network: true}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return &Error{HTTPStatus: resp.StatusCode, Message: "decode answer: " + err.Error(), network: true}
			}
		}
		return nil
	}
	e := &Error{HTTPStatus: resp.StatusCode, Body: bounded(b), RetryAfter: deliver.RetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var errs []struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(b, &errs) == nil && len(errs) > 0 {
		e.Code, e.Message = errs[0].ErrorCode, errs[0].Message
	} else {
		e.Message = strings.TrimSpace(bounded(b))
	}
	return e
}

// Who is a contact or lead found by email.
type Who struct {
	ID          string `json:"Id"`
	Email       string `json:"Email"`
	CreatedDate string `json:"CreatedDate"`
}

// WhoIDs finds, for each email, the most recently created Contact with it
// (HubSpot relates an activity to the most recently created contact), or
// failing that the most recently created unconverted Lead: one query per
// object for as many emails as fit in one query's URI (maxQueryURI).
func (c *Client) WhoIDs(ctx context.Context, emails []string) (map[string]string, error) {
	found := map[string]string{}
	rest := emails
	for _, q := range []func([]string) string{ContactQuery, LeadQuery} {
		if len(rest) == 0 {
			break
		}
		var whos []Who
		for _, chunk := range c.queryChunks(q, rest) {
			ws, err := c.query(ctx, q(chunk))
			if err != nil {
				return nil, err
			}
			whos = append(whos, ws...)
		}
		for _, w := range whos { // newest first: the first per email wins
			e := strings.ToLower(w.Email)
			if _, ok := found[e]; !ok {
				found[e] = w.ID
			}
		}
		var missing []string
		for _, e := range rest {
			if _, ok := found[e]; !ok {
				missing = append(missing, e)
			}
		}
		rest = missing
	}
	return found, nil
}

// ContactQuery is the SOQL that finds the contacts of emails, newest first
// (the highest id first among those created in the same second).
func ContactQuery(emails []string) string {
	return "SELECT Id, Email, CreatedDate FROM Contact WHERE Email IN (" + quoteAll(emails) + ") ORDER BY CreatedDate DESC, Id DESC"
}

// LeadQuery is the same for leads not yet converted into contacts.
func LeadQuery(emails []string) string {
	return "SELECT Id, Email, CreatedDate FROM Lead WHERE IsConverted = false AND Email IN (" + quoteAll(emails) + ") ORDER BY CreatedDate DESC, Id DESC"
}

// quoteAll writes SOQL string literals, escaped as SOQL requires.
func quoteAll(vs []string) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteSOQL(v))
	}
	return b.String()
}

// soqlEscapes escapes what a SOQL string literal cannot hold as it is.
var soqlEscapes = strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\b", `\b`, "\f", `\f`, `"`, `\"`)

// QuoteSOQL is v as a SOQL string literal: quotes and backslashes escaped,
// and the control characters SOQL names.
func QuoteSOQL(v string) string {
	return "'" + soqlEscapes.Replace(v) + "'"
}

// maxQueryURI bounds the URI of one query. Salesforce allows 16,384 bytes
// for a request's URI and headers together and answers 414 past it
// (knowledge article 000386264); 8 KiB leaves the headers ample room. At
// the 254 characters an email may have, a query holds about 25 of them;
// typical ones, well over 100.
const maxQueryURI = 8 << 10

// queryChunks splits emails into runs whose query (q) fits maxQueryURI
// once escaped into the URI; an email too long to fit with any other goes
// alone.
func (c *Client) queryChunks(q func([]string) string, emails []string) [][]string {
	prefix := len("/services/data/" + c.cfg.APIVersion + "/query?q=")
	var chunks [][]string
	start := 0
	for i := range emails {
		if i > start && prefix+len(url.QueryEscape(q(emails[start:i+1]))) > maxQueryURI {
			chunks = append(chunks, emails[start:i])
			start = i
		}
	}
	return append(chunks, emails[start:])
}

// query runs a SOQL query and follows nextRecordsUrl to the end.
func (c *Client) query(ctx context.Context, soql string) ([]Who, error) {
	var out []Who
	path := "/query?q=" + url.QueryEscape(soql)
	for {
		var page struct {
			Done           bool   `json:"done"`
			NextRecordsURL string `json:"nextRecordsUrl"`
			Records        []Who  `json:"records"`
		}
		if err := c.call(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Records...)
		if page.Done || page.NextRecordsURL == "" {
			return out, nil
		}
		next, ok := strings.CutPrefix(page.NextRecordsURL, "/services/data/"+c.cfg.APIVersion)
		if !ok {
			return nil, &Error{Message: "query: unexpected nextRecordsUrl " + page.NextRecordsURL}
		}
		path = next
	}
}

// UpsertResult is Salesforce's answer for one record of an upsert.
type UpsertResult struct {
	ID      string `json:"id"`
	Success bool   `json:"success"`
	Created bool   `json:"created"`
	Errors  []struct {
		StatusCode string   `json:"statusCode"`
		Message    string   `json:"message"`
		Fields     []string `json:"fields"`
	} `json:"errors"`
}

// MaxRecords is the most records one sObject Collections request takes.
const MaxRecords = 200

// UpsertTasks creates or updates tasks by the external-id field, at most
// MaxRecords, each independently (allOrNone false). Each record holds the
// Task fields by API name; attributes are added here.
func (c *Client) UpsertTasks(ctx context.Context, records []map[string]any) ([]UpsertResult, error) {
	if len(records) > MaxRecords {
		return nil, &Error{Message: fmt.Sprintf("%d records in one request; Salesforce takes at most %d", len(records), MaxRecords)}
	}
	for _, r := range records {
		r["attributes"] = map[string]string{"type": "Task"}
	}
	var out []UpsertResult
	err := c.call(ctx, http.MethodPatch, "/composite/sobjects/Task/"+c.cfg.ExternalIDField,
		map[string]any{"allOrNone": false, "records": records}, &out)
	if err != nil {
		return nil, err
	}
	if len(out) != len(records) {
		return nil, &Error{Message: fmt.Sprintf("upsert answered %d results for %d records", len(out), len(records)), network: true}
	}
	return out, nil
}

// ExternalIDField is the Task field the upsert keys on.
func (c *Client) ExternalIDField() string { return c.cfg.ExternalIDField }

func bounded(b []byte) string {
	if len(b) > 4096 {
		b = b[:4096]
	}
	return string(b)
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[secret]")
}
