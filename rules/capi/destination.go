package capi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tally-analytics/tally/rules/deliver"
)

// Type is the destination type name in tally.yaml.
const Type = "meta_capi"

// Item is ev as the delivery engine keeps it: its id, Meta's event name,
// its time and the event as the request's data array holds it.
func Item(ev Event) deliver.Item {
	b, _ := json.Marshal(ev) // plain strings and numbers: cannot fail
	return deliver.Item{ID: ev.EventID, Name: ev.EventName, Time: time.Unix(ev.EventTime, 0).UTC(), Payload: b}
}

// Payload encodes ev as it goes into a request's data array.
func Payload(ev Event) string { return string(Item(ev).Payload) }

// Destination is a Meta pixel for the delivery engine: batches of up to
// 1,000 events, each tried until it is an hour short of Meta's limit for
// its action_source (7 days, 62 for physical_store; the hour absorbs clock
// skew and time in flight).
func Destination(name string, c *Client) deliver.Destination {
	return deliver.Destination{Name: name, Type: Type, Sender: sender{c}, MaxBatch: MaxBatch, Horizon: horizon}
}

func horizon(it deliver.Item) time.Duration {
	var ev struct {
		ActionSource ActionSource `json:"action_source"`
	}
	_ = json.Unmarshal(it.Payload, &ev)
	return MaxAgeFor(ev.ActionSource) - time.Hour
}

// sender sends the engine's items to Meta and classifies the answer.
type sender struct{ c *Client }

// maxPostpone is how far in the future an event_time may be and still be
// sent once its time comes; further ahead, the clock that made it is wrong
// and the event fails validation.
const maxPostpone = time.Hour

// Check holds back an event whose event_time is a little ahead (ingest
// accepts client clocks a few minutes fast; Meta refuses event_time in the
// future) until Meta takes it, rather than changing event_time, and drops
// one Meta would refuse, because Meta rejects a whole request for one bad
// event.
func (s sender) Check(it deliver.Item, now time.Time) (time.Time, *deliver.Result) {
	var ev Event
	if err := json.Unmarshal(it.Payload, &ev); err != nil {
		return time.Time{}, &deliver.Result{Class: deliver.Drop, Message: "undecodable event: " + err.Error()}
	}
	if ahead := time.Unix(ev.EventTime, 0).Sub(now); ahead > MaxEventSkew && ahead <= maxPostpone {
		return time.Unix(ev.EventTime, 0).Add(-MaxEventSkew / 2), nil
	}
	if err := Validate(&ev, now); err != nil {
		r := &deliver.Result{Class: deliver.Drop, Message: err.Error()}
		if errors.Is(err, ErrTooOld) {
			r.Status = deliver.StatusExpired
		}
		return time.Time{}, r
	}
	return time.Time{}, nil
}

// Send posts the events in one request. Meta accepts or refuses a request
// as a whole, so every item gets the same Result.
func (s sender) Send(ctx context.Context, items []deliver.Item) []deliver.Result {
	events := make([]Event, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it.Payload, &events[i]); err != nil {
			return deliver.Same(len(items), deliver.Result{Class: deliver.Split, Message: "undecodable event: " + err.Error()})
		}
	}
	resp, err := s.c.Send(ctx, events)
	if err == nil {
		msg := ""
		if resp.EventsReceived != len(items) {
			msg = fmt.Sprintf("Meta reported %d of %d events received", resp.EventsReceived, len(items))
		}
		if len(resp.Messages) > 0 {
			msg = strings.TrimSpace(msg + " " + strings.Join(resp.Messages, "; "))
		}
		answer, _ := json.Marshal(resp)
		return deliver.Same(len(items), deliver.Result{Class: deliver.Sent, HTTPStatus: resp.HTTPStatus, TraceID: resp.FbtraceID, Message: msg, Response: string(answer)})
	}
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Message: err.Error(), Err: err, network: true}
	}
	return deliver.Same(len(items), deliver.Result{Class: e.Class(), HTTPStatus: e.HTTPStatus, TraceID: e.FbtraceID, Message: e.Error(),
		Response: errorAnswer(e), RetryAfter: e.RetryAfter})
}

// Class says what the engine does with the events of a refused request:
// an invalid or expired token (190) or an HTTP 401/403 pauses the
// destination, keeping its events, since no event is at fault and a fixed
// token delivers them all; a transient error retries; an invalid
// parameter may be one event's fault and splits the batch; anything else
// fails the events.
func (e *Error) Class() deliver.Class {
	switch {
	case e.Code == CodeAccessToken || e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden && e.Code == 0:
		return deliver.Pause
	case e.Retryable():
		return deliver.Retry
	case e.EventSpecific():
		return deliver.Split
	}
	return deliver.Drop
}

// errorAnswer is Meta's error answer in Graph's envelope, or "" when no
// answer arrived.
func errorAnswer(e *Error) string {
	if e.HTTPStatus == 0 {
		return ""
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": e.Message, "type": e.Type, "code": e.Code, "error_subcode": e.Subcode,
		"is_transient": e.IsTransient, "error_user_title": e.UserTitle, "error_user_msg": e.UserMessage, "fbtrace_id": e.FbtraceID,
	}})
	return string(b)
}
