package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unsafe"

	"github.com/tally-analytics/tally/ingest"
)

// Blocks hands a batch's completions to fn in log order, about n at a
// time, and stops at fn's first error, which it returns. fn may modify a
// block but not keep it, its completions or their strings past its
// return: the block is reused, and the strings may share the memory of
// the batch's records, which the next batch overwrites (a string kept
// must be copied). Blocks may be called more than once, also
// concurrently; every call hands the same completions.
type Blocks func(n int, fn func(cs []ingest.Completion) error) error

// Records is a batch of durable log records as they were read, decoded
// only a block at a time (Blocks). A completion costs its encoded size in
// a record until then (178 bytes for a row of BenchmarkImport's file; more
// with a browser's user agent and URLs), against an 800-byte struct plus
// its strings decoded, so a reader can hold batches large enough for few,
// large INSERTs.
type Records struct {
	data  []byte
	spans []recordSpan
	rows  int
	// skip drops a completion as it is decoded (FollowConfig.Skip).
	skip func(index uint64, c *ingest.Completion) bool
	// corrupt is told once of each record that does not decode.
	corrupt func(index uint64, err error)

	mu       sync.Mutex
	reported map[uint64]bool
	blocks   []decodeBlock // decoded blocks for the next passes
}

// decodeBlock is where Blocks decodes: the completions and an arena their
// properties are carved from.
type decodeBlock struct {
	cs    []ingest.Completion
	props []ingest.Prop
}

type recordSpan struct {
	index      uint64
	start, end int
}

// Rows is the number of completions the records hold, as their headers
// count them.
func (r *Records) Rows() int { return r.rows }

// Bytes is the size of the records held.
func (r *Records) Bytes() int { return len(r.data) }

// reset empties r, keeping its buffers.
func (r *Records) reset() {
	r.data, r.spans, r.rows = r.data[:0], r.spans[:0], 0
	clear(r.reported)
}

// add copies a record into r and returns how many completions its header
// counts, or an error (and keeps nothing) when the header does not read.
func (r *Records) add(index uint64, data []byte) (int, error) {
	if len(data) == 0 || data[0] != recordVersion {
		return 0, fmt.Errorf("%w: version %v, want %d", errRecord, first(data), recordVersion)
	}
	count, n := binary.Uvarint(data[1:])
	if n <= 0 || count > uint64(len(data)) {
		return 0, fmt.Errorf("%w: bad completion count", errRecord)
	}
	start := len(r.data)
	r.data = append(r.data, data...)
	r.spans = append(r.spans, recordSpan{index: index, start: start, end: len(r.data)})
	r.rows += int(count)
	return int(count), nil
}

// Blocks decodes the records and hands their completions to fn in blocks
// of about n: a block ends with the record that brings it to n completions
// or more, and the last may be smaller. A block that would hold more than n
// (a record of an import holds 5,000 completions) is handed in equal parts
// of at most n, so the INSERT blocks built from them stay near n rows.
// Completions skip drops are left out. A record that does not decode is
// reported once and passed over, keeping the completions before its
// damage, as DecodeRecord does.
//
// The strings of the completions are slices of the records' memory, not
// copies, and their properties come from the block's arena: a block
// costs no allocation once its slots and arena have grown.
func (r *Records) Blocks(n int, fn func(cs []ingest.Completion) error) error {
	b := r.takeBlock()
	defer func() { r.giveBlock(b) }()
	for _, s := range r.spans {
		b.cs = r.decode(b.cs, s, &b.props)
		if len(b.cs) >= n {
			if err := handParts(b.cs, n, fn); err != nil {
				return err
			}
			// The next record's decoding overwrites each slot whole.
			b.cs, b.props = b.cs[:0], b.props[:0]
		}
	}
	if len(b.cs) > 0 {
		return fn(b.cs)
	}
	return nil
}

// handParts hands cs to fn in the fewest equal parts of at most n.
func handParts(cs []ingest.Completion, n int, fn func(cs []ingest.Completion) error) error {
	parts := (len(cs) + n - 1) / n
	for k := range parts {
		from, to := k*len(cs)/parts, (k+1)*len(cs)/parts
		if err := fn(cs[from:to:to]); err != nil {
			return err
		}
	}
	return nil
}

// All appends every completion of the records to cs. Their strings are
// copies: they may be kept.
func (r *Records) All(cs []ingest.Completion) []ingest.Completion {
	for _, s := range r.spans {
		cs = r.decode(cs, s, nil)
	}
	return cs
}

// decode appends the completions of one record that skip keeps to cs.
// With props, their strings are slices of r's memory and their properties
// are carved from *props; without, they share one copy of the record.
func (r *Records) decode(cs []ingest.Completion, s recordSpan, props *[]ingest.Prop) []ingest.Completion {
	before := len(cs)
	data := r.data[s.start:s.end]
	var str string
	if props == nil {
		str = string(data)
	} else if len(data) > 0 {
		str = unsafe.String(&data[0], len(data))
	}
	cs, err := decodeRecord(cs, data, str, props)
	if err != nil {
		r.report(s.index, err)
	}
	if r.skip != nil {
		kept := compact(cs[before:], func(c *ingest.Completion) bool { return !r.skip(s.index, c) })
		clear(cs[before+len(kept):])
		cs = cs[:before+len(kept)]
	}
	return cs
}

// compact moves the completions keep returns true for to the front of cs,
// in order, and returns them. A completion is a large struct: one that
// stays where it is is not copied.
func compact(cs []ingest.Completion, keep func(c *ingest.Completion) bool) []ingest.Completion {
	j := 0
	for i := range cs {
		if !keep(&cs[i]) {
			continue
		}
		if j != i {
			cs[j] = cs[i]
		}
		j++
	}
	return cs[:j]
}

// maxKeptBlock bounds the capacity of a decoded block a Records keeps for
// its next pass: about 7 MB of completion structs.
const maxKeptBlock = 8192

// takeBlock returns an empty block to decode into. The blocks are kept by
// r rather than a sync.Pool, which the GC empties: under the soft memory
// limit it runs often, and each pass then grew a new block of megabytes.
func (r *Records) takeBlock() decodeBlock {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := len(r.blocks); k > 0 {
		b := r.blocks[k-1]
		r.blocks = r.blocks[:k-1]
		return b
	}
	return decodeBlock{}
}

func (r *Records) giveBlock(b decodeBlock) {
	if cap(b.cs) > maxKeptBlock || cap(b.props) > propArenaSize {
		return
	}
	// The strings of every block this one held: they may be slices of
	// records a reset lets go of.
	clear(b.cs[:cap(b.cs)])
	clear(b.props[:cap(b.props)])
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocks = append(r.blocks, decodeBlock{cs: b.cs[:0], props: b.props[:0]})
}

func (r *Records) report(index uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reported[index] {
		return
	}
	if r.reported == nil {
		r.reported = map[uint64]bool{}
	}
	r.reported[index] = true
	if r.corrupt != nil {
		r.corrupt(index, err)
	}
}
