package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// Person names whose data an erasure removes: any of their emails, visitor
// ids (first-party cookie ids, utk) and external ids.
type Person struct {
	Emails      []string
	VisitorIDs  []string
	ExternalIDs []string
}

// Normalize lower-cases and trims the emails, trims the rest, and drops
// empty values.
func (p Person) Normalize() Person {
	clean := func(in []string, lower bool) []string {
		var out []string
		for _, v := range in {
			v = strings.TrimSpace(v)
			if lower {
				v = strings.ToLower(v)
			}
			if v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	return Person{Emails: clean(p.Emails, true), VisitorIDs: clean(p.VisitorIDs, false), ExternalIDs: clean(p.ExternalIDs, false)}
}

// Empty reports whether p names no one.
func (p Person) Empty() bool {
	return len(p.Emails) == 0 && len(p.VisitorIDs) == 0 && len(p.ExternalIDs) == 0
}

// Subject is what the audit row keeps of the person: a SHA-256 of the
// identifiers, so an auditor can confirm an erasure of a known address
// without the table holding it.
func (p Person) Subject() string {
	h := sha256.New()
	for _, group := range [][]string{p.Emails, p.VisitorIDs, p.ExternalIDs} {
		for _, v := range group {
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Matches reports whether c is the person's.
func (p Person) Matches(c *ingest.Completion) bool {
	for _, e := range p.Emails {
		if strings.EqualFold(strings.TrimSpace(c.Identity.Email), e) {
			return true
		}
	}
	for _, v := range p.VisitorIDs {
		if c.VisitorID == v {
			return true
		}
	}
	for _, x := range p.ExternalIDs {
		if c.Identity.ExternalID == x {
			return true
		}
	}
	return false
}

// Erasures is the durable log's side of erasure: completions of erased
// people that the log still holds, which its readers must not write or
// forward. Each erasure applies to the records the log held when it was
// made (up to Through); it is forgotten once every reader has passed that,
// and kept in a file under the data dir until then, so a restart does not
// bring the person back. The file keeps the identifiers themselves (the
// readers must compare them) for as long as the log holds the records, no
// longer.
type Erasures struct {
	path string

	mu      sync.Mutex
	pending []*pendingErasure
}

type pendingErasure struct {
	Person  Person `json:"person"`
	Through uint64 `json:"through"`
	dropped uint64 // completions dropped by readers since it was added
}

// OpenErasures loads the pending erasures kept at path.
func OpenErasures(path string) (*Erasures, error) {
	e := &Erasures{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return e, nil
	case err != nil:
		return nil, fmt.Errorf("read pending erasures: %w", err)
	}
	if err := json.Unmarshal(b, &e.pending); err != nil {
		return nil, fmt.Errorf("parse pending erasures %s: %w", path, err)
	}
	return e, nil
}

// Add makes the readers drop p's completions among the log's records up to
// and including through. It returns a function that tells how many they
// have dropped so far.
func (e *Erasures) Add(p Person, through uint64) (dropped func() uint64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	pe := &pendingErasure{Person: p, Through: through}
	e.pending = append(e.pending, pe)
	return func() uint64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return pe.dropped
	}, e.save()
}

// Drop reports whether the completion c, read from the log's record index,
// belongs to a person erased after it was appended. It is a Follower's Skip.
func (e *Erasures) Drop(index uint64, c *ingest.Completion) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.pending {
		if index <= p.Through && p.Person.Matches(c) {
			p.dropped++
			return true
		}
	}
	return false
}

// Prune forgets the erasures every reader has passed: all records up to
// Through are below committed, the slowest reader's cursor.
func (e *Erasures) Prune(committed uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	kept := e.pending[:0]
	for _, p := range e.pending {
		if p.Through >= committed {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(e.pending) {
		return nil
	}
	e.pending = kept
	return e.save()
}

func (e *Erasures) save() error {
	if len(e.pending) == 0 {
		if err := os.Remove(e.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove pending erasures: %w", err)
		}
		return nil
	}
	b, err := json.Marshal(e.pending)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(e.path), 0o750); err != nil {
		return err
	}
	tmp := e.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write pending erasures: %w", err)
	}
	return os.Rename(tmp, e.path)
}

// ErasureCounts is what an erasure removed, by place.
type ErasureCounts struct {
	Events     uint64 `json:"events"`
	Rejections uint64 `json:"rejections"`
	Deliveries uint64 `json:"deliveries"`
	Identities uint64 `json:"identities"`
	// PersonEvents are the rows of the by-person lookup table.
	PersonEvents uint64 `json:"person_events"`
	Outbox       uint64 `json:"outbox"`
	// Log is how many of the person's completions the durable log still
	// held, which its readers dropped instead of writing or forwarding.
	Log uint64 `json:"log"`
}

// Eraser removes a person's rows from ClickHouse: events (theirs by email
// or visitor id, and so the anonymous completions of every visitor id
// their email was seen with), the deliveries of those events, rejections
// whose payload names them, and identity links. The deletes are ALTER …
// DELETE mutations, which ClickHouse 18.16 and current releases both run;
// Erase waits until they are done.
type Eraser struct {
	conn    Conn
	db      string
	cluster string
}

// NewEraser returns an Eraser for database (on cluster, or one server).
func NewEraser(conn Conn, database, cluster string) *Eraser {
	return &Eraser{conn: conn, db: quoteIdent(database), cluster: cluster}
}

// Resolve adds to p the visitor ids its emails were seen with, so their
// anonymous completions go too.
func (er *Eraser) Resolve(ctx context.Context, p Person) (Person, error) {
	if len(p.Emails) == 0 && len(p.ExternalIDs) == 0 {
		return p, nil
	}
	ids, err := er.strings(ctx, "SELECT DISTINCT visitor_id FROM "+er.db+".events WHERE visitor_id != '' AND "+er.emailsIn(p))
	if err != nil {
		return p, err
	}
	linked, err := er.strings(ctx, "SELECT DISTINCT visitor_id FROM "+er.db+".identities WHERE "+identitiesWhere(p, false))
	if err != nil {
		return p, err
	}
	ids = append(ids, linked...)
	seen := map[string]bool{}
	for _, v := range p.VisitorIDs {
		seen[v] = true
	}
	for _, v := range ids {
		if !seen[v] {
			seen[v] = true
			p.VisitorIDs = append(p.VisitorIDs, v)
		}
	}
	return p, nil
}

// EventIDs are the ids of the person's stored completions (for their
// deliveries and pending forwards).
func (er *Eraser) EventIDs(ctx context.Context, p Person) ([]string, error) {
	return er.strings(ctx, "SELECT DISTINCT event_id FROM "+er.db+".events WHERE "+er.eventsWhere(p))
}

func (er *Eraser) emailsIn(p Person) string {
	if len(p.Emails) == 0 {
		return "0"
	}
	return "lower(email) IN (" + quoteList(p.Emails) + ")"
}

// identitiesWhere matches the person's identity links: by email or
// external id, and with visitors also by any of their visitor ids.
func identitiesWhere(p Person, visitors bool) string {
	or := []string{"0"}
	if len(p.Emails) > 0 {
		or = append(or, "(kind = 'email' AND value IN ("+quoteList(p.Emails)+"))")
	}
	if len(p.ExternalIDs) > 0 {
		or = append(or, "(kind = 'external_id' AND value IN ("+quoteList(p.ExternalIDs)+"))")
	}
	if visitors && len(p.VisitorIDs) > 0 {
		or = append(or, "visitor_id IN ("+quoteList(p.VisitorIDs)+")")
	}
	return strings.Join(or, " OR ")
}

// personEventsWhere matches the person's rows of the lookup table.
func personEventsWhere(p Person, eventIDs []string) string {
	var keys []string
	for _, e := range p.Emails {
		keys = append(keys, emailKey(e))
	}
	for _, v := range p.VisitorIDs {
		keys = append(keys, visitorKey(v))
	}
	or := []string{"0"}
	if len(keys) > 0 {
		or = append(or, "person IN ("+quoteList(keys)+")")
	}
	if len(eventIDs) > 0 {
		or = append(or, "event_id IN ("+quoteList(eventIDs)+")")
	}
	return strings.Join(or, " OR ")
}

func (er *Eraser) eventsWhere(p Person) string {
	var or []string
	if len(p.Emails) > 0 {
		or = append(or, "lower(email) IN ("+quoteList(p.Emails)+")")
	}
	if len(p.VisitorIDs) > 0 {
		or = append(or, "visitor_id IN ("+quoteList(p.VisitorIDs)+")")
	}
	if len(or) == 0 {
		return "0"
	}
	return strings.Join(or, " OR ")
}

// payloadWhere matches rejections whose payload holds any identifier.
func payloadWhere(p Person) string {
	var or []string
	for _, group := range [][]string{p.Emails, p.VisitorIDs, p.ExternalIDs} {
		for _, v := range group {
			or = append(or, "positionCaseInsensitive(payload, "+quoteString(v)+") > 0")
		}
	}
	if len(or) == 0 {
		return "0"
	}
	return strings.Join(or, " OR ")
}

// Erase deletes the person's rows (p resolved, eventIDs from EventIDs) and
// waits for the mutations, returning the rows it removed by table.
func (er *Eraser) Erase(ctx context.Context, p Person, eventIDs []string) (ErasureCounts, error) {
	var c ErasureCounts
	type del struct {
		table, where string
		n            *uint64
	}
	dels := []del{
		{"events", er.eventsWhere(p), &c.Events},
		{"rejections", payloadWhere(p), &c.Rejections},
	}
	if len(eventIDs) > 0 {
		dels = append(dels, del{"deliveries", "event_id IN (" + quoteList(eventIDs) + ")", &c.Deliveries})
	}
	dels = append(dels,
		del{"identities", identitiesWhere(p, true), &c.Identities},
		del{"person_events", personEventsWhere(p, eventIDs), &c.PersonEvents})
	for _, d := range dels {
		n, err := er.count(ctx, "SELECT count() FROM "+er.db+"."+d.table+" WHERE "+d.where)
		if err != nil {
			return c, fmt.Errorf("erase: count %s: %w", d.table, err)
		}
		*d.n = n
		if *d.n == 0 {
			continue
		}
		table := d.table
		on := ""
		if er.cluster != "" {
			if _, distributed := distributedTables[table]; distributed {
				table += "_local"
			}
			on = " ON CLUSTER " + quoteIdent(er.cluster)
		}
		if err := er.conn.Exec(ctx, "ALTER TABLE "+er.db+"."+table+on+" DELETE WHERE "+d.where); err != nil {
			return c, fmt.Errorf("erase: delete from %s: %w", d.table, err)
		}
	}
	return c, er.waitMutations(ctx)
}

// waitMutations waits until the database has no mutation left to do.
func (er *Eraser) waitMutations(ctx context.Context) error {
	db := strings.Trim(er.db, "`")
	for {
		n, err := er.count(ctx, "SELECT count() FROM system.mutations WHERE database = "+quoteString(db)+" AND is_done = 0")
		if err != nil {
			return fmt.Errorf("erase: wait for the deletes: %w", err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("erase: %d deletes still running: %w", n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Record writes the audit row of an erasure: when, the person's Subject
// hash, and the counts. The person's identifiers are not in it.
func (er *Eraser) Record(ctx context.Context, subject string, c ErasureCounts) error {
	b, err := er.conn.PrepareBatch(ctx, "INSERT INTO "+er.db+".erasures (erased_at, subject_sha256, events, rejections, deliveries, identities, person_events, outbox, log_completions)")
	if err != nil {
		return fmt.Errorf("record erasure: %w", err)
	}
	defer b.Close()
	if err := b.Append(time.Now().UTC(), subject, c.Events, c.Rejections, c.Deliveries, c.Identities, c.PersonEvents, c.Outbox, c.Log); err != nil {
		return fmt.Errorf("record erasure: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record erasure: %w", err)
	}
	return nil
}

func (er *Eraser) strings(ctx context.Context, q string) ([]string, error) {
	out, err := queryColumn(ctx, er.conn, q)
	if err != nil {
		return nil, fmt.Errorf("erase: %w", err)
	}
	return out, nil
}

func (er *Eraser) count(ctx context.Context, q string) (uint64, error) {
	return queryCount(ctx, er.conn, q)
}
