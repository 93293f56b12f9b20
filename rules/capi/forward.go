package capi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/store/backoff"
	"github.com/tally-analytics/tally/store/spool"
)

// Status is the outcome of one forward attempt, as recorded in the
// deliveries table.
type Status string

// Delivery statuses.
const (
	StatusSent     Status = "sent"
	StatusRetrying Status = "retrying" // a transient failure; another attempt is scheduled
	StatusFailed   Status = "failed"   // permanent: Meta refused it, or it is invalid
	StatusExpired  Status = "expired"  // too old for Meta (7 days) before it could be sent
	// StatusSkippedConsent is recorded by the rules engine, never by the
	// Forwarder: the completion matched but consent was missing.
	StatusSkippedConsent Status = "skipped_consent"
)

// Delivery is one outcome of forwarding one event.
type Delivery struct {
	EventID     string
	Rule        string
	Destination string
	EventName   string    // the name sent to Meta, e.g. Lead
	SourceEvent string    // tally's event name of the completion forwarded
	QueuedAt    time.Time // when the forward was enqueued (zero if unknown)
	EventTime   time.Time
	Status      Status
	Attempts    int // attempts made so far, this one included
	HTTPStatus  int // 0 when no answer arrived
	FbtraceID   string
	Message     string
	At          time.Time
	// Payload is the event exactly as sent (or as it would have been):
	// one element of the request's data array, user data hashed.
	Payload string
	// Response is the destination's answer to the request that carried
	// the event: Meta's JSON body, bounded.
	Response string
}

// answerOf is Meta's answer to a request, as its JSON body.
func answerOf(r Response) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// errorAnswer is Meta's error answer in Graph's envelope, or the
// transport error when no answer arrived.
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

// Payload encodes ev as it goes into a request's data array.
func Payload(ev Event) string {
	b, err := json.Marshal(ev)
	if err != nil {
		return ""
	}
	return string(b)
}

// DeliveryLog receives every outcome. Record is called from the
// destination's worker goroutine and should not block for long.
type DeliveryLog interface {
	Record(ds []Delivery)
}

// Sender posts one batch to Meta; *Client is one.
type Sender interface {
	Send(ctx context.Context, events []Event) (Response, error)
}

// Destination is one pixel the Forwarder delivers to.
type Destination struct {
	Name   string
	Sender Sender
}

// ForwarderConfig tunes delivery.
type ForwarderConfig struct {
	// Dir holds one spool file per destination ("<name>.spool").
	Dir string
	// MaxBatch is the most events per request. Default and maximum 1,000,
	// Meta's limit.
	MaxBatch int
	// Linger is how long a partial batch waits for more events. Default 1s:
	// Meta asks for events within the hour, and a second turns a burst of
	// completions into one request instead of hundreds.
	Linger time.Duration
	// MinBackoff and MaxBackoff bound the exponential retry delay, before
	// jitter. Defaults 5s and 15m: 5s·2^7 ≈ 10m, so the cap is reached by
	// the eighth attempt and a day-long outage costs ~100 requests per
	// destination, not thousands.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long after its event_time an event is still tried.
	// Default 7 days minus 1 hour: Meta refuses events older than 7 days,
	// and the hour absorbs clock skew and time in flight.
	MaxAge time.Duration
	// SpoolMaxItems and SpoolMaxBytes bound each destination's spool
	// (defaults: see spool.Config).
	SpoolMaxItems int
	SpoolMaxBytes int64
}

func (c ForwarderConfig) withDefaults() ForwarderConfig {
	if c.MaxBatch <= 0 || c.MaxBatch > MaxBatch {
		c.MaxBatch = MaxBatch
	}
	if c.Linger == 0 {
		c.Linger = time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 5 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 15 * time.Minute
	}
	if c.MaxAge == 0 {
		c.MaxAge = MaxEventAge - time.Hour
	}
	return c
}

// maxPostpone is how far in the future an event_time may be and still be
// sent once its time comes; further ahead, the clock that made it is wrong
// and the event fails validation.
const maxPostpone = time.Hour

// ErrClosed is returned by Enqueue after Close began.
var ErrClosed = errors.New("forwarder closed")

// envelope is what the spool holds for one forward.
type envelope struct {
	Rule string `json:"rule"`
	// Source is tally's event name of the completion forwarded (absent in
	// spools written before it was recorded).
	Source string `json:"source,omitempty"`
	// Queued is when the forward was enqueued.
	Queued time.Time `json:"queued,omitzero"`
	Event  Event     `json:"event"`
}

