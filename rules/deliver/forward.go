package deliver

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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/store/spool"
)

// Config tunes delivery for every destination.
type Config struct {
	// Dir holds one outbox file per destination ("<name>.spool").
	Dir string
	// Linger is how long a partial batch waits for more items. Default 1s:
	// destinations ask for events within the hour, and a second turns a
	// burst of completions into one request instead of hundreds.
	Linger time.Duration
	// MinBackoff and MaxBackoff bound the exponential retry delay, before
	// jitter. Defaults 5s and 15m: 5s·2^7 ≈ 10m, so the cap is reached by
	// the eighth attempt and a day-long outage costs ~100 requests per
	// destination, not thousands. A paused destination is probed every
	// MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// SpoolMaxItems and SpoolMaxBytes bound each destination's outbox
	// (defaults: see spool.Config).
	SpoolMaxItems int
	SpoolMaxBytes int64
}

func (c Config) withDefaults() Config {
	if c.Linger == 0 {
		c.Linger = time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 5 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 15 * time.Minute
	}
	return c
}

// defaultMaxBatch is a destination's batch when it names none.
const defaultMaxBatch = 100

// ErrClosed is returned by EnqueueBatch after Close began.
var ErrClosed = errors.New("forwarder closed")

// envelope is what the outbox holds for one item. Its id and name are the
// outbox key's.
type envelope struct {
	Rule string `json:"rule"`
	// Source is tally's event name of the completion forwarded.
	Source string `json:"source,omitempty"`
	// Queued is when the forward was enqueued.
	Queued time.Time `json:"queued,omitzero"`
	// Time is the completion's time (absent in outboxes written when only
	// Meta events were kept: their payload's event_time says it).
	Time    time.Time       `json:"time,omitzero"`
	Payload json.RawMessage `json:"event"`
}

// itemKey makes a repeat of the same item idempotent. The name is part of
// it because one completion may go to a destination as two items (Meta
// deduplicates on event_id and event_name together).
func itemKey(it Item) string { return it.ID + "\x1f" + it.Name }

// Forwarder delivers items at least once: EnqueueBatch puts them in a
// per-destination outbox on disk, and one goroutine per destination sends
// them in batches (see the package comment for the policy).
type Forwarder struct {
	cfg      Config
	log      *slog.Logger
	dlog     DeliveryLog
	workers  map[string]*worker
	forwards *prometheus.CounterVec
	paused   *prometheus.GaugeVec
	reg      prometheus.Registerer

	// wmu guards workers, which SetDestinations changes while forwarding.
	wmu sync.RWMutex

	mu      sync.Mutex
	closing bool
	// erased are the event ids of erased people (Erase) with when they
	// were erased: an attempt already in flight then records no outcome
	// for them. Kept an hour, far longer than one attempt.
	erased map[string]time.Time
	// sendCtx is cancelled when Close's deadline passes, aborting requests.
	sendCtx    context.Context
	cancelSend context.CancelFunc
}

