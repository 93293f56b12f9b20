package ingest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Reading completions back: GET /events/v3/events, HubSpot's "retrieve
// event data" call, with its query parameters and response shape, for
// tokens with the read scope.

// EventReader reads stored completions for the events API. store
// implements it against ClickHouse; main hands it to the collector.
type EventReader interface {
	// ReadEvents returns at most q.Limit completions matching q, in q's
	// order, starting strictly after q.After (when set). The completions
	// carry what the events table stores: no consent, no identity beyond
	// the email.
	ReadEvents(ctx context.Context, q EventQuery) ([]Completion, error)
}

// EventQuery is a read of stored completions. Every filter set must hold.
type EventQuery struct {
	// Person filters, answered through the identities table: a completion
	// matches when it carries the email (or object id), or when its
	// visitor id was linked to that email (or external id) by an
	// identify, before or after the completion happened.
	Email    string // normalised (NormalizeEmail)
	ObjectID string

	// EventNames are the internal names allowed; empty means every event.
	EventNames []string
	// IDs are event ids; empty means any.
	IDs []string
	// Properties are property.NAME=VALUE filters on custom properties.
	Properties []Prop

	After, Before time.Time // exclusive bounds on occurred time; zero means none
	Descending    bool      // newest first
	// Cursor is the position to continue from (exclusive): the next rows
	// in the query's order. Nil starts at the beginning.
	Cursor *Cursor
	Limit  int
}

// Cursor is a position in a read's order: rows are sorted by occurred
// time, then event name, then event id, so the cursor is those three.
type Cursor struct {
	OccurredAt time.Time
	EventName  string
	EventID    string
}

// CursorOf is the cursor positioned at c.
func CursorOf(c *Completion) Cursor {
	return Cursor{OccurredAt: c.OccurredAt, EventName: c.EventName, EventID: c.EventID}
}

// Encode is the cursor as the opaque paging token of the API.
func (c Cursor) Encode() string {
	s := strconv.FormatInt(c.OccurredAt.UnixMilli(), 10) + "\x1f" + c.EventName + "\x1f" + c.EventID
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// DecodeCursor reads a paging token made by Encode.
func DecodeCursor(tok string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return Cursor{}, errors.New("not a paging token from this API")
	}
	parts := strings.Split(string(b), "\x1f")
	if len(parts) != 3 {
		return Cursor{}, errors.New("not a paging token from this API")
	}
	ms, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return Cursor{}, errors.New("not a paging token from this API")
	}
	return Cursor{OccurredAt: time.UnixMilli(ms).UTC(), EventName: parts[1], EventID: parts[2]}, nil
}

// Read page sizes: HubSpot's default page is 100; 1,000 rows of at most 50
// properties of 256 characters is a ~13 MB answer at the very worst.
const (
	defaultReadLimit = 100
	maxReadLimit     = 1000
)

// readRequest is a parsed GET /events/v3/events: the query for the reader
// and how the page is to be turned around and linked.
type readRequest struct {
	q EventQuery
	// backward: the request paged with before; the reader was asked for
	// the rows before the cursor in reverse order, which are then turned
	// around.
	backward bool
	// paged: the request carried a cursor, so there are rows before the
	// page.
	paged bool
}

