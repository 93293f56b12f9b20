package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// APIInput is HubSpot's BehavioralEventHttpCompletionRequest.
type APIInput struct {
	EventName  string                     `json:"eventName"`
	Properties map[string]json.RawMessage `json:"properties"`
	OccurredAt json.RawMessage            `json:"occurredAt"`
	UUID       string                     `json:"uuid"`
	Email      string                     `json:"email"`
	UTK        string                     `json:"utk"`
	ObjectID   json.RawMessage            `json:"objectId"`
}

type apiBatch struct {
	Inputs []json.RawMessage `json:"inputs"`
}

// Identifier limits, counted in characters, HubSpot's where it has one. The
// API refuses a longer or malformed identifier with a named error; the
// snippet path rejects that completion alone (identifiers cannot be cut
// without becoming someone else's).
const (
	// MaxEventIDLen bounds a client-supplied event id (a UUID is 36).
	MaxEventIDLen = 128
	// MaxEmailLen is RFC 5321's longest address (a 256-character path less
	// its angle brackets), which HubSpot's email property also takes.
	MaxEmailLen = 254
	// MaxUTKLen bounds a visitor token: HubSpot's hubspotutk is 32 hex
	// characters; 128 leaves room for other trackers' ids.
	MaxUTKLen = 128
	// MaxObjectIDLen bounds an objectId: HubSpot's are integers of up to
	// 19 digits; 64 leaves room for a CRM's own ids.
	MaxObjectIDLen = 64
)

// eventID is a completion's event id: the one the client sent, or a new
// UUID when it sent none (the completion still counts, but a retry of it
// cannot be recognised). A problem with the sent one is returned as an
// error code and message.
func eventID(sent string) (id, code, msg string) {
	if sent == "" {
		return uuid.NewString(), "", ""
	}
	if code, msg := checkIdentifier(sent, MaxEventIDLen); code != "" {
		return "", code, msg
	}
	return sent, "", ""
}

// checkIdentifier reports what is wrong with an identifier, if anything:
// longer than max characters, or holding a control character (a newline in
// an id would split log lines and CSV exports downstream).
func checkIdentifier(v string, max int) (code, msg string) {
	if n := utf8.RuneCountInString(v); n > max {
		return "VALUE_TOO_LONG", fmt.Sprintf("is %d characters; the limit is %d", n, max)
	}
	if !utf8.ValidString(v) {
		return "INVALID_VALUE", "is not valid UTF-8"
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "INVALID_VALUE", fmt.Sprintf("holds the control character %U", r)
		}
	}
	return "", ""
}

