package ingest

// Parsing a snippet batch: pure functions over the request body and a small
// struct of request facts, so nothing here touches fiber's buffers.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// BrowserContext is what the request says beside its body.
type BrowserContext struct {
	Now       time.Time
	UserAgent string
	Language  string // from Accept-Language; the snippet's own value wins
	IP        string
	GPC       bool // Sec-GPC: 1, an opt-out of ads use
}

// BrowserBatch is a parsed snippet batch.
type BrowserBatch struct {
	Site        string
	Completions []Completion
	Rejections  []Rejection
	// Analytics is the visitor's analytics consent as of the batch's last
	// completion; it decides whether the visitor cookie is set or cleared.
	Analytics bool
	// Identity is what a batch-level traits object (the tracker's identify
	// call) says of the visitor; nil when there is none.
	Identity *Identity
	// Withdrawn: the batch says the visitor withdrew analytics consent, so
	// the visitor cookies are cleared even when it holds no completion.
	Withdrawn bool
}

// The snippet's wire format:
//
//	{"site":"shop","sent":1700000000123,"lang":"en-GB","events":[
//	  {"id":"<uuid>","name":"viewed_car","ts":1700000000000,
//	   "props":{"make":"volvo","year":2020},
//	   "url":"https://…","ref":"https://…","title":"…",
//	   "consent":{"analytics":true,"ads":false},
//	   "traits":{"email":"a@b.com"},"fbp":"fb.1.…","fbc":"fb.1.…"}]}
//
// A batch is read with jsontext's streaming decoder, which validates as it
// reads: the batch object, its events array, each event object and its
// props and traits member by member, in one pass over the body, with no
// reflection and no map per event. Member names match exactly
// (case-sensitively, as encoding/json/v2 does): the snippet sends exact
// lower-case keys, so "Name" is an unknown member, not the event's name.
//
// What encoding/json did before is kept where a client can see it: a body
// that is not valid JSON, or whose batch members have the wrong type, is
// not a batch; an event that is not an object or has a member of the wrong
// type is a malformed item (INVALID_JSON) while the rest of the batch is
// kept; null leaves a string member unset; when a member is repeated its
// last value wins.

// wireBatch is a snippet batch as read, before any event is checked. The
// events are checked only once the whole body is read because "sent" and
// "lang", which every event needs, may come after "events".
type wireBatch struct {
	site, lang, sent string
	withdrawn        bool // a batch-level consent withdrew analytics
	traits           []wireMember
	events           []wireEvent
	overflow         [][]byte // events past maxBrowserEvents, as sent
}

// wireEvent is one snippet event as read. raw is its JSON text, a subslice
// of the body, kept for a rejection's payload.
type wireEvent struct {
	raw                       []byte
	malformed                 bool // not an object, or a member of the wrong type
	tooDeep                   bool // nested past maxBodyDepth (see spliceDeep)
	id, name, ts              string
	url, ref, title, fbp, fbc string
	props, traits, mirror     []wireMember
	consent                   bool // a consent object was sent
	analytics, ads, debug     optBool
}

// wireMember is one props or traits member: its value as text, or ok false
// when the value is of a kind the member cannot have.
type wireMember struct {
	name, value string
	ok          bool
}

// optBool is a JSON bool that may be absent or null.
type optBool struct{ set, v bool }

