package store

import (
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// EventBatch is completions encoded as the columns of the events table, in
// eventTable order, ready to be appended column by column to an INSERT.
// A batch is reused across flushes: Reset keeps its capacity, so a writer in
// steady state encodes without allocating.
type EventBatch struct {
	cols []columnData // one per eventTable entry
	rows int

	// arena backs the inner slices of the Array(String) columns, so a row
	// costs no allocation of its own. The driver copies the values into its
	// own buffers on append, so the arena is reused after a flush.
	arena []string
}

// columnData holds one column's values; which slice is used follows the
// column's kind.
type columnData struct {
	strs   []string
	times  []time.Time
	u16    []uint16
	u8     []uint8
	arrays [][]string
}

// Len is the number of rows in the batch.
func (b *EventBatch) Len() int { return b.rows }

// Reset empties the batch and keeps its memory.
func (b *EventBatch) Reset() {
	for i := range b.cols {
		d := &b.cols[i]
		clear(d.strs) // drop references so the completions can be collected
		clear(d.arrays)
		d.strs, d.times, d.u16, d.u8, d.arrays = d.strs[:0], d.times[:0], d.u16[:0], d.u8[:0], d.arrays[:0]
	}
	clear(b.arena)
	b.arena = b.arena[:0]
	b.rows = 0
}

// Encode appends completions as rows. Times outside what DateTime holds
// (1970-01-01 to 2106-02-07) are clamped to its ends, because the driver
// would wrap them silently and one such row must not fail a whole batch
// (the ingest paths refuse such times before they get here).
func (b *EventBatch) Encode(cs []ingest.Completion) {
	if b.cols == nil {
		b.cols = make([]columnData, len(eventTable))
	}
	need := 0
	for i := range cs {
		need += 2*len(cs[i].Props) + len(cs[i].Truncated)
	}
	if free := cap(b.arena) - len(b.arena); free < need {
		// Growing would move the arena and leave earlier rows pointing at
		// the old array, which is fine (they stay valid) but wasteful; size
		// the new one for this call and later ones alike.
		b.arena = make([]string, 0, 2*(len(b.arena)+need))
	}
	for i := range cs {
		c := &cs[i]
		for j := range eventTable {
			col, d := &eventTable[j], &b.cols[j]
			switch col.kind {
			case kindString:
				d.strs = append(d.strs, *col.str(c))
			case kindTime:
				d.times = append(d.times, clampTime(*col.tm(c)))
			case kindMillis:
				d.u16 = append(d.u16, uint16(clampTime(*col.tm(c)).Nanosecond()/int(time.Millisecond)))
			case kindBool:
				v := uint8(0)
				if *col.flag(c) {
					v = 1
				}
				d.u8 = append(d.u8, v)
			case kindPropKeys:
				start := len(b.arena)
				for _, p := range c.Props {
					b.arena = append(b.arena, p.Name)
				}
				d.arrays = append(d.arrays, b.arena[start:len(b.arena):len(b.arena)])
			case kindPropVals:
				start := len(b.arena)
				for _, p := range c.Props {
					b.arena = append(b.arena, p.Value)
				}
				d.arrays = append(d.arrays, b.arena[start:len(b.arena):len(b.arena)])
			case kindStrings:
				start := len(b.arena)
				b.arena = append(b.arena, *col.list(c)...)
				d.arrays = append(d.arrays, b.arena[start:len(b.arena):len(b.arena)])
			}
		}
	}
	b.rows += len(cs)
}

// columns returns the column slices in eventTable order.
func (b *EventBatch) columns() []any {
	out := make([]any, len(eventTable))
	for j := range eventTable {
		d := &b.cols[j]
		switch eventTable[j].kind {
		case kindString:
			out[j] = d.strs
		case kindTime:
			out[j] = d.times
		case kindMillis:
			out[j] = d.u16
		case kindBool:
			out[j] = d.u8
		default:
			out[j] = d.arrays
		}
	}
	return out
}

// column returns the values of the named Array(String) or String column
// (for tests).
func (b *EventBatch) column(name string) any {
	for j := range eventTable {
		if eventTable[j].name == name {
			return b.columns()[j]
		}
	}
	return nil
}

// DateTime is seconds since the epoch in a UInt32.
var (
	minDateTime = time.Unix(0, 0).UTC()
	maxDateTime = time.Unix(1<<32-1, 999_999_999).UTC()
)

func clampTime(t time.Time) time.Time {
	switch {
	case t.Before(minDateTime):
		return minDateTime
	case t.After(maxDateTime):
		return maxDateTime
	}
	return t.UTC()
}

// RejectionBatch is rejections encoded as the columns of the rejections
// table, in rejectionColumns order.
type RejectionBatch struct {
	at                                     []time.Time
	site, source, eventName, reason, field []string
	payload                                []string
}

// Len is the number of rows in the batch.
func (b *RejectionBatch) Len() int { return len(b.at) }

// Reset empties the batch and keeps its memory.
func (b *RejectionBatch) Reset() {
	b.at = b.at[:0]
	for _, s := range []*[]string{&b.site, &b.source, &b.eventName, &b.reason, &b.field, &b.payload} {
		clear(*s)
		*s = (*s)[:0]
	}
}

// Encode appends rejections as rows; payloads are cut to
// ingest.MaxRejectionPayload bytes (on a UTF-8 boundary) whatever the caller
// did.
func (b *RejectionBatch) Encode(rs []ingest.Rejection) {
	for i := range rs {
		r := &rs[i]
		b.at = append(b.at, clampTime(r.At))
		b.site = append(b.site, r.Site)
		b.source = append(b.source, string(r.Source))
		b.eventName = append(b.eventName, r.EventName)
		b.reason = append(b.reason, r.Reason)
		b.field = append(b.field, r.Field)
		b.payload = append(b.payload, cutUTF8(r.Payload, ingest.MaxRejectionPayload))
	}
}

func (b *RejectionBatch) columns() []any {
	return []any{b.at, b.site, b.source, b.eventName, b.reason, b.field, b.payload}
}

// cutUTF8 returns at most n bytes of s, not splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // s[n] continues the character before it
		n--
	}
	return s[:n]
}