// ParseAPIInput turns one HubSpot-style input into a completion, or returns
// every problem it has, each path prefixed by path ("inputs[3]").
func ParseAPIInput(cat *Catalog, raw []byte, path string, now time.Time, src Source) (Completion, []FieldError) {
	p := func(field string) string {
		if path == "" {
			return field
		}
		return path + "." + field
	}
	var in APIInput
	if err := gojson.Unmarshal(raw, &in); err != nil {
		return Completion{}, []FieldError{fieldErr(pathOr(path, "body"), "INVALID_JSON", "not a valid completion object: %v", err)}
	}
	c := Completion{Source: src, ReceivedAt: now.UTC(), Consent: Consent{Analytics: true, Ads: true}}
	var errs []FieldError

	def, ok := cat.Lookup(in.EventName)
	switch {
	case in.EventName == "":
		errs = append(errs, fieldErr(p("eventName"), "REQUIRED", "eventName is required"))
	case !ok:
		errs = append(errs, fieldErr(p("eventName"), "UNKNOWN_EVENT", "event %q is not defined in the config", in.EventName))
	default:
		c.EventName = def.Name
	}

	c.OccurredAt = c.ReceivedAt.Truncate(time.Millisecond)
	if ts := jsonScalar(in.OccurredAt); ts != "" {
		t, err := ParseTime(ts)
		switch {
		case err != nil:
			errs = append(errs, fieldErr(p("occurredAt"), "INVALID_TIME", "occurredAt: %v", err))
		case t.After(now.Add(MaxFutureSkew)):
			errs = append(errs, fieldErr(p("occurredAt"), "FUTURE_TIME", "occurredAt %s is more than 5 minutes in the future", t.Format(time.RFC3339)))
		case t.Before(MinOccurredAt):
			errs = append(errs, fieldErr(p("occurredAt"), "INVALID_TIME", "occurredAt %s is before %s, the earliest time tally stores", t.Format(time.RFC3339), MinOccurredAt.Format("2006-01-02")))
		default:
			c.OccurredAt = t
		}
	}

	if id, code, msg := eventID(in.UUID); code == "" {
		c.EventID = id
	} else {
		errs = append(errs, fieldErr(p("uuid"), code, "uuid %s", msg))
	}

	// Identifiers, highest precedence first: objectId, email, utk. Each one
	// sent must be valid; at least one is required.
	c.ObjectID = jsonScalar(in.ObjectID)
	in.Email = NormalizeEmail(in.Email)
	for _, id := range []struct {
		name, v string
		max     int
	}{{"objectId", c.ObjectID, MaxObjectIDLen}, {"email", in.Email, MaxEmailLen}, {"utk", in.UTK, MaxUTKLen}} {
		if code, msg := checkIdentifier(id.v, id.max); code != "" {
			errs = append(errs, fieldErr(p(id.name), code, "%s %s", id.name, msg))
		}
	}
	if in.Email != "" {
		if len(in.Email) <= MaxEmailLen && !isEmailAddress(in.Email) {
			errs = append(errs, fieldErr(p("email"), "INVALID_EMAIL", "email %q is not a valid address", in.Email))
		}
		c.Identity.Email = in.Email
	}
	c.VisitorID = in.UTK
	if c.ObjectID == "" && in.Email == "" && in.UTK == "" && !hasMatchingID(def, in.Properties) {
		errs = append(errs, fieldErr(pathOr(path, "body"), "MISSING_IDENTIFIER", "one of objectId, email or utk is required"))
	}

	if def != nil {
		props := make([]Prop, 0, len(in.Properties))
		for k, v := range in.Properties {
			s, ok := propScalar(v)
			if !ok {
				errs = append(errs, fieldErr(p("properties."+k), "INVALID_VALUE", "property %q must be a string, number or bool", k))
				continue
			}
			props = append(props, Prop{Name: k, Value: s})
		}
		props, uerrs := takeUserData(&c, def, props, p("properties"))
		errs = append(errs, uerrs...)
		errs = append(errs, ApplyProperties(&c, def, props, Strict, p("properties"))...)
	}
	return c, errs
}