// ParseBrowserBatch turns a snippet batch into completions, in Lenient mode:
// long values are cut and unknown, extra or malformed properties dropped,
// each cut recorded in the completion's Truncated (and each drop also as a
// rejection); an unknown event or a malformed item becomes a rejection while
// the rest of the batch is kept. It returns an error only when the body is
// not a batch at all. It owns all memory it returns (body may be reused).
//
// Occurred time: the snippet stamps each completion with the browser's
// clock and the batch with the browser's send time; the difference between
// send time and receive time is the clock skew (plus transit), and is added
// back, so a browser whose clock is hours off still records when things
// happened by the server's clock. The result is clamped to at most
// MaxFutureSkew ahead of receive time.
func ParseBrowserBatch(cat *Catalog, body []byte, bc BrowserContext) (BrowserBatch, error) {
	b, err := readBrowserBody(body)
	if err != nil {
		return BrowserBatch{}, fmt.Errorf("parse snippet batch: %w", err)
	}
	now := bc.Now.UTC()
	out := BrowserBatch{Site: b.site, Analytics: !b.withdrawn, Withdrawn: b.withdrawn}
	if len(b.traits) > 0 && !b.withdrawn {
		var c Completion
		applyTraits(&c, lastOfEach(b.traits))
		if c.Identity != (Identity{}) {
			out.Identity = &c.Identity
		}
	}
	var skew time.Duration
	if b.sent != "" {
		if t, err := ParseTime(b.sent); err == nil {
			skew = now.Sub(t)
		}
	}
	lang := bc.Language
	if l := strings.TrimSpace(b.lang); l != "" && len(l) <= 35 {
		lang = l
	}
	for i, raw := range b.overflow {
		out.Rejections = append(out.Rejections, Rejection{At: now, Source: SourceBrowser, Reason: "BATCH_TOO_LARGE",
			Field: "events[" + strconv.Itoa(maxBrowserEvents+i) + "]", Payload: boundPayload(raw)})
	}
	out.Completions = make([]Completion, 0, len(b.events))
	seen := make(map[[2]string]bool, len(b.events))
	for i := range b.events {
		path := "events[" + strconv.Itoa(i) + "]"
		comp, rejs, ok := parseBrowserEvent(cat, &b.events[i], path, now, skew, bc, lang)
		out.Rejections = append(out.Rejections, rejs...)
		if !ok {
			continue
		}
		out.Analytics = comp.Consent.Analytics
		key := [2]string{comp.EventName, comp.EventID}
		if seen[key] {
			continue // the same completion twice in one batch: first wins
		}
		seen[key] = true
		out.Completions = append(out.Completions, comp)
	}
	if len(out.Completions) == 0 {
		out.Completions = nil // as before the slice was sized up front
	}
	return out, nil
}

// readBrowserBody reads a whole snippet batch. The decoder reads straight
// from body (a bytes.Buffer is not copied into the decoder's own buffer)
// and every string it returns is a copy. It accepts what encoding/json
// accepted and jsontext by default refuses, since a refused body loses every
// completion in it: repeated member names (the last wins) and invalid UTF-8
// inside strings (each bad byte reads as U+FFFD).
func readBrowserBody(body []byte) (wireBatch, error) {
	body, deep := spliceDeep(body)
	b, err := decodeBrowserBody(body)
	// Give each event set aside for its depth its own text back, for its
	// rejection's payload.
	k := 0
	for i := range b.events {
		if b.events[i].tooDeep && k < len(deep) {
			b.events[i].raw = deep[k]
			k++
		}
	}
	return b, err
}

// maxBodyDepth bounds how deeply a batch nests: batch, events, an event,
// its props, a list value need 5; 64 leaves room for what a page may send.
// jsontext refuses a body nested past its own limit (10,000) as a whole,
// which would lose every completion in it, so an event nested deeper than
// maxBodyDepth is set aside before decoding and rejected alone.
const maxBodyDepth = 64

// deepPlaceholder stands in for an event set aside by spliceDeep: a JSON
// string no snippet sends ("\u0000" cannot be in an event name).
const deepPlaceholder = "\x00tally:nested-too-deep"

// spliceDeep returns body with every item of a second-level array (an event
// of events) that nests past maxBodyDepth replaced by deepPlaceholder, and
// the replaced items' text in order. A body with none is returned as is,
// after one pass over its bytes.
func spliceDeep(body []byte) ([]byte, [][]byte) {
	type span struct{ start, end int }
	var deep []span
	depth, maxDepth, itemStart := 0, 0, -1
	tooDeep, inString, escaped := false, false, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			maxDepth = max(maxDepth, depth)
			if depth == 3 {
				itemStart, tooDeep = i, false
			}
			if depth > maxBodyDepth {
				tooDeep = true
			}
		case '}', ']':
			if depth == 3 && itemStart >= 0 && tooDeep {
				deep = append(deep, span{itemStart, i + 1})
			}
			if depth == 3 {
				itemStart = -1
			}
			depth--
		}
	}
	if maxDepth <= maxBodyDepth || len(deep) == 0 {
		return body, nil
	}
	placeholder := []byte(`"\u0000tally:nested-too-deep"`)
	out := make([]byte, 0, len(body))
	raws := make([][]byte, 0, len(deep))
	prev := 0
	for _, d := range deep {
		out = append(out, body[prev:d.start]...)
		out = append(out, placeholder...)
		raws = append(raws, body[d.start:d.end])
		prev = d.end
	}
	return append(out, body[prev:]...), raws
}