// ParseEventQuery reads the events API's query parameters (vals) into a
// query, or returns every problem with them. The API's eventType is an
// internal name or HubSpot's pe<digits>_<name>.
func parseReadRequest(cat *Catalog, vals url.Values) (readRequest, []FieldError) {
	var r readRequest
	q := &r.q
	var errs []FieldError
	bad := func(param, code, format string, args ...any) {
		errs = append(errs, fieldErr(param, code, format, args...))
	}
	one := func(name string) string { return strings.TrimSpace(vals.Get(name)) }

	objectType := strings.ToLower(one("objectType"))
	if t, ok := objectTypeNames[objectType]; ok {
		objectType = t
	}
	for key := range vals {
		if !strings.HasPrefix(key, "objectProperty.") && !strings.HasPrefix(key, "property.") && !knownReadParams[key] {
			bad(key, "UNKNOWN_PARAMETER", "%q is not a parameter of this call", key)
		}
		if strings.HasPrefix(key, "objectProperty.") && key != "objectProperty.email" {
			bad(key, "INVALID_VALUE", "%q: only objectProperty.email can identify a record", key)
		}
	}
	if v := one("objectProperty.email"); v != "" {
		q.Email = NormalizeEmail(v)
		if !isEmailAddress(q.Email) {
			bad("objectProperty.email", "INVALID_EMAIL", "%q is not a valid address", v)
		}
	}
	if v := one("objectId"); v != "" {
		if code, msg := checkIdentifier(v, MaxObjectIDLen); code != "" {
			bad("objectId", code, "objectId %s", msg)
		}
		q.ObjectID = v
	}

	// The event names allowed: eventType, narrowed by objectType.
	if v := one("eventType"); v != "" {
		d, ok := cat.Lookup(v)
		if !ok {
			bad("eventType", "UNKNOWN_EVENT", "event %q is not defined in the config", v)
		} else {
			q.EventNames = []string{d.Name}
		}
	}
	if objectType != "" {
		var names []string
		for _, d := range cat.all() {
			if objectOf(d) == objectType && (len(q.EventNames) == 0 || q.EventNames[0] == d.Name) {
				names = append(names, d.Name)
			}
		}
		if len(names) == 0 {
			// No event is about that kind of record: nothing can match,
			// which is an empty page rather than an error (a custom
			// object may simply have no events yet).
			names = []string{}
		}
		q.EventNames = names
	}

	for _, b := range []struct {
		param string
		dst   *time.Time
	}{{"occurredAfter", &q.After}, {"occurredBefore", &q.Before}} {
		if v := one(b.param); v != "" {
			t, err := ParseTime(v)
			if err != nil {
				bad(b.param, "INVALID_TIME", "%s: %v", b.param, err)
				continue
			}
			*b.dst = t
		}
	}

	q.Limit = defaultReadLimit
	if v := one("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			bad("limit", "INVALID_VALUE", "limit %q is not a whole number", v)
		case n < 1 || n > maxReadLimit:
			bad("limit", "INVALID_VALUE", "limit is %d; it must be 1 to %d", n, maxReadLimit)
		default:
			q.Limit = n
		}
	}

	// sort: HubSpot's ASCENDING or DESCENDING; occurredAt and -occurredAt
	// (the CRM search style) mean the same. Newest first by default, the
	// way a timeline reads.
	q.Descending = true
	for _, v := range vals["sort"] {
		switch strings.ToUpper(strings.TrimSpace(v)) {
		case "ASCENDING", "ASC", "OCCURREDAT", "+OCCURREDAT":
			q.Descending = false
		case "DESCENDING", "DESC", "-OCCURREDAT":
			q.Descending = true
		default:
			bad("sort", "INVALID_VALUE", "sort %q: use ASCENDING or DESCENDING", v)
		}
	}

	after, before := one("after"), one("before")
	switch {
	case after != "" && before != "":
		bad("before", "INVALID_VALUE", "send after or before, not both")
	case after != "" || before != "":
		param, tok := "after", after
		if before != "" {
			param, tok = "before", before
			r.backward = true
		}
		c, err := DecodeCursor(tok)
		if err != nil {
			bad(param, "INVALID_VALUE", "%s: %v", param, err)
		} else {
			q.Cursor = &c
			r.paged = !r.backward
		}
	}
	if r.backward {
		q.Descending = !q.Descending
	}

	for _, v := range vals["id"] {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id == "" {
				continue
			}
			if code, msg := checkIdentifier(id, MaxEventIDLen); code != "" {
				bad("id", code, "id %s", msg)
				continue
			}
			q.IDs = append(q.IDs, id)
		}
	}
	if len(q.IDs) > maxReadLimit {
		bad("id", "INVALID_VALUE", "%d ids sent; the limit is %d", len(q.IDs), maxReadLimit)
	}
	for key, vs := range vals {
		name, ok := strings.CutPrefix(key, "property.")
		if !ok {
			continue
		}
		if !asciiName(name) {
			bad(key, "INVALID_NAME", "%q is not a property name", name)
			continue
		}
		q.Properties = append(q.Properties, Prop{Name: strings.ToLower(name), Value: vs[0]})
	}
	slices.SortFunc(q.Properties, byPropName)
	return r, errs
}

var knownReadParams = map[string]bool{
	"objectType": true, "objectId": true, "eventType": true, "occurredAfter": true, "occurredBefore": true,
	"limit": true, "after": true, "before": true, "sort": true, "id": true,
}

// objectTypeNames maps HubSpot's object type ids and plural names onto
// the object names of event definitions.
var objectTypeNames = map[string]string{
	"0-1": "contact", "contacts": "contact", "0-2": "company", "companies": "company",
	"0-3": "deal", "deals": "deal", "0-5": "ticket", "tickets": "ticket",
}

func objectOf(d *Definition) string {
	if d.Object == "" {
		return "contact"
	}
	return strings.ToLower(d.Object)
}

// unifiedEvent is HubSpot's ExternalUnifiedEvent.
type unifiedEvent struct {
	ID         string            `json:"id"`
	EventType  string            `json:"eventType"`
	ObjectID   string            `json:"objectId"`
	ObjectType string            `json:"objectType"`
	OccurredAt string            `json:"occurredAt"`
	Properties map[string]string `json:"properties"`
}

type eventsPage struct {
	Results []unifiedEvent `json:"results"`
	Paging  *paging        `json:"paging,omitempty"`
}

type paging struct {
	Next *pageLink `json:"next,omitempty"`
	Prev *pageLink `json:"prev,omitempty"`
}

type pageLink struct {
	After  string `json:"after,omitempty"`
	Before string `json:"before,omitempty"`
	Link   string `json:"link,omitempty"`
}

