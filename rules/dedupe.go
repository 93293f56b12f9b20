package rules

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// defaultDedupeKeys bounds the dedupe memory: 100,000 keys × about 100
// bytes (a 32-byte hash, an event id, a time, map overhead) ≈ 10 MB. A
// form submitted 10,000 times an hour with a 10-minute window needs about
// 1,700; when the memory is full, expired keys go first, then arbitrary
// ones (a duplicate may then be forwarded: Meta still deduplicates by
// event id, and by nothing else).
const defaultDedupeKeys = 100_000

// dedupeMemory remembers, per rule and dedupe key, the last forwarded
// completion: its event id and when it occurred. It holds hashes only:
// the key's values (an email, a form id) are never kept in clear. It is
// in memory: a restart forgets the windows.
type dedupeMemory struct {
	mu   sync.Mutex
	max  int
	keys map[[32]byte]dedupeEntry
}

type dedupeEntry struct {
	eventID string
	at      time.Time // the forwarded completion's occurred time
	until   time.Time // at + the rule's window
}

func newDedupeMemory(max int) *dedupeMemory {
	return &dedupeMemory{max: max, keys: map[[32]byte]dedupeEntry{}}
}

// dedupeKey hashes the rule's name and c's values of its dedupe.by; ok is
// false when the rule has no window or c has none of the values.
func dedupeKey(r *compiled, c *ingest.Completion) (k [32]byte, ok bool) {
	d := r.rule.Dedupe
	if d == nil {
		return k, false
	}
	h := sha256.New()
	h.Write([]byte(r.name))
	for _, by := range d.By {
		v := dedupeValue(c, by)
		ok = ok || v != ""
		h.Write([]byte{0})
		h.Write([]byte(fold(strings.TrimSpace(v))))
	}
	h.Sum(k[:0])
	return k, ok
}

// dedupeValue reads one dedupe.by key of c: an identity, a standard field
// or a property.
func dedupeValue(c *ingest.Completion, by string) string {
	switch by {
	case "email":
		return c.Identity.Email
	case "external_id":
		return c.Identity.ExternalID
	case "phone":
		return c.Identity.Phone
	case "visitor_id":
		return c.VisitorID
	case "object_id":
		return c.ObjectID
	}
	if v, ok := standardField(c, by); ok {
		return v
	}
	v, _ := c.Prop(by)
	return v
}

// seen reports whether c repeats a completion the rule forwarded within
// its window, and that one's event id. The same event offered again (a
// retried batch) is not a duplicate of itself.
func (m *dedupeMemory) seen(r *compiled, c *ingest.Completion) (first string, dup bool) {
	k, ok := dedupeKey(r, c)
	if !ok {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.keys[k]
	if !ok || e.eventID == c.EventID {
		return "", false
	}
	w := r.rule.Dedupe.Within
	if d := c.OccurredAt.Sub(e.at); d < w && d > -w {
		return e.eventID, true
	}
	return "", false
}

// remember records c as forwarded by the rule.
func (m *dedupeMemory) remember(r *compiled, c *ingest.Completion) {
	k, ok := dedupeKey(r, c)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[k]; !ok && len(m.keys) >= m.max {
		m.evict(c.OccurredAt)
	}
	m.keys[k] = dedupeEntry{eventID: c.EventID, at: c.OccurredAt, until: c.OccurredAt.Add(r.rule.Dedupe.Within)}
}

// evict drops the keys whose window ended before now, and when none has,
// a tenth of the keys.
func (m *dedupeMemory) evict(now time.Time) {
	for k, e := range m.keys {
		if e.until.Before(now) {
			delete(m.keys, k)
		}
	}
	n := m.max / 10
	for k := range m.keys {
		if len(m.keys) < m.max || n == 0 {
			break
		}
		delete(m.keys, k)
		n--
	}
}