func decodeBrowserBody(body []byte) (wireBatch, error) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var b wireBatch
	switch dec.PeekKind() {
	case 'n': // encoding/json took null for an empty batch
		if _, err := dec.ReadToken(); err != nil {
			return b, err
		}
	case '{':
		if err := readBatchObject(dec, body, &b); err != nil {
			return b, err
		}
	default:
		if err := dec.SkipValue(); err != nil {
			return b, err
		}
		return b, errors.New("not a JSON object")
	}
	// A decoder reads a stream of values; a batch is exactly one.
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = errors.New("more data after the batch object")
		}
		return b, err
	}
	return b, nil
}

func readBatchObject(dec *jsontext.Decoder, body []byte, b *wireBatch) error {
	return readMembers(dec, func(name string) (err error) {
		switch name {
		case "site":
			err = readBatchString(dec, "site", &b.site)
		case "lang":
			err = readBatchString(dec, "lang", &b.lang)
		case "sent":
			b.sent, _, err = readScalar(dec)
		case "events":
			err = readEvents(dec, body, b)
		case "traits":
			// A batch-level traits object is the tracker's identify call:
			// it links the visitor to them, with or without events.
			var w wireEvent
			err = w.readValues(dec, &w.traits, false)
			b.traits = w.traits
		case "consent":
			// A batch-level consent says the visitor withdrew analytics
			// consent (the tracker sends it with no events).
			var w wireEvent
			if err = w.readConsent(dec); err == nil && w.analytics.set && !w.analytics.v {
				b.withdrawn = true
			}
		default:
			err = dec.SkipValue()
		}
		return err
	})
}

// readMembers reads the object that comes next (its '{' not yet read),
// calling member with each member's name while the decoder stands at the
// member's value, which member must consume.
func readMembers(dec *jsontext.Decoder, member func(name string) error) error {
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if err := member(name.String()); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// readBatchString reads a string member of the batch: null leaves it as it
// was; any other kind means the body is not a batch.
func readBatchString(dec *jsontext.Decoder, name string, dst *string) error {
	ok, err := readOptString(dec, dst)
	if err == nil && !ok {
		err = fmt.Errorf("%s is not a string", name)
	}
	return err
}

// readOptString reads a string into dst; null leaves dst as it was. Any
// other kind is skipped and reported by ok false.
func readOptString(dec *jsontext.Decoder, dst *string) (ok bool, err error) {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		return true, err
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return true, err
		}
		*dst = tok.String()
		return true, nil
	}
	return false, dec.SkipValue()
}

// readEvents reads the events array. Events past maxBrowserEvents are kept
// as sent, to be rejected. A repeated "events" member replaces the earlier
// one.
func readEvents(dec *jsontext.Decoder, body []byte, b *wireBatch) error {
	b.events, b.overflow = b.events[:0], b.overflow[:0]
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		return err
	case '[':
	default:
		if err := dec.SkipValue(); err != nil {
			return err
		}
		return errors.New("events is not an array")
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != ']' {
		// The event's text runs from the end of what was read before it
		// (the '[' or the previous event) to the end of the event, less the
		// separating comma and whitespace, which no JSON value starts with.
		start := dec.InputOffset()
		var e *wireEvent
		var err error
		if len(b.events) < maxBrowserEvents {
			b.events = append(b.events, wireEvent{})
			e = &b.events[len(b.events)-1]
			err = readEvent(dec, e)
		} else {
			err = dec.SkipValue()
		}
		if err != nil {
			return err
		}
		raw := bytes.TrimLeft(body[start:dec.InputOffset()], " \t\r\n,")
		if e != nil {
			e.raw = raw
		} else {
			b.overflow = append(b.overflow, raw)
		}
	}
	_, err := dec.ReadToken()
	return err
}

// readEvent reads one event. A null event is an event with no members (its
// missing name rejects it); any other non-object is malformed.
func readEvent(dec *jsontext.Decoder, e *wireEvent) error {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		return err
	case '{':
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if tok.String() == deepPlaceholder {
			e.tooDeep = true
		} else {
			e.malformed = true
		}
		return nil
	default:
		e.malformed = true
		return dec.SkipValue()
	}
	return readMembers(dec, func(name string) (err error) {
		switch name {
		case "id":
			err = e.readString(dec, &e.id)
		case "name":
			err = e.readString(dec, &e.name)
		case "ts":
			e.ts, _, err = readScalar(dec)
		case "props":
			err = e.readValues(dec, &e.props, true)
		case "url":
			err = e.readString(dec, &e.url)
		case "ref":
			err = e.readString(dec, &e.ref)
		case "title":
			err = e.readString(dec, &e.title)
		case "consent":
			err = e.readConsent(dec)
		case "traits":
			err = e.readValues(dec, &e.traits, false)
		case "fbp":
			err = e.readString(dec, &e.fbp)
		case "fbc":
			err = e.readString(dec, &e.fbc)
		case "mirror":
			err = e.readValues(dec, &e.mirror, false)
		case "debug":
			err = e.readBool(dec, &e.debug)
		default:
			err = dec.SkipValue()
		}
		return err
	})
}

