package deliver

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tally-analytics/tally/store"
)

// Delivery is one outcome of forwarding one item, as the deliveries log
// holds it.
type Delivery = store.Delivery

// Delivery statuses the engine records. A Sender may name others for a
// Drop (skipped_no_contact…).
const (
	StatusSent     = "sent"
	StatusRetrying = "retrying" // a transient failure; another attempt is scheduled
	StatusFailed   = "failed"   // permanent: the destination refused it, or it is invalid
	StatusExpired  = "expired"  // past its destination's horizon before it could be sent
	StatusPaused   = "paused"   // the destination refused tally's credentials; the item waits
)

// Item is one event mapped for one destination: what the outbox keeps and
// the Sender sends.
type Item struct {
	// ID is the completion's event id; with Name it identifies the item
	// in its outbox (the same completion mapped twice under one name is
	// stored once), and it stays the same on every retry.
	ID string
	// Name is what the destination calls it: Meta's event name, "Task",
	// the completion's event name.
	Name string
	// Time is when the completion happened; the horizon counts from it.
	Time time.Time
	// Payload is the destination's own encoding of the item.
	Payload json.RawMessage
}

// Origin says which rule forwards an item, and the tally event (the
// completion's event name) it was mapped from.
type Origin struct {
	Rule   string
	Source string
}

// Queued is one item to store for delivery.
type Queued struct {
	Destination string
	Origin      Origin
	Item        Item
}

// Class is what a Sender says should happen to an item after a request.
type Class int

// Classes of Result.
const (
	Sent  Class = iota // the destination has it
	Retry              // a transient failure: try again later
	Drop               // never deliverable: record it (failed or Result.Status) and remove it
	Split              // the request was refused as a whole, perhaps for one item: bisect
	Pause              // the destination refused the credentials: keep everything, pause
)

// Result is a destination's answer about one item of a request.
type Result struct {
	Class Class
	// Status overrides the recorded status of a Drop (skipped_no_contact).
	Status     string
	HTTPStatus int // 0 when no answer arrived
	// TraceID is the destination's id for the request or the record.
	TraceID string
	Message string
	// Response is the destination's answer, as it sent it (bounded by the
	// deliveries log).
	Response   string
	RetryAfter time.Duration
}

// Sender sends one batch to a destination and classifies its answer: it
// returns one Result per item, in order. It is called from one goroutine
// per destination.
type Sender interface {
	Send(ctx context.Context, items []Item) []Result
}

// Checker is implemented by Senders that know, before a request, that an
// item cannot go yet or ever: Check returns a later time to wait until, or
// a Drop Result, or neither.
type Checker interface {
	Check(it Item, now time.Time) (notBefore time.Time, drop *Result)
}

// Destination is one configured destination the Forwarder delivers to.
type Destination struct {
	Name string
	Type string
	// Sender is swapped by SetDestinations (new credentials, settings).
	Sender Sender
	// MaxBatch is the most items per request (Meta 1,000, Salesforce 200).
	MaxBatch int
	// Horizon is how long after its Time an item is still tried; nil
	// means DefaultHorizon.
	Horizon func(Item) time.Duration
}

// DefaultHorizon is how long an item is tried when its destination sets no
// horizon: a week covers a long weekend's outage with room to spare.
const DefaultHorizon = 7 * 24 * time.Hour

// DeliveryLog receives every outcome. Record is called from the
// destination's worker goroutine and should not block for long.
type DeliveryLog interface {
	Record(ds []Delivery)
}

// Same is r for each of n items: the answer of a destination that accepts
// or refuses a request as a whole.
func Same(n int, r Result) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// RetryAfter reads an HTTP Retry-After header, as seconds or as a date; 0
// when absent or past.
func RetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
