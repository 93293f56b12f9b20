package rules

import (
	"container/list"
	"sync"

	"github.com/tally-analytics/tally/ingest"
)

// Identities remembers, per visitor id, the user data the visitor's
// completions last carried (identify traits), so that a completion made on
// a later page is forwarded with the user data the person gave earlier.
// The tracker keeps traits in memory for the page only, never in the
// browser's storage, so this link lives on the server, in memory, bounded:
// the most recent maxVisitors visitors. The acceptance pipeline fills it
// from the completions it accepts and the tracker's identify calls, and
// gives the user data to the visitor's later completions before they are
// written to the durable log; an erasure empties it of a person.
type Identities struct {
	max int

	mu sync.Mutex
	m  map[string]*list.Element
	ll *list.List // front: most recently seen
}

type identityEntry struct {
	visitor string
	id      ingest.Identity
}

// NewIdentities remembers at most max visitors; 0 means 100,000 (a few
// hundred bytes each, some 30 MB at most).
func NewIdentities(max int) *Identities {
	if max <= 0 {
		max = 100_000
	}
	return &Identities{max: max, m: map[string]*list.Element{}, ll: list.New()}
}

// Learn links visitor to the user data id (the tracker's identify call).
func (ids *Identities) Learn(visitor string, id ingest.Identity) {
	ids.Fill([]ingest.Completion{{VisitorID: visitor, Consent: ingest.Consent{Analytics: true}, Identity: id}})
}

// Fill learns the user data of the completions that carry some, and gives
// it to those of the same visitor that carry none. Only completions with
// analytics consent are linked to their visitor.
func (ids *Identities) Fill(cs []ingest.Completion) {
	for i := range cs {
		ids.FillOne(&cs[i])
	}
}

// FillOne is Fill for one completion (the acceptance pipeline's
// enrichment step).
func (ids *Identities) FillOne(c *ingest.Completion) {
	if c.VisitorID == "" || !c.Consent.Analytics {
		return // most API completions: no lock taken on the accept path
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	e, seen := ids.m[c.VisitorID]
	if !known(c.Identity) {
		if seen {
			fbp, fbc := c.Identity.Fbp, c.Identity.Fbc
			c.Identity = e.Value.(*identityEntry).id
			c.Identity.Fbp, c.Identity.Fbc = fbp, fbc
		}
		return
	}
	id := c.Identity
	id.Fbp, id.Fbc = "", "" // browser ids come with every completion
	if seen {
		e.Value.(*identityEntry).id = id
		ids.ll.MoveToFront(e)
		return
	}
	ids.m[c.VisitorID] = ids.ll.PushFront(&identityEntry{visitor: c.VisitorID, id: id})
	if ids.ll.Len() > ids.max {
		old := ids.ll.Remove(ids.ll.Back()).(*identityEntry)
		delete(ids.m, old.visitor)
	}
}

// Forget drops every visitor whose remembered user data or visitor id
// matches (an erasure).
func (ids *Identities) Forget(match func(visitor string, id ingest.Identity) bool) int {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	n := 0
	for v, e := range ids.m {
		if match(v, e.Value.(*identityEntry).id) {
			ids.ll.Remove(e)
			delete(ids.m, v)
			n++
		}
	}
	return n
}

func known(id ingest.Identity) bool {
	return id.Email != "" || id.Phone != "" || id.ExternalID != "" || id.FirstName != "" || id.LastName != ""
}