// readString reads a string member of an event: null leaves it as it was;
// any other kind makes the event malformed.
func (e *wireEvent) readString(dec *jsontext.Decoder, dst *string) error {
	ok, err := readOptString(dec, dst)
	if !ok {
		e.malformed = true
	}
	return err
}

// readConsent reads the consent object; null forgets any sent before it.
func (e *wireEvent) readConsent(dec *jsontext.Decoder) error {
	switch dec.PeekKind() {
	case 'n':
		e.consent, e.analytics, e.ads = false, optBool{}, optBool{}
		_, err := dec.ReadToken()
		return err
	case '{':
	default:
		e.malformed = true
		return dec.SkipValue()
	}
	e.consent = true
	return readMembers(dec, func(name string) error {
		switch name {
		case "analytics":
			return e.readBool(dec, &e.analytics)
		case "ads":
			return e.readBool(dec, &e.ads)
		}
		return dec.SkipValue()
	})
}

// readBool reads a consent flag: null unsets it; any kind other than a bool
// makes the event malformed.
func (e *wireEvent) readBool(dec *jsontext.Decoder, dst *optBool) error {
	switch dec.PeekKind() {
	case 'n':
		*dst = optBool{}
		_, err := dec.ReadToken()
		return err
	case 't', 'f':
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		*dst = optBool{set: true, v: tok.Bool()}
		return nil
	}
	e.malformed = true
	return dec.SkipValue()
}

// readValues reads the props (lists true) or traits object, appending to
// what an earlier member of the same name sent; null forgets that.
func (e *wireEvent) readValues(dec *jsontext.Decoder, dst *[]wireMember, lists bool) error {
	switch dec.PeekKind() {
	case 'n':
		*dst = nil
		_, err := dec.ReadToken()
		return err
	case '{':
	default:
		e.malformed = true
		return dec.SkipValue()
	}
	return readMembers(dec, func(name string) (err error) {
		m := wireMember{name: name}
		if lists {
			m.value, m.ok, err = readPropValue(dec)
		} else {
			m.value, m.ok, err = readScalar(dec)
		}
		if err == nil {
			*dst = append(*dst, m)
		}
		return err
	})
}

// readScalar reads a property, trait or time value: a string as its text, a
// number or bool as its literal text, null as "". ok is false, and the
// value is skipped, for an object, an array or a number beyond float64.
func readScalar(dec *jsontext.Decoder) (string, bool, error) {
	switch k := dec.PeekKind(); k {
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return "", false, err
		}
		return tok.String(), true, nil
	case 'n':
		_, err := dec.ReadToken()
		return "", err == nil, err
	case 't', 'f', '0':
		v, err := dec.ReadValue()
		if err != nil {
			return "", false, err
		}
		s := string(v)
		if k == '0' {
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				return "", false, nil
			}
		}
		return s, true, nil
	}
	return "", false, dec.SkipValue()
}

// readPropValue reads a snippet property value: a scalar, or a list of
// scalars joined by ';' (an enumeration's multi-value form).
func readPropValue(dec *jsontext.Decoder) (string, bool, error) {
	if dec.PeekKind() != '[' {
		return readScalar(dec)
	}
	if _, err := dec.ReadToken(); err != nil {
		return "", false, err
	}
	var parts []string
	ok := true
	for dec.PeekKind() != ']' {
		s, good, err := readScalar(dec)
		if err != nil {
			return "", false, err
		}
		ok = ok && good
		parts = append(parts, s)
	}
	if _, err := dec.ReadToken(); err != nil {
		return "", false, err
	}
	if !ok {
		return "", false, nil
	}
	return strings.Join(parts, ";"), true, nil
}

// lastOfEach keeps the last member of each name, as decoding into a map
// did. The order that results is by name; every consumer sorts anyway.
func lastOfEach(ms []wireMember) []wireMember {
	if len(ms) < 2 {
		return ms
	}
	slices.SortStableFunc(ms, func(a, b wireMember) int { return strings.Compare(a.name, b.name) })
	out := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].name == m.name {
			continue
		}
		out = append(out, m)
	}
	return out
}

