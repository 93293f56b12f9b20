package ingest

import (
	"context"
	"errors"
	"time"
)

// Source says which path a completion arrived by.
type Source string

const (
	SourceBrowser Source = "browser"
	SourceAPI     Source = "api"
	SourceImport  Source = "import"
)

// Completion is one accepted event completion: validated against its
// definition, then enriched, stored and offered to the rules engine.
// Everything in it is owned memory (nothing aliases a request buffer).
type Completion struct {
	EventID    string // browser-minted UUID, the API's uuid, or a derived id
	EventName  string // internal name, never the pe<digits>_ form
	Site       string
	Source     Source
	OccurredAt time.Time // UTC, millisecond precision
	ReceivedAt time.Time // UTC

	VisitorID string // first-party cookie id (browser) or utk (API)
	SessionID string
	ObjectID  string
	Identity  Identity
	Consent   Consent

	// Props are the completion's custom properties, sorted by name, with
	// values normalised by type (see Definition.Normalize).
	Props []Prop
	// Truncated records every value cut and property dropped on the snippet
	// path, as "name: reason" (empty on the API path, which rejects instead).
	Truncated []string

	// Debug marks a completion from a browser in debug mode
	// (?tally_debug=1): the console highlights it.
	Debug bool
	// Mirror is the snippet's report of its pixel mirror for this
	// completion, as "rule=outcome": sent (to a loaded pixel), queued (in
	// Meta's stub before its library loaded; lost if the page closed
	// first), no_pixel, duplicate (inside the rule's dedupe window); and
	// "*=no_consent" or "*=gpc" when ads consent kept every rule from
	// mirroring. Empty on the API path and for sites without mirror rules.
	Mirror []string

	Page   Page
	Client Client
	// Enrichment is filled by the enricher; values sent explicitly on the API
	// path as hs_* properties are kept.
	Enrichment Enrichment
}

// Prop is one property value as stored.
type Prop struct {
	Name  string
	Value string
}

// Prop returns the value of the named property and whether it is present.
func (c *Completion) Prop(name string) (string, bool) {
	for _, p := range c.Props {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// Identity is what is known of the person behind a completion. Email is
// stored; the rest is used only for forwarding to destinations whose rule
// shares it, and never logged.
type Identity struct {
	Email      string
	Phone      string
	ExternalID string
	FirstName  string
	LastName   string
	City       string
	State      string
	Zip        string
	Country    string
	Fbp        string // Meta browser id (_fbp cookie)
	Fbc        string // Meta click id (_fbc cookie or built from fbclid)
}

// Consent is what the visitor allowed. API and import completions carry
// both flags true: the caller answers for consent on those paths.
type Consent struct {
	Analytics bool
	Ads       bool
}

// Page is where a completion happened.
type Page struct {
	URL      string
	Referrer string
	Title    string
}

// Client is what the request said about the device that sent it.
type Client struct {
	IP        string // as seen, or anonymised before storage (see enrich)
	UserAgent string
	Language  string
}

// Enrichment holds what is derived server-side from Page and Client.
type Enrichment struct {
	Browser        string
	BrowserVersion string
	OS             string
	OSVersion      string
	DeviceType     string // Desktop, Smartphone, Tablet, Smart TV, Game Console, Wearable Computer, Unknown
	IsBot          bool

	Country string // ISO 3166-1 alpha-2
	Region  string
	City    string

	Path             string
	UTMSource        string
	UTMMedium        string
	UTMCampaign      string
	UTMTerm          string
	UTMContent       string
	ClickIDParam     string // gclid, fbclid, msclkid, … (the first found)
	ClickID          string
	TouchpointSource string
}

// Rejection is an input, or part of one, that was not stored as sent.
type Rejection struct {
	At        time.Time
	Site      string
	Source    Source
	EventName string
	Reason    string // machine code, e.g. UNKNOWN_PROPERTY, VALUE_TOO_LONG
	Field     string // path of the offending field, e.g. inputs[3].properties.year
	Payload   string // the offending input, cut to MaxRejectionPayload bytes
}

// MaxRejectionPayload bounds what of a bad input is kept in rejections.
const MaxRejectionPayload = 4096

// ErrFull is returned by a Sink that cannot take more right now; the
// collector answers 503 with Retry-After.
var ErrFull = errors.New("ingest queue full")

// Sink takes accepted completions. It is the one seam between the HTTP
// handlers and storage/forwarding: once Write returns nil the completions are
// the Sink's responsibility.
type Sink interface {
	Write(ctx context.Context, cs []Completion) error
}

// RejectionSink records rejected input. It must not block the request path.
type RejectionSink interface {
	Reject(rs []Rejection)
}

// Deduper answers whether an (event name, event id) pair is new, and marks it
// seen. First wins: a later completion with the same pair is acknowledged but
// neither stored nor forwarded. Forget undoes FirstSeen for completions the
// Sink then refused, so that the client's retry is not taken for a duplicate.
type Deduper interface {
	FirstSeen(eventName, eventID string) bool
	Forget(eventName, eventID string)
}

// EnrichFunc fills c.Enrichment. It leaves c.Client alone: the full IP is
// still needed by a pending forward, and is anonymised only on the way to
// storage.
type EnrichFunc func(c *Completion)