// unifiedOf renders a stored completion the way HubSpot's events API
// does. objectId is the identifier the completion was sent with, highest
// precedence first (§5.2): its objectId, else its email, else its visitor
// id. The standard fields come back under HubSpot's default property
// names, as they can be sent.
func (c *Collector) unifiedOf(comp *Completion) unifiedEvent {
	obj := "contact"
	if d, ok := c.catalog.Lookup(comp.EventName); ok {
		obj = objectOf(d)
	}
	id := comp.ObjectID
	if id == "" {
		id = comp.Identity.Email
	}
	if id == "" {
		id = comp.VisitorID
	}
	props := make(map[string]string, len(comp.Props)+8)
	for _, p := range comp.Props {
		props[p.Name] = p.Value
	}
	e := &comp.Enrichment
	for _, s := range []struct{ name, v string }{
		{"hs_page_url", comp.Page.URL}, {"hs_referrer", comp.Page.Referrer}, {"hs_page_title", comp.Page.Title},
		{"hs_language", comp.Client.Language}, {"hs_browser", e.Browser}, {"hs_operating_system", e.OS},
		{"hs_operating_version", e.OSVersion}, {"hs_device_type", e.DeviceType}, {"hs_city", e.City},
		{"hs_region", e.Region}, {"hs_country", e.Country}, {"hs_touchpoint_source", e.TouchpointSource},
		{"hs_utm_source", e.UTMSource}, {"hs_utm_medium", e.UTMMedium}, {"hs_utm_campaign", e.UTMCampaign},
		{"hs_utm_term", e.UTMTerm}, {"hs_utm_content", e.UTMContent},
	} {
		if s.v != "" {
			props[s.name] = s.v
		}
	}
	return unifiedEvent{ID: comp.EventID, EventType: comp.EventName, ObjectID: id, ObjectType: strings.ToUpper(obj),
		OccurredAt: comp.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z"), Properties: props}
}

// listEvents answers GET /events/v3/events.
func (c *Collector) listEvents(ctx *fiber.Ctx) error {
	if c.cfg.Reader == nil {
		return writeEnvelope(ctx, fiber.StatusNotImplemented, envelope{Category: "NOT_IMPLEMENTED", Message: "reading events back is not configured on this server"})
	}
	vals := queryValues(ctx)
	r, errs := parseReadRequest(c.catalog, vals)
	if len(errs) > 0 {
		details := make([]errorDetail, len(errs))
		for i, e := range errs {
			details[i] = detailOf(e)
		}
		return writeEnvelope(ctx, fiber.StatusBadRequest, envelope{Category: "VALIDATION_ERROR",
			Message: fmt.Sprintf("%d problem(s) in the query. First: %s: %s", len(errs), errs[0].Path, errs[0].Message), Errors: details})
	}
	page := eventsPage{Results: []unifiedEvent{}}
	if r.q.EventNames != nil && len(r.q.EventNames) == 0 {
		return ctx.JSON(page)
	}
	want := r.q.Limit
	r.q.Limit = want + 1 // one more tells whether another page follows
	got, err := c.cfg.Reader.ReadEvents(ctx.UserContext(), r.q)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	more := len(got) > want
	got = got[:min(len(got), want)]
	if r.backward {
		slices.Reverse(got)
	}
	for i := range got {
		page.Results = append(page.Results, c.unifiedOf(&got[i]))
	}
	if len(got) == 0 {
		return ctx.JSON(page)
	}
	var pg paging
	link := func(param, tok string) string {
		v := cloneValues(vals)
		delete(v, "after")
		delete(v, "before")
		v.Set(param, tok)
		return string(ctx.Request().URI().Path()) + "?" + v.Encode()
	}
	// Forward paging: another page follows when the reader had more;
	// paging backward, the rows after this page are the ones the request
	// came from.
	if (more && !r.backward) || r.backward {
		tok := CursorOf(&got[len(got)-1]).Encode()
		pg.Next = &pageLink{After: tok, Link: link("after", tok)}
	}
	if r.paged || (r.backward && more) {
		tok := CursorOf(&got[0]).Encode()
		pg.Prev = &pageLink{Before: tok, Link: link("before", tok)}
	}
	if pg.Next != nil || pg.Prev != nil {
		page.Paging = &pg
	}
	return ctx.JSON(page)
}

// listEventTypes answers GET /events/v3/events/event-types: the names the
// eventType parameter takes.
func (c *Collector) listEventTypes(ctx *fiber.Ctx) error {
	defs := c.catalog.all()
	names := make([]string, 0, len(defs))
	for _, d := range defs {
		names = append(names, d.Name)
	}
	return ctx.JSON(fiber.Map{"eventTypes": names})
}

// queryValues copies the request's query arguments (fiber reuses their
// memory after the handler returns).
func queryValues(ctx *fiber.Ctx) url.Values {
	vals := url.Values{}
	ctx.Context().QueryArgs().VisitAll(func(k, v []byte) {
		key := string(k)
		// HubSpot's clients send arrays as repeated keys; some tools add [].
		key = strings.TrimSuffix(key, "[]")
		vals[key] = append(vals[key], string(v))
	})
	return vals
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