func parseBrowserEvent(cat *Catalog, e *wireEvent, path string, now time.Time, skew time.Duration, bc BrowserContext, lang string) (Completion, []Rejection, bool) {
	rej := func(name, code, field string) Rejection {
		return Rejection{At: now, Source: SourceBrowser, EventName: name, Reason: code, Field: field, Payload: boundPayload(e.raw)}
	}
	if e.malformed {
		return Completion{}, []Rejection{rej("", "INVALID_JSON", path)}, false
	}
	if e.tooDeep {
		return Completion{}, []Rejection{rej("", "NESTED_TOO_DEEP", path)}, false
	}
	def, ok := cat.Lookup(e.name)
	if !ok {
		code := "UNKNOWN_EVENT"
		if e.name == "" {
			code = "REQUIRED"
		}
		return Completion{}, []Rejection{rej(clip(e.name, MaxEventNameLen+16), code, path+".name")}, false
	}
	c := Completion{
		EventName:  def.Name,
		Source:     SourceBrowser,
		ReceivedAt: now,
		Consent:    Consent{Analytics: true, Ads: !bc.GPC},
		Client:     Client{IP: bc.IP, UserAgent: clip(bc.UserAgent, MaxLongValueLen), Language: lang},
	}
	if e.consent {
		if e.analytics.set {
			c.Consent.Analytics = e.analytics.v
		}
		if e.ads.set {
			c.Consent.Ads = e.ads.v && !bc.GPC
		}
	}
	// The snippet always sends an id; a hand-made request may not.
	id, code, _ := eventID(e.id)
	if code != "" {
		return Completion{}, []Rejection{rej(def.Name, code, path+".id")}, false
	}
	c.EventID = id

	c.OccurredAt = now.Truncate(time.Millisecond)
	if e.ts != "" {
		t, err := ParseTime(e.ts)
		if err == nil {
			t = t.Add(skew).Truncate(time.Millisecond)
			if limit := now.Add(MaxFutureSkew); t.After(limit) {
				t = now.Truncate(time.Millisecond)
			}
		}
		switch {
		case err != nil:
			c.Truncated = append(c.Truncated, "occurred_at: not a time, replaced by the time received")
		case t.Before(MinOccurredAt):
			c.Truncated = append(c.Truncated, "occurred_at: before 1970, replaced by the time received")
		default:
			c.OccurredAt = t
		}
	}

	c.Page.URL = cutField(&c, "url", e.url, MaxLongValueLen)
	c.Page.Referrer = cutField(&c, "referrer", e.ref, MaxLongValueLen)
	c.Page.Title = cutField(&c, "page_title", e.title, MaxValueLen)

	var rejs []Rejection
	members := lastOfEach(e.props)
	props := make([]Prop, 0, len(members))
	for _, m := range members {
		if !m.ok {
			c.Truncated = append(c.Truncated, echo(m.name, MaxPropertyNameLen)+": dropped, not a string, number, bool or list")
			rejs = append(rejs, rej(def.Name, "INVALID_VALUE", path+".props."+m.name))
			continue
		}
		props = append(props, Prop{Name: m.name, Value: m.value})
	}
	for _, fe := range ApplyProperties(&c, def, props, Lenient, path+".props") {
		rejs = append(rejs, rej(def.Name, fe.Code, fe.Path))
	}
	applyTraits(&c, lastOfEach(e.traits))
	if c.Consent.Ads {
		c.Identity.Fbp = metaCookie(e.fbp)
		c.Identity.Fbc = metaCookie(e.fbc)
		if c.Identity.Fbc == "" {
			c.Identity.Fbc = fbcFromURL(c.Page.URL, c.OccurredAt)
		}
	}
	c.Debug = e.debug.v
	c.Mirror = mirrorReport(e.mirror)
	capTruncated(&c)
	return c, oneRejection(rejs), true
}

// Bounds of the snippet's pixel mirror report: a site has a few mirror
// rules, each named in at most maxRuleName characters.
const (
	maxMirrorEntries = 20
	maxRuleName      = 100
)

// mirrorOutcomes are what the snippet reports of a mirror call (see
// Completion.Mirror); anything else is dropped.
var mirrorOutcomes = []string{"sent", "queued", "no_pixel", "duplicate", "no_consent", "gpc"}