// isEmailAddress reports whether s is a bare address ("a@b.com"), not a
// display-name form that net/mail also accepts ("A <a@b.com>"). The common
// shape, letters, digits and ._%+- before the @ and dot-separated labels
// after it, is taken without net/mail's full parse (FuzzPlainEmail holds
// that net/mail agrees with every address it takes).
func isEmailAddress(s string) bool {
	if plainEmail(s) {
		return true
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

// plainEmail reports whether s is local@domain with a dot-atom local part
// of letters, digits and ._%+- and a domain of dot-separated labels of
// letters, digits and hyphens, no label starting or ending with one.
// Anything else is left to net/mail.
func plainEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._%+-", c) >= 0) {
			return false
		}
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func pathOr(path, alt string) string {
	if path == "" {
		return alt
	}
	return path
}

// hasMatchingID reports whether the definition's custom matching property
// was sent (it identifies the record ahead of every other identifier).
func hasMatchingID(def *Definition, props map[string]json.RawMessage) bool {
	if def == nil || def.MatchingProperty == "" {
		return false
	}
	return jsonScalar(props[def.MatchingProperty]) != ""
}

// jsonScalar reads a JSON string or number as text; null or absent is "".
func jsonScalar(raw json.RawMessage) string {
	s, _ := propScalar(raw)
	return s
}

// propScalar reads a property value: HubSpot sends strings, but numbers and
// bools are taken as their JSON text. Objects and arrays are refused.
func propScalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	switch raw[0] {
	case '"':
		if s, ok := plainString(raw); ok {
			return s, true
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	case '{', '[':
		return "", false
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err == nil || string(raw) == "true" || string(raw) == "false" {
		return string(raw), true
	}
	return "", false
}

// plainString decodes a JSON string literal that needs no unescaping: no
// backslash, no control character and valid UTF-8, which is what almost
// every value is. encoding/json would return the same bytes for it; it is
// skipped because a full Unmarshal per value costs more than the value.
// ok is false for anything else, which the caller decodes the long way.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, b := range in {
		if b < ' ' || b == '"' || b == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// apiBody reads an API request's body (see readBody). A body it cannot
// read is answered with the error envelope: then body is nil and err is
// what the handler returns.
func (c *Collector) apiBody(ctx *fiber.Ctx) (body []byte, err error) {
	body, err = readBody(ctx, apiBody)
	var eb *errBody
	if errors.As(err, &eb) {
		return nil, writeEnvelope(ctx, eb.Code, envelope{Category: "VALIDATION_ERROR", Message: eb.Reason})
	}
	return body, err
}

func (c *Collector) sendOne(ctx *fiber.Ctx) error {
	body, err := c.apiBody(ctx)
	if body == nil {
		return err
	}
	comp, errs := ParseAPIInput(c.catalog, body, "", c.now(), SourceAPI)
	if len(errs) > 0 {
		return c.validationFailed(ctx, body, errs, comp.EventName)
	}
	if err := c.accept(ctx.UserContext(), []Completion{comp}); err != nil {
		return err
	}
	return ctx.SendStatus(fiber.StatusNoContent)
}

func (c *Collector) sendBatch(ctx *fiber.Ctx) error {
	body, err := c.apiBody(ctx)
	if body == nil {
		return err
	}
	var b apiBatch
	if err := gojson.Unmarshal(body, &b); err != nil {
		return c.validationFailed(ctx, body, []FieldError{fieldErr("inputs", "INVALID_JSON", "body is not {\"inputs\": [...]}: %v", err)}, "")
	}
	switch {
	case len(b.Inputs) == 0:
		return c.validationFailed(ctx, body, []FieldError{fieldErr("inputs", "REQUIRED", "inputs must hold at least one completion")}, "")
	case len(b.Inputs) > MaxBatch:
		return c.validationFailed(ctx, body, []FieldError{fieldErr("inputs", "BATCH_TOO_LARGE", "%d inputs sent; the limit is %d per batch", len(b.Inputs), MaxBatch)}, "")
	}
	now := c.now()
	comps := make([]Completion, 0, len(b.Inputs))
	var bad []int
	var badErrs [][]FieldError
	var badNames []string
	seen := make(map[[2]string]bool, len(b.Inputs))
	for i, raw := range b.Inputs {
		comp, errs := ParseAPIInput(c.catalog, raw, fmt.Sprintf("inputs[%d]", i), now, SourceAPI)
		if len(errs) > 0 {
			bad, badErrs, badNames = append(bad, i), append(badErrs, errs), append(badNames, comp.EventName)
			continue
		}
		key := [2]string{comp.EventName, comp.EventID}
		if seen[key] { // the same event id twice in one batch: first wins
			c.cfg.Pipeline.duplicates.Inc()
			continue
		}
		seen[key] = true
		comps = append(comps, comp)
	}
	if len(bad) > 0 {
		return c.validationFailedBatch(ctx, b.Inputs, bad, badErrs, badNames)
	}
	if err := c.accept(ctx.UserContext(), comps); err != nil {
		return err
	}
	return ctx.SendStatus(fiber.StatusNoContent)
}

// validationFailed answers 400 with the envelope for a body refused as a
// whole; the body is each rejection's payload.
// maxErrorsPerItem bounds the problems the envelope lists for one input;
// the last entry counts the rest. A batch of 500 inputs answers at most
// 5,000 entries of at most ~1 KB.
const maxErrorsPerItem = 10

// firstSegment is "inputs[3]" of "inputs[3].properties.x", or "" for a
// path of one segment.
func firstSegment(path string) string {
	if i := strings.IndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

func (c *Collector) validationFailed(ctx *fiber.Ctx, body []byte, errs []FieldError, name string) error {
	return c.validationFailedBatch(ctx, []json.RawMessage{body}, []int{0}, [][]FieldError{errs}, []string{name})
}

// validationFailedBatch records the rejections and answers HubSpot's error
// envelope listing every failing item and field: errs[k] and names[k] are
// those of inputs[idx[k]].
func (c *Collector) validationFailedBatch(ctx *fiber.Ctx, inputs []json.RawMessage, idx []int, errs [][]FieldError, names []string) error {
	now := c.now().UTC()
	var details []errorDetail
	var rejs []Rejection
	for k, i := range idx {
		item := errs[k]
		for j, e := range item {
			if j == maxErrorsPerItem-1 && len(item) > maxErrorsPerItem {
				details = append(details, errorDetail{Message: fmt.Sprintf("%d more problems in this input are not listed", len(item)-j),
					In: pathOr(firstSegment(e.Path), "body"), Code: "TOO_MANY_ERRORS", SubCategory: "LIMIT_EXCEEDED"})
				break
			}
			details = append(details, detailOf(e))
		}
		// One rejection row per bad input, however many problems it has.
		r := Rejection{At: now, Source: SourceAPI, EventName: echo(names[k], MaxEventNameLen+16), Reason: item[0].Code, Field: item[0].Path,
			Payload: boundPayload(inputs[i])}
		if len(item) > 1 {
			r.Field = fmt.Sprintf("%s (and %d more)", r.Field, len(item)-1)
		}
		rejs = append(rejs, r)
	}
	c.reject(rejs)
	msg := fmt.Sprintf("%d problem(s) in the request; nothing was stored. First: %s", len(details), details[0].In+": "+details[0].Message)
	return writeEnvelope(ctx, fiber.StatusBadRequest, envelope{Category: "VALIDATION_ERROR", Message: msg, Errors: details})
}

func boundPayload(b []byte) string {
	if len(b) > MaxRejectionPayload {
		b = b[:MaxRejectionPayload]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// envelope is HubSpot's error body (ModelError).
type envelope struct {
	Status        string              `json:"status"`
	Category      string              `json:"category"`
	SubCategory   string              `json:"subCategory,omitempty"`
	CorrelationID string              `json:"correlationId"`
	Message       string              `json:"message"`
	Errors        []errorDetail       `json:"errors,omitempty"`
	Context       map[string][]string `json:"context,omitempty"`
	Links         map[string]string   `json:"links,omitempty"`
}

// errorDetail is HubSpot's ErrorDetail.
type errorDetail struct {
	Message     string              `json:"message"`
	In          string              `json:"in,omitempty"`
	Code        string              `json:"code,omitempty"`
	SubCategory string              `json:"subCategory,omitempty"`
	Context     map[string][]string `json:"context,omitempty"`
}

func detailOf(e FieldError) errorDetail {
	name := e.Path
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return errorDetail{Message: e.Message, In: e.Path, Code: e.Code, SubCategory: subCategoryOf(e.Code), Context: map[string][]string{name: {e.Message}}}
}

func subCategoryOf(code string) string {
	switch code {
	case "VALUE_TOO_LONG", "TOO_MANY_PROPERTIES", "BATCH_TOO_LARGE":
		return "LIMIT_EXCEEDED"
	case "REQUIRED", "MISSING_IDENTIFIER":
		return "MISSING_REQUIRED_FIELD"
	case "UNKNOWN_EVENT", "UNKNOWN_PROPERTY":
		return "UNKNOWN_FIELD"
	}
	return "INVALID_INPUT"
}

func writeEnvelope(ctx *fiber.Ctx, status int, e envelope) error {
	e.Status = "error"
	if e.CorrelationID == "" {
		e.CorrelationID = uuid.NewString()
	}
	ctx.Set("X-Correlation-Id", e.CorrelationID)
	return ctx.Status(status).JSON(e)
}

// definitionView is HubSpot's ExternalBehavioralEventTypeDefinition, as much
// of it as tally's config describes.
type definitionView struct {
	ID                 string            `json:"id"`
	Name               string            `json:"name"`
	FullyQualifiedName string            `json:"fullyQualifiedName"`
	Labels             map[string]string `json:"labels"`
	Description        string            `json:"description,omitempty"`
	PrimaryObject      string            `json:"primaryObject"`
	Archived           bool              `json:"archived"`
	Associations       []any             `json:"associations"`
	ObjectTypeID       string            `json:"objectTypeId"`
	Properties         []propertyView    `json:"properties"`
	TrackingType       string            `json:"trackingType"`
}

type propertyView struct {
	Name        string       `json:"name"`
	Label       string       `json:"label"`
	Type        string       `json:"type"`
	FieldType   string       `json:"fieldType"`
	Description string       `json:"description"`
	GroupName   string       `json:"groupName"`
	Options     []optionView `json:"options"`
	Archived    bool         `json:"archived"`
	Hidden      bool         `json:"hidden"`
}

type optionView struct {
	Label        string `json:"label"`
	Value        string `json:"value"`
	DisplayOrder int    `json:"displayOrder"`
	Hidden       bool   `json:"hidden"`
}

var objectTypeIDs = map[string]string{"contact": "0-1", "company": "0-2", "deal": "0-3", "ticket": "0-5"}

func viewOf(d *Definition) definitionView {
	obj := d.Object
	if obj == "" {
		obj = "contact"
	}
	typeID, ok := objectTypeIDs[obj]
	if !ok {
		typeID = "2-" + obj
	}
	tracking := "MANUAL"
	if len(d.Capture) > 0 {
		tracking = "CLICKED_ELEMENT"
		if d.Capture[0].Visited != "" {
			tracking = "VISITED_URL"
		}
	}
	label := d.Label
	if label == "" {
		label = d.Name
	}
	v := definitionView{
		ID: d.Name, Name: d.Name, FullyQualifiedName: d.Name,
		Labels: map[string]string{"singular": label}, Description: d.Description,
		PrimaryObject: strings.ToUpper(obj), Associations: []any{}, ObjectTypeID: typeID,
		Properties: []propertyView{}, TrackingType: tracking,
	}
	for _, p := range d.Properties {
		pl := p.Label
		if pl == "" {
			pl = p.Name
		}
		pv := propertyView{Name: p.Name, Label: pl, Type: string(p.Type), FieldType: fieldType(p.Type),
			Description: p.Description, GroupName: "event_properties", Options: []optionView{}}
		for i, o := range p.Options {
			pv.Options = append(pv.Options, optionView{Label: o, Value: o, DisplayOrder: i})
		}
		v.Properties = append(v.Properties, pv)
	}
	sort.Slice(v.Properties, func(i, j int) bool { return v.Properties[i].Name < v.Properties[j].Name })
	return v
}

func fieldType(t PropertyType) string {
	switch t {
	case TypeNumber:
		return "number"
	case TypeDatetime, TypeDate:
		return "date"
	case TypeEnumeration:
		return "select"
	case TypeBool:
		return "booleancheckbox"
	}
	return "text"
}

func (c *Collector) listDefinitions(ctx *fiber.Ctx) error {
	defs := c.catalog.Definitions()
	search := ctx.Query("searchString")
	results := make([]definitionView, 0, len(defs))
	for _, d := range defs {
		if search == "" || strings.Contains(d.Name, search) {
			results = append(results, viewOf(d))
		}
	}
	return ctx.JSON(fiber.Map{"results": results, "total": len(results)})
}

func (c *Collector) getDefinition(ctx *fiber.Ctx) error {
	name := strings.Clone(ctx.Params("name"))
	d, ok := c.catalog.Lookup(name)
	if !ok || d.Name == PageViewEvent {
		return writeEnvelope(ctx, fiber.StatusNotFound, envelope{Category: "OBJECT_NOT_FOUND", Message: fmt.Sprintf("event definition %q does not exist", name)})
	}
	return ctx.JSON(viewOf(d))
}
