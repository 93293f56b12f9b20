package deliver

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-analytics/tally/store/backoff"
	"github.com/tally-analytics/tally/store/spool"
)

// worker delivers one destination's outbox.
type worker struct {
	f    *Forwarder
	name string
	dest atomic.Pointer[Destination] // swapped by SetDestinations
	sp   *spool.Spool
	stop chan struct{} // closed to stop it: drain what is due, then exit
	done chan struct{}
	wake chan struct{} // a resume

	hmu    sync.Mutex
	health Health
	// pausedUntil is when a paused destination is probed next (zero: not
	// paused).
	pausedUntil time.Time
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
		d := w.dest.Load()
		maxBatch := d.MaxBatch
		if maxBatch <= 0 {
			maxBatch = defaultMaxBatch
		}
		batch, err := w.sp.Lease(maxBatch, time.Now())
		if err != nil {
			w.f.log.Error("forwarder cannot read its outbox; stopping", "destination", w.name, "err", err)
			return
		}
		if len(batch) < maxBatch && !w.draining() {
			// A partial batch waits briefly for company.
			t := time.NewTimer(w.f.cfg.Linger)
			select {
			case <-t.C:
			case <-w.stop:
				t.Stop()
			}
			more, err := w.sp.Lease(maxBatch-len(batch), time.Now())
			if err == nil {
				batch = append(batch, more...)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if !w.process(d, batch) {
			return
		}
	}
}

// waitForDue blocks until an item is due and the destination is not
// paused (true) or the worker should exit (false): while draining, as
// soon as nothing is due.
func (w *worker) waitForDue() bool {
	for {
		next, ok := w.sp.NextDue()
		w.hmu.Lock()
		if pu := w.pausedUntil; ok && next.Before(pu) {
			next = pu
		}
		w.hmu.Unlock()
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
		case <-w.wake:
		case <-timer:
		case <-w.stop:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// pending is one leased item on its way.
type pending struct {
	key   string
	tries int // attempts before this one
	env   envelope
	item  Item
}

// settle collects what one batch's requests decided, item by item.
type settle struct {
	ds       []Delivery
	acks     []string
	retries  []spool.Retry
	deferred []spool.Retry
	released []string
}

// decode reads a leased outbox item.
func decode(it spool.Item) (pending, error) {
	p := pending{key: it.Key, tries: it.Attempts}
	p.item.ID, p.item.Name, _ = strings.Cut(it.Key, "\x1f")
	if err := json.Unmarshal(it.Payload, &p.env); err != nil {
		return p, err
	}
	p.item.Payload, p.item.Time = p.env.Payload, p.env.Time
	if p.item.Time.IsZero() {
		var legacy struct {
			EventTime int64 `json:"event_time"`
		}
		if json.Unmarshal(p.env.Payload, &legacy) == nil && legacy.EventTime > 0 {
			p.item.Time = time.Unix(legacy.EventTime, 0).UTC()
		}
	}
	return p, nil
}

// deadline is when p is past its destination's horizon (zero: never).
func deadline(d *Destination, it Item) time.Time {
	if it.Time.IsZero() {
		return time.Time{}
	}
	h := DefaultHorizon
	if d.Horizon != nil {
		h = d.Horizon(it)
	}
	return it.Time.Add(h)
}

// process sends one leased batch and settles every item in it. It returns
// false when the forwarder is shutting down hard.
func (w *worker) process(d *Destination, batch []spool.Item) bool {
	now := time.Now()
	var (
		s     settle
		ready []pending
	)
	checker, _ := d.Sender.(Checker)
	for _, it := range batch {
		p, err := decode(it)
		if err != nil {
			s.ds = append(s.ds, w.delivery(p, StatusFailed, now, "undecodable outbox entry: "+err.Error(), false))
			s.acks = append(s.acks, it.Key)
			continue
		}
		if dl := deadline(d, p.item); !dl.IsZero() && !now.Before(dl) {
			s.ds = append(s.ds, w.delivery(p, StatusExpired, now, fmt.Sprintf("event time %s is too old to send", p.item.Time.Format(time.RFC3339)), false))
			s.acks = append(s.acks, it.Key)
			continue
		}
		if checker != nil {
			notBefore, drop := checker.Check(p.item, now)
			if drop != nil {
				s.ds = append(s.ds, w.outcome(p, *drop, now, false))
				s.acks = append(s.acks, it.Key)
				continue
			}
			if notBefore.After(now) {
				s.deferred = append(s.deferred, spool.Retry{Key: it.Key, NotBefore: notBefore})
				continue
			}
		}
		ready = append(ready, p)
	}
	w.send(d, ready, &s)

	ok := true
	if len(s.released) > 0 {
		w.sp.Release(s.released)
		ok = w.f.sendCtx.Err() == nil
	}
	if len(s.acks) > 0 {
		if err := w.sp.Ack(s.acks); err != nil {
			w.f.log.Error("forwarder cannot acknowledge delivered events; they will be sent again", "destination", w.name, "events", len(s.acks), "err", err)
		}
	}
	if len(s.deferred) > 0 {
		if err := w.sp.Defer(s.deferred); err != nil {
			w.f.log.Error("forwarder cannot postpone events", "destination", w.name, "events", len(s.deferred), "err", err)
		}
	}
	if len(s.retries) > 0 {
		if err := w.sp.Retry(s.retries); err != nil {
			w.f.log.Error("forwarder cannot reschedule events; they will be retried at once on the next start", "destination", w.name, "events", len(s.retries), "err", err)
		}
	}
	for _, d := range s.ds {
		w.f.forwards.WithLabelValues(w.name, d.Status).Inc()
	}
	ds := w.f.notErased(s.ds)
	if len(ds) > 0 && w.f.dlog != nil {
		w.f.dlog.Record(ds)
	}
	return ok
}

// send posts ps and settles each item by its Result. A Split of the whole
// request bisects it (a destination that refuses a request for one item:
// halves find it in ~2·log2(n) requests, and each good half is delivered on
// the way).
func (w *worker) send(d *Destination, ps []pending, s *settle) {
	if len(ps) == 0 {
		return
	}
	items := make([]Item, len(ps))
	for i, p := range ps {
		items[i] = p.item
	}
	results := d.Sender.Send(w.f.sendCtx, items)
	now := time.Now()
	if w.f.sendCtx.Err() != nil {
		// Shutting down hard: the outcome is unknown, so the items stay
		// queued without counting an attempt (at least once).
		for _, p := range ps {
			s.released = append(s.released, p.key)
		}
		return
	}
	if len(results) != len(ps) {
		results = Same(len(ps), Result{Class: Retry, Message: fmt.Sprintf("destination answered %d results for %d events", len(results), len(ps))})
	}
	split, pause, retry := 0, -1, -1
	for i, r := range results {
		switch r.Class {
		case Split:
			split++
		case Pause:
			pause = i
		case Retry:
			retry = i
		}
	}
	if split == len(ps) && len(ps) > 1 {
		half := len(ps) / 2
		w.send(d, ps[:half], s)
		w.send(d, ps[half:], s)
		return
	}
	// A paused destination's probes that fail again record no rows: the
	// first refusal said it, and a day's probes would repeat it ~100 times
	// per event.
	recordPause := true
	if pause >= 0 {
		recordPause = w.pause(results[pause], now)
	}
	// One delay for the request's retries, from its most-tried item, so
	// they retry together in one request rather than scattered by jitter.
	attempts, retryAfter := 0, time.Duration(0)
	for i, p := range ps {
		if results[i].Class == Retry {
			attempts, retryAfter = max(attempts, p.tries+1), max(retryAfter, results[i].RetryAfter)
		}
	}
	delay := w.backoff(attempts, retryAfter)
	sent := false
	for i, p := range ps {
		r := results[i]
		switch r.Class {
		case Sent:
			sent = true
			s.acks = append(s.acks, p.key)
			s.ds = append(s.ds, w.outcome(p, r, now, true))
		case Pause:
			// Kept without counting an attempt: the event is not at fault.
			s.released = append(s.released, p.key)
			if recordPause {
				s.ds = append(s.ds, w.outcome(p, r, now, false))
			}
		case Retry:
			if at, ok := w.retryAt(d, p, delay, r.RetryAfter, now); ok {
				s.retries = append(s.retries, spool.Retry{Key: p.key, NotBefore: at})
				s.ds = append(s.ds, w.outcome(p, r, now, true))
			} else {
				r.Class, r.Status, r.Message = Drop, StatusExpired, "no time left to retry before the destination's horizon: "+r.Message
				s.acks = append(s.acks, p.key)
				s.ds = append(s.ds, w.outcome(p, r, now, true))
			}
		default: // Drop, and a Split of a single item
			s.acks = append(s.acks, p.key)
			s.ds = append(s.ds, w.outcome(p, r, now, true))
		}
	}
	switch {
	case pause >= 0:
	case retry >= 0:
		w.setState(StateRetrying, results[retry].Message, now)
	case sent:
		w.setState(StateOK, "", now)
	}
	if sent {
		w.hmu.Lock()
		w.health.LastSent = now
		w.hmu.Unlock()
	}
}

// backoff is the delay before attempt number attempts+1:
// MinBackoff·2^(attempts-1) capped at MaxBackoff, with jitter over its upper
// half, and never shorter than Retry-After.
func (w *worker) backoff(attempts int, retryAfter time.Duration) time.Duration {
	d := backoff.Policy{Min: w.f.cfg.MinBackoff, Max: w.f.cfg.MaxBackoff}.Delay(max(attempts-1, 0))
	return max(d, retryAfter)
}

// retryAt is when p is tried next after delay; ok is false when that would
// be past its horizon and there is no room for a last try just before it.
func (w *worker) retryAt(d *Destination, p pending, delay, retryAfter time.Duration, now time.Time) (time.Time, bool) {
	at := now.Add(delay)
	dl := deadline(d, p.item)
	if dl.IsZero() || at.Before(dl) {
		return at, true
	}
	if last := dl.Add(-time.Minute); last.Sub(now) >= w.f.cfg.MinBackoff && last.Sub(now) >= retryAfter {
		return last, true
	}
	return time.Time{}, false
}

// outcome is the delivery row for p after r.
func (w *worker) outcome(p pending, r Result, now time.Time, attempted bool) Delivery {
	st := r.Status
	if st == "" {
		st = map[Class]string{Sent: StatusSent, Retry: StatusRetrying, Drop: StatusFailed, Split: StatusFailed, Pause: StatusPaused}[r.Class]
	}
	d := w.delivery(p, st, now, r.Message, attempted)
	d.HTTPStatus, d.TraceID, d.Response = r.HTTPStatus, r.TraceID, r.Response
	return d
}

func (w *worker) delivery(p pending, st string, now time.Time, msg string, attempted bool) Delivery {
	d := Delivery{
		EventID: p.item.ID, Rule: p.env.Rule, Destination: w.name, ForwardedName: p.item.Name, SourceEvent: p.env.Source,
		QueuedAt: p.env.Queued, EventTime: p.item.Time, Status: st, Attempts: p.tries, Message: msg, At: now,
		Payload: string(p.item.Payload),
	}
	if attempted {
		d.Attempts++
	}
	return d
}

// pause stops sending until the probe time or a resume. It logs the state
// change, not each refusal, and reports whether it is one (the destination
// was not paused already).
func (w *worker) pause(r Result, now time.Time) bool {
	w.hmu.Lock()
	w.pausedUntil = now.Add(w.f.cfg.MaxBackoff)
	was := w.health.State
	w.hmu.Unlock()
	w.f.paused.WithLabelValues(w.name).Set(1)
	if was != StatePaused {
		w.f.log.Error("destination paused: it refuses tally's credentials; its events wait in the outbox until they work again (fix them and run tally reload)",
			"destination", w.name, "err", r.Message, "probe_every", w.f.cfg.MaxBackoff)
	}
	w.setState(StatePaused, r.Message, now)
	return was != StatePaused
}

// resume ends a pause (a reload with new settings).
func (w *worker) resume(why string) {
	w.hmu.Lock()
	paused := !w.pausedUntil.IsZero()
	w.pausedUntil = time.Time{}
	w.hmu.Unlock()
	if !paused {
		return
	}
	w.f.log.Info("paused destination resumed", "destination", w.name, "why", why)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// setState records the destination's state, logging changes only; per-item
// outcomes are metrics and deliveries.
func (w *worker) setState(state, reason string, now time.Time) {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	prev := w.health.State
	if state != StatePaused {
		w.pausedUntil = time.Time{}
		w.f.paused.WithLabelValues(w.name).Set(0)
	}
	w.health.Reason = reason
	if prev == state {
		return
	}
	w.health.State, w.health.Since = state, now
	switch {
	case state == StateOK:
		w.f.log.Info("destination recovered", "destination", w.name, "was", prev)
	case state == StateRetrying:
		w.f.log.Warn("destination failing; retrying with backoff", "destination", w.name, "err", reason)
	}
}