// mirrorReport keeps the well-formed entries of the snippet's mirror report
// as "rule=outcome", sorted by rule.
func mirrorReport(ms []wireMember) []string {
	var out []string
	for _, m := range lastOfEach(ms) {
		if len(out) == maxMirrorEntries {
			break
		}
		if !m.ok || m.name == "" || utf8.RuneCountInString(m.name) > maxRuleName || hasControl(m.name) || !slices.Contains(mirrorOutcomes, m.value) {
			continue
		}
		out = append(out, m.name+"="+m.value)
	}
	return out
}

// maxTruncated bounds the cut-and-dropped notes kept with one completion;
// the last note says how many more there were.
const maxTruncated = 20

func capTruncated(c *Completion) {
	if n := len(c.Truncated); n > maxTruncated {
		c.Truncated = append(c.Truncated[:maxTruncated-1:maxTruncated-1], fmt.Sprintf("… and %d more cut or dropped", n-maxTruncated+1))
	}
}

// oneRejection folds the rejections of one item into one row: the first
// problem's reason and field, with the count of the others. A request with
// thousands of bad properties writes one row per item, not per property,
// so it cannot push other rejections out of the bounded queue.
func oneRejection(rs []Rejection) []Rejection {
	if len(rs) <= 1 {
		return rs
	}
	r := rs[0]
	r.Field = fmt.Sprintf("%s (and %d more)", r.Field, len(rs)-1)
	return []Rejection{r}
}

// cutField cuts a standard field to n characters, recording the cut.
func cutField(c *Completion, name, v string, n int) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if l := utf8.RuneCountInString(v); l > n {
		c.Truncated = append(c.Truncated, fmt.Sprintf("%s: cut from %d to %d characters", name, l, n))
		return truncateRunes(v, n)
	}
	return v
}

func clip(s string, n int) string {
	return truncateRunes(strings.ToValidUTF8(s, "\uFFFD"), n)
}

// applyTraits copies identify traits onto the completion's identity. A
// trait that is too long, holds a control character or is not an address
// (email) is dropped and recorded.
func applyTraits(c *Completion, traits []wireMember) {
	for _, m := range traits {
		k := m.name
		p := traitField(&c.Identity, k)
		if p == nil {
			c.Truncated = append(c.Truncated, "traits."+clip(k, MaxPropertyNameLen)+": dropped, not a known trait")
			continue
		}
		v := strings.TrimSpace(m.value)
		switch {
		case !m.ok:
			c.Truncated = append(c.Truncated, "traits."+k+": dropped, not a string or number") // k is a known trait
			continue
		case utf8.RuneCountInString(v) > maxTraitLen:
			c.Truncated = append(c.Truncated, fmt.Sprintf("traits.%s: dropped, longer than %d characters", k, maxTraitLen))
			continue
		case hasControl(v):
			_, msg := checkIdentifier(v, maxTraitLen)
			c.Truncated = append(c.Truncated, "traits."+k+": dropped, "+msg)
			continue
		case k == "email" && v != "":
			if v = NormalizeEmail(v); !isEmailAddress(v) {
				c.Truncated = append(c.Truncated, "traits.email: dropped, not an email address")
				continue
			}
		}
		*p = v
	}
}

// traitField is where a trait goes in the identity; nil for an unknown one.
func traitField(id *Identity, name string) *string {
	switch name {
	case "email":
		return &id.Email
	case "phone":
		return &id.Phone
	case "external_id":
		return &id.ExternalID
	case "first_name":
		return &id.FirstName
	case "last_name":
		return &id.LastName
	case "city":
		return &id.City
	case "state":
		return &id.State
	case "zip":
		return &id.Zip
	case "country":
		return &id.Country
	}
	return nil
}

// metaCookie accepts an _fbp/_fbc value in Meta's fb.<index>.<ms>.<value>
// form and drops anything else (it is forwarded as-is).
func metaCookie(v string) string {
	if len(v) > 256 || !strings.HasPrefix(v, "fb.") || strings.Count(v, ".") < 3 {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f || v[i] == '"' || v[i] == '<' || v[i] == '>' {
			return ""
		}
	}
	return v
}

// fbcFromURL builds _fbc as fb.1.<ms>.<fbclid> when the page URL carries an
// fbclid and the snippet sent no _fbc. The fbclid keeps its case: Meta
// compares it case-sensitively.
func fbcFromURL(pageURL string, at time.Time) string {
	u, err := url.Parse(pageURL)
	if err != nil {
		return ""
	}
	id := u.Query().Get("fbclid")
	if id == "" || len(id) > 200 {
		return ""
	}
	return metaCookie("fb.1." + strconv.FormatInt(at.UnixMilli(), 10) + "." + id)
}