// NewForwarder opens an outbox per destination under cfg.Dir and starts
// the workers; Close stops them. reg may be nil.
func NewForwarder(cfg Config, dests []Destination, dlog DeliveryLog, log *slog.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("forwarder: outbox dir is empty")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{
		cfg: cfg, log: log, dlog: dlog, workers: map[string]*worker{}, reg: reg,
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_forwards_total", Help: "Forward outcomes by destination and status.",
		}, []string{"destination", "status"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tally_destination_paused", Help: "1 while a destination refuses tally's credentials and its events wait in the outbox.",
		}, []string{"destination"}),
	}
	f.sendCtx, f.cancelSend = context.WithCancel(context.Background())
	if reg != nil {
		for _, c := range []prometheus.Collector{f.forwards, f.paused} {
			if err := reg.Register(c); err != nil {
				f.unregister()
				return nil, fmt.Errorf("forwarder: register metrics: %w", err)
			}
		}
	}
	for _, d := range dests {
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

// openWorker opens d's outbox and makes its worker (not yet running).
func (f *Forwarder) openWorker(d Destination) (*worker, error) {
	if d.Name == "" || strings.ContainsAny(d.Name, `/\`) || d.Name[0] == '.' {
		return nil, fmt.Errorf("forwarder: destination name %q cannot name an outbox file", d.Name)
	}
	sp, err := spool.Open(spool.Config{
		Path:     filepath.Join(f.cfg.Dir, d.Name+".spool"),
		Name:     "forward_" + d.Name,
		MaxItems: f.cfg.SpoolMaxItems,
		MaxBytes: f.cfg.SpoolMaxBytes,
	}, f.log, f.reg)
	if err != nil {
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	w := &worker{f: f, name: d.Name, sp: sp, stop: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	w.dest.Store(&d)
	w.health = Health{Destination: d.Name, Type: d.Type, State: StateOK}
	f.paused.WithLabelValues(d.Name).Set(0)
	return w, nil
}

func (f *Forwarder) closeSpools() {
	for _, w := range f.workers {
		_ = w.sp.Close(context.Background())
	}
	f.unregister()
}

func (f *Forwarder) unregister() {
	if f.reg != nil {
		f.reg.Unregister(f.forwards)
		f.reg.Unregister(f.paused)
	}
}

// Enqueue stores one item. See EnqueueBatch.
func (f *Forwarder) Enqueue(ctx context.Context, destination string, o Origin, it Item) error {
	return f.EnqueueBatch(ctx, []Queued{{Destination: destination, Origin: o, Item: it}})
}

// EnqueueBatch stores the items for delivery and returns once they are on
// disk: one outbox transaction (one fsync) per destination, however many
// items. The same item (id and name) for the same destination is stored
// once. Errors: unknown destination, no id, spool.ErrFull (wrapped),
// ErrClosed; on an error some destinations' items may be stored, and a
// retry of the whole batch stores each of them once.
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
		if q.Item.ID == "" {
			return fmt.Errorf("forward %s to %q: the event id is empty", q.Item.Name, q.Destination)
		}
		b, err := json.Marshal(envelope{Rule: q.Origin.Rule, Source: q.Origin.Source, Queued: now, Time: q.Item.Time.UTC(), Payload: q.Item.Payload})
		if err != nil {
			return fmt.Errorf("forward %s to %q: %w", q.Item.Name, q.Destination, err)
		}
		if _, seen := items[q.Destination]; !seen {
			order = append(order, q.Destination)
		}
		items[q.Destination] = append(items[q.Destination], spool.Item{Key: itemKey(q.Item), Payload: b})
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

// Erase removes from every destination's outbox the pending items whose
// id is in ids (a person's erasure), and returns how many it removed.
// An item already being sent may still reach its destination.
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

// Destination states in Health.
const (
	StateOK       = "ok"
	StateRetrying = "retrying" // its last request failed transiently
	StatePaused   = "paused"   // it refused tally's credentials
)

// Health is how one destination is doing.
type Health struct {
	Destination string    `json:"destination"`
	Type        string    `json:"type"`
	State       string    `json:"state"`
	Since       time.Time `json:"since,omitzero"` // when State began (zero: since start)
	Reason      string    `json:"reason,omitempty"`
	// Backlog is how many items wait in its outbox, BacklogBytes their size.
	Backlog      int   `json:"backlog"`
	BacklogBytes int64 `json:"backlog_bytes"`
	// NextAttempt is when the next item is due (zero: none waits).
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// LastSent is when it last accepted an item.
	LastSent time.Time `json:"last_sent,omitzero"`
}

// Health reports every destination, by name.
func (f *Forwarder) Health() []Health {
	f.wmu.RLock()
	defer f.wmu.RUnlock()
	out := make([]Health, 0, len(f.workers))
	for _, w := range f.workers {
		w.hmu.Lock()
		h := w.health
		pausedUntil := w.pausedUntil
		w.hmu.Unlock()
		h.Backlog, h.BacklogBytes = w.sp.Len()
		if next, ok := w.sp.NextDue(); ok {
			h.NextAttempt = next
			if next.Before(pausedUntil) {
				h.NextAttempt = pausedUntil
			}
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}

// Close stops intake, lets every worker send what is due now (items in
// backoff stay on disk for the next start), and waits. When ctx ends first,
// requests in flight are aborted and their items stay queued.
func (f *Forwarder) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		return nil
	}
	f.closing = true
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
	f.unregister()
	return err
}

// SetDestinations makes the forwarder deliver to exactly dests (a reload):
// a new destination gets its outbox and worker; a removed one's worker
// sends what is already due, then stops, and its outbox stays on disk, to
// be taken up again if the destination comes back; the others keep their
// outbox and take the new sender for their next request, and a paused one
// is resumed at once (its credentials may have been fixed).
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
			w.dest.Store(&d)
			w.resume("reloaded with new settings")
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
		f.paused.DeleteLabelValues(name)
		f.log.Info("destination removed; its pending events stay in its outbox file", "destination", name)
	}
	for _, w := range added {
		f.workers[w.name] = w
		go w.run()
		f.log.Info("destination added", "destination", w.name)
	}
	return nil
}