// Origin says which rule forwards an event, and the tally event (the
// completion's event name) it was mapped from.
type Origin struct {
	Rule   string
	Source string
}

// Forwarder delivers events to Meta at least once: Enqueue puts them in a
// per-destination spool on disk, and one goroutine per destination sends
// them in batches, retrying transient failures with capped exponential
// backoff and jitter until the event would be too old for Meta.
type Forwarder struct {
	cfg      ForwarderConfig
	log      *slog.Logger
	dlog     DeliveryLog
	workers  map[string]*worker
	forwards *prometheus.CounterVec
	reg      prometheus.Registerer

	// wmu guards workers, which SetDestinations changes while forwarding.
	wmu sync.RWMutex

	mu      sync.Mutex
	closing bool
	// erased are the event ids of erased people (Erase) with when they
	// were erased: an attempt already in flight then records no outcome
	// for them. Kept an hour, far longer than one attempt.
	erased map[string]time.Time
	stop   chan struct{} // closed when Close begins: drain, then exit
	// sendCtx is cancelled when Close's deadline passes, aborting requests.
	sendCtx    context.Context
	cancelSend context.CancelFunc
}

// NewForwarder opens a spool per destination under cfg.Dir and starts the
// workers; Close stops them. reg may be nil.
func NewForwarder(cfg ForwarderConfig, dests []Destination, dlog DeliveryLog, log *slog.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("forwarder: spool dir is empty")
	}
	f := &Forwarder{
		cfg: cfg, log: log, dlog: dlog, workers: map[string]*worker{}, reg: reg,
		stop: make(chan struct{}),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_forwards_total", Help: "Forward outcomes by destination and status.",
		}, []string{"destination", "status"}),
	}
	f.sendCtx, f.cancelSend = context.WithCancel(context.Background())
	if reg != nil {
		if err := reg.Register(f.forwards); err != nil {
			return nil, fmt.Errorf("forwarder: register metrics: %w", err)
		}
	}
	for _, d := range dests {
		if d.Name == "" || strings.ContainsAny(d.Name, `/\`) || d.Name[0] == '.' {
			f.closeSpools()
			return nil, fmt.Errorf("forwarder: destination name %q cannot name a spool file", d.Name)
		}
		if _, dup := f.workers[d.Name]; dup {
			f.closeSpools()
			return nil, fmt.Errorf("forwarder: destination %q listed twice", d.Name)
		}
		w, err := f.openWorker(d)
		if err != nil {
			f.closeSpools()
			return nil, err
		}
		f.workers[d.Name] = w
	}
	for _, w := range f.workers {
		go w.run()
	}
	return f, nil
}

// openWorker opens d's spool and makes its worker (not yet running).
func (f *Forwarder) openWorker(d Destination) (*worker, error) {
	sp, err := spool.Open(spool.Config{
		Path:     filepath.Join(f.cfg.Dir, d.Name+".spool"),
		Name:     "forward_" + d.Name,
		MaxItems: f.cfg.SpoolMaxItems,
		MaxBytes: f.cfg.SpoolMaxBytes,
	}, f.log, f.reg)
	if err != nil {
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	w := &worker{f: f, name: d.Name, sp: sp, stop: make(chan struct{}), done: make(chan struct{}), healthy: true}
	w.sender.Store(&senderRef{d.Sender})
	return w, nil
}

func (f *Forwarder) closeSpools() {
	for _, w := range f.workers {
		_ = w.sp.Close(context.Background())
	}
	if f.reg != nil {
		f.reg.Unregister(f.forwards)
	}
}

// Enqueue stores ev for delivery to destination on behalf of o.Rule and
// returns once it is on disk. See EnqueueBatch.
func (f *Forwarder) Enqueue(ctx context.Context, destination string, o Origin, ev Event) error {
	return f.EnqueueBatch(ctx, []Queued{{Destination: destination, Origin: o, Event: ev}})
}

// Queued is one event to store for delivery.
type Queued struct {
	Destination string
	Origin      Origin
	Event       Event
}

// EnqueueBatch stores the events for delivery and returns once they are on
// disk: one spool transaction (one fsync) per destination, however many
// events. The same event (event_id and event_name) for the same
// destination is stored once. Errors: unknown destination, no event_id,
// spool.ErrFull (wrapped), ErrClosed; on an error some destinations' events
// may be stored, and a retry of the whole batch stores each of them once.
func (f *Forwarder) EnqueueBatch(ctx context.Context, qs []Queued) error {
	f.mu.Lock()
	closing := f.closing
	f.mu.Unlock()
	if closing {
		return ErrClosed
	}
	items := map[string][]spool.Item{}
	var order []string
	now := time.Now().UTC()
	f.wmu.RLock()
	defer f.wmu.RUnlock()
	for _, q := range qs {
		if _, ok := f.workers[q.Destination]; !ok {
			return fmt.Errorf("forward to %q: no such destination", q.Destination)
		}
		if q.Event.EventID == "" {
			return fmt.Errorf("forward %s to %q: event_id is empty", q.Event.EventName, q.Destination)
		}
		b, err := json.Marshal(envelope{Rule: q.Origin.Rule, Source: q.Origin.Source, Queued: now, Event: q.Event})
		if err != nil {
			return fmt.Errorf("forward %s to %q: %w", q.Event.EventName, q.Destination, err)
		}
		if _, seen := items[q.Destination]; !seen {
			order = append(order, q.Destination)
		}
		items[q.Destination] = append(items[q.Destination], spool.Item{Key: spoolKey(q.Event), Payload: b})
	}
	for _, d := range order {
		if _, err := f.workers[d].sp.Enqueue(ctx, items[d]); err != nil {
			if errors.Is(err, spool.ErrClosed) {
				return ErrClosed
			}
			return fmt.Errorf("forward %d events to %q: %w", len(items[d]), d, err)
		}
	}
	return nil
}

// Erase removes from every destination's outbox the pending events whose
// event id is in ids (a person's erasure), and returns how many it removed.
// An event already being sent may still reach its destination.
func (f *Forwarder) Erase(ids map[string]bool) (int, error) {
	f.mu.Lock()
	if f.erased == nil {
		f.erased = map[string]time.Time{}
	}
	now := time.Now()
	for id, at := range f.erased {
		if now.Sub(at) > time.Hour {
			delete(f.erased, id)
		}
	}
	for id := range ids {
		f.erased[id] = now
	}
	f.mu.Unlock()
	f.wmu.RLock()
	defer f.wmu.RUnlock()
	n := 0
	for name, w := range f.workers {
		keys, err := w.sp.Keys()
		if err != nil {
			return n, fmt.Errorf("erase from the outbox of %q: %w", name, err)
		}
		var del []string
		for _, k := range keys {
			if id, _, _ := strings.Cut(k, "\x1f"); ids[id] {
				del = append(del, k)
			}
		}
		if len(del) == 0 {
			continue
		}
		if err := w.sp.Ack(del); err != nil {
			return n, fmt.Errorf("erase from the outbox of %q: %w", name, err)
		}
		n += len(del)
	}
	return n, nil
}

// maxAge is how long after its event_time ev is still tried: MaxAge, or
// for a physical_store event as much longer as Meta allows it.
func (f *Forwarder) maxAge(ev *Event) time.Duration {
	return f.cfg.MaxAge + MaxAgeFor(ev.ActionSource) - MaxEventAge
}

// notErased drops the outcomes of erased events.
func (f *Forwarder) notErased(ds []Delivery) []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.erased) == 0 {
		return ds
	}
	kept := ds[:0]
	for _, d := range ds {
		if _, gone := f.erased[d.EventID]; !gone {
			kept = append(kept, d)
		}
	}
	return kept
}

// Backlogged names the destinations whose outbox holds at least fraction
// (0..1) of its bound: /readyz reports them, since a full outbox refuses
// completions that match their rules.
func (f *Forwarder) Backlogged(fraction float64) []string {
	f.wmu.RLock()
	defer f.wmu.RUnlock()
	var names []string
	for name, w := range f.workers {
		if w.sp.Full(fraction) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// spoolKey makes a repeat of the same event idempotent. event_name is part
// of it because Meta deduplicates on event_id and event_name together: two
// rules may forward one completion as two different events.
func spoolKey(ev Event) string { return ev.EventID + "\x1f" + ev.EventName }

// Close stops intake, lets every worker send what is due now (events in
// backoff stay on disk for the next start), and waits. When ctx ends first,
// requests in flight are aborted and their events stay queued.
func (f *Forwarder) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		return nil
	}
	f.closing = true
	close(f.stop)
	f.mu.Unlock()

	f.wmu.Lock()
	defer f.wmu.Unlock()
	for _, w := range f.workers {
		close(w.stop)
	}
	var err error
	for _, w := range f.workers {
		select {
		case <-w.done:
		case <-ctx.Done():
			f.cancelSend()
			<-w.done
			err = fmt.Errorf("close forwarder: drain %s: %w", w.name, ctx.Err())
		}
	}
	f.cancelSend()
	for _, w := range f.workers {
		if cerr := w.sp.Close(ctx); cerr != nil && err == nil {
			err = fmt.Errorf("close forwarder: %w", cerr)
		}
	}
	if f.reg != nil {
		f.reg.Unregister(f.forwards)
	}
	return err
}

// senderRef holds a worker's Sender for an atomic swap.
type senderRef struct{ Sender }

// SetDestinations makes the forwarder deliver to exactly dests (a reload):
// a new destination gets its outbox and worker; a removed one's worker
// sends what is already due, then stops, and its outbox stays on disk, to
// be taken up again if the destination comes back; the others keep their
// outbox and take the new sender (token, pixel, test code) for their next
// request.
func (f *Forwarder) SetDestinations(dests []Destination) error {
	f.mu.Lock()
	closing := f.closing
	f.mu.Unlock()
	if closing {
		return ErrClosed
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	want := make(map[string]Destination, len(dests))
	for _, d := range dests {
		want[d.Name] = d
	}
	var added []*worker
	for name, d := range want {
		if w := f.workers[name]; w != nil {
			w.sender.Store(&senderRef{d.Sender})
			continue
		}
		w, err := f.openWorker(d)
		if err != nil {
			for _, a := range added {
				_ = a.sp.Close(context.Background())
			}
			return err
		}
		added = append(added, w)
	}
	for name, w := range f.workers {
		if _, keep := want[name]; keep {
			continue
		}
		close(w.stop)
		<-w.done
		if err := w.sp.Close(context.Background()); err != nil {
			f.log.Warn("close the outbox of a removed destination", "destination", name, "err", err)
		}
		delete(f.workers, name)
		f.log.Info("destination removed; its pending events stay in its outbox file", "destination", name)
	}
	for _, w := range added {
		f.workers[w.name] = w
		go w.run()
		f.log.Info("destination added", "destination", w.name)
	}
	return nil
}

// worker delivers one destination's spool.
type worker struct {
	f       *Forwarder
	name    string
	sender  atomic.Pointer[senderRef] // swapped by SetSenders
	sp      *spool.Spool
	stop    chan struct{} // closed to stop it: drain what is due, then exit
	done    chan struct{}
	healthy bool // for logging state changes only
}

func (w *worker) draining() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *worker) run() {
	defer close(w.done)
	for w.waitForDue() {
		cfg := w.f.cfg
		batch, err := w.sp.Lease(cfg.MaxBatch, time.Now())
		if err != nil {
			w.f.log.Error("forwarder cannot read its spool; stopping", "destination", w.name, "err", err)
			return
		}
		if len(batch) < cfg.MaxBatch && !w.draining() {
			// A partial batch waits briefly for company.
			t := time.NewTimer(cfg.Linger)
			select {
			case <-t.C:
			case <-w.stop:
				t.Stop()
			}
			more, err := w.sp.Lease(cfg.MaxBatch-len(batch), time.Now())
			if err == nil {
				batch = append(batch, more...)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if !w.process(batch) {
			return
		}
	}
}

// waitForDue blocks until an item is due (true) or the worker should exit
// (false): while draining, as soon as nothing is due.
func (w *worker) waitForDue() bool {
	for {
		next, ok := w.sp.NextDue()
		now := time.Now()
		if ok && !next.After(now) {
			return true
		}
		if w.draining() {
			return false
		}
		var (
			t     *time.Timer
			timer <-chan time.Time
		)
		if ok {
			t = time.NewTimer(next.Sub(now))
			timer = t.C
		}
		select {
		case <-w.sp.Ready():
		case <-timer:
		case <-w.stop:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// pending is one leased event on its way.
type pending struct {
	item spool.Item
	env  envelope
}

// process sends one leased batch and settles every item in it. It returns
// false when the forwarder is shutting down hard.
func (w *worker) process(batch []spool.Item) bool {
	now := time.Now()
	var (
		ready    []pending
		ds       []Delivery
		acks     []string
		deferred []spool.Retry
	)
	for _, it := range batch {
		var p pending
		p.item = it
		if err := json.Unmarshal(it.Payload, &p.env); err != nil {
			id, name, _ := strings.Cut(it.Key, "\x1f")
			ds = append(ds, w.delivery(pending{item: it, env: envelope{Event: Event{EventID: id, EventName: name}}}, StatusFailed, now, "undecodable spool entry: "+err.Error(), false))
			acks = append(acks, it.Key)
			continue
		}
		ev := &p.env.Event
		if deadline := time.Unix(ev.EventTime, 0).Add(w.f.maxAge(ev)); ev.EventTime > 0 && !now.Before(deadline) {
			ds = append(ds, w.delivery(p, StatusExpired, now, fmt.Sprintf("event_time %s is too old to send", time.Unix(ev.EventTime, 0).UTC().Format(time.RFC3339)), false))
			acks = append(acks, it.Key)
			continue
		}
		if ahead := time.Unix(ev.EventTime, 0).Sub(now); ahead > MaxEventSkew && ahead <= maxPostpone {
			// Ingest accepts client clocks a few minutes fast; Meta refuses
			// event_time in the future. Wait until it is acceptable rather
			// than changing event_time or failing the event.
			deferred = append(deferred, spool.Retry{Key: it.Key, NotBefore: time.Unix(ev.EventTime, 0).Add(-MaxEventSkew / 2)})
			continue
		}
		if err := Validate(ev, now); err != nil {
			st := StatusFailed
			if errors.Is(err, ErrTooOld) {
				st = StatusExpired
			}
			ds = append(ds, w.delivery(p, st, now, err.Error(), false))
			acks = append(acks, it.Key)
			continue
		}
		ready = append(ready, p)
	}
	var retries []spool.Retry
	var released []string
	w.send(ready, &ds, &acks, &retries, &released)

	ok := true
	if len(released) > 0 {
		w.sp.Release(released)
		ok = false
	}
	if len(acks) > 0 {
		if err := w.sp.Ack(acks); err != nil {
			w.f.log.Error("forwarder cannot acknowledge delivered events; they will be sent again", "destination", w.name, "events", len(acks), "err", err)
		}
	}
	if len(deferred) > 0 {
		if err := w.sp.Defer(deferred); err != nil {
			w.f.log.Error("forwarder cannot postpone events", "destination", w.name, "events", len(deferred), "err", err)
		}
	}
	if len(retries) > 0 {
		if err := w.sp.Retry(retries); err != nil {
			w.f.log.Error("forwarder cannot reschedule events; they will be retried at once on the next start", "destination", w.name, "events", len(retries), "err", err)
		}
	}
	for _, d := range ds {
		w.f.forwards.WithLabelValues(w.name, string(d.Status)).Inc()
	}
	ds = w.f.notErased(ds)
	if len(ds) > 0 && w.f.dlog != nil {
		w.f.dlog.Record(ds)
	}
	return ok
}

// send posts ps and settles each: sent → ack; transient → retry (or expire
// when the next try would be too late); permanent → failed, after bisecting
// when the error may be caused by one event (Meta rejects a whole request
// for one bad event; halves find it in ~2·log2(n) requests, and each good
// half is delivered on the way). Bisecting rather than sending events one
// by one keeps a 1,000-event batch with one bad event at ~20 requests.
func (w *worker) send(ps []pending, ds *[]Delivery, acks *[]string, retries *[]spool.Retry, released *[]string) {
	if len(ps) == 0 {
		return
	}
	events := make([]Event, len(ps))
	for i, p := range ps {
		events[i] = p.env.Event
	}
	resp, err := w.sender.Load().Send(w.f.sendCtx, events)
	now := time.Now()
	if err != nil && w.f.sendCtx.Err() != nil {
		// Shutting down hard: the outcome is unknown, so the events stay
		// queued without counting an attempt (at least once).
		for _, p := range ps {
			*released = append(*released, p.item.Key)
		}
		return
	}
	if err == nil {
		w.setHealthy(true, nil)
		msg := ""
		if resp.EventsReceived != len(ps) {
			msg = fmt.Sprintf("Meta reported %d of %d events received", resp.EventsReceived, len(ps))
		}
		if len(resp.Messages) > 0 {
			msg = strings.TrimSpace(msg + " " + strings.Join(resp.Messages, "; "))
		}
		answer := answerOf(resp)
		for _, p := range ps {
			d := w.delivery(p, StatusSent, now, msg, true)
			d.HTTPStatus, d.FbtraceID, d.Response = resp.HTTPStatus, resp.FbtraceID, answer
			*ds = append(*ds, d)
			*acks = append(*acks, p.item.Key)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Message: err.Error(), Err: err, network: true}
	}
	if e.EventSpecific() && len(ps) > 1 {
		half := len(ps) / 2
		w.send(ps[:half], ds, acks, retries, released)
		w.send(ps[half:], ds, acks, retries, released)
		return
	}
	w.setHealthy(e.EventSpecific(), e)
	// One delay for the whole request, from its most-tried event, so the
	// events retry together in one request rather than scattered by jitter.
	attempts := 0
	for _, p := range ps {
		attempts = max(attempts, p.item.Attempts+1)
	}
	delay := w.backoff(attempts, e.RetryAfter)
	for _, p := range ps {
		var d Delivery
		if e.Retryable() {
			at, ok := w.retryAt(p, delay, e.RetryAfter, now)
			if ok {
				d = w.delivery(p, StatusRetrying, now, e.Error(), true)
				*retries = append(*retries, spool.Retry{Key: p.item.Key, NotBefore: at})
			} else {
				d = w.delivery(p, StatusExpired, now, "no time left to retry before Meta's 7-day limit: "+e.Error(), true)
				*acks = append(*acks, p.item.Key)
			}
		} else {
			d = w.delivery(p, StatusFailed, now, e.Error(), true)
			*acks = append(*acks, p.item.Key)
		}
		d.HTTPStatus, d.FbtraceID, d.Response = e.HTTPStatus, e.FbtraceID, errorAnswer(e)
		*ds = append(*ds, d)
	}
}

// backoff is the delay before attempt number attempts+1:
// MinBackoff·2^(attempts-1) capped at MaxBackoff, with jitter over its upper
// half so destinations recovering together do not retry in lockstep, and
// never shorter than Retry-After.
func (w *worker) backoff(attempts int, retryAfter time.Duration) time.Duration {
	d := backoff.Policy{Min: w.f.cfg.MinBackoff, Max: w.f.cfg.MaxBackoff}.Delay(max(attempts-1, 0))
	return max(d, retryAfter)
}

// retryAt is when p is tried next after delay; ok is false when that would
// be past the event's MaxAge and there is no room for a last try just before
// the deadline.
func (w *worker) retryAt(p pending, delay, retryAfter time.Duration, now time.Time) (time.Time, bool) {
	cfg := w.f.cfg
	at := now.Add(delay)
	deadline := time.Unix(p.env.Event.EventTime, 0).Add(w.f.maxAge(&p.env.Event))
	if at.Before(deadline) {
		return at, true
	}
	if last := deadline.Add(-time.Minute); last.Sub(now) >= cfg.MinBackoff && last.Sub(now) >= retryAfter {
		return last, true
	}
	return time.Time{}, false
}

func (w *worker) delivery(p pending, st Status, now time.Time, msg string, sent bool) Delivery {
	ev := p.env.Event
	d := Delivery{
		EventID: ev.EventID, Rule: p.env.Rule, Destination: w.name, EventName: ev.EventName, SourceEvent: p.env.Source, QueuedAt: p.env.Queued,
		Status: st, Attempts: p.item.Attempts, Message: msg, At: now,
	}
	if sent {
		d.Attempts++
	}
	if ev.EventName != "" || ev.EventTime != 0 {
		d.Payload = Payload(ev)
	}
	if ev.EventTime > 0 {
		d.EventTime = time.Unix(ev.EventTime, 0).UTC()
	}
	return d
}

// setHealthy logs when a destination starts or stops failing (a state
// change), not every failure; per-event outcomes are metrics and deliveries.
func (w *worker) setHealthy(ok bool, err error) {
	if ok == w.healthy {
		return
	}
	w.healthy = ok
	if ok {
		w.f.log.Info("meta capi destination recovered", "destination", w.name)
		return
	}
	w.f.log.Warn("meta capi destination failing", "destination", w.name, "err", err)
}
