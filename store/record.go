package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// The durable log's record format: one record holds the completions of one
// accepted request.
//
//	record     = version:byte count:uvarint completion*
//	completion = length:uvarint field* (length counts the fields' bytes)
//	field      = key:uvarint value       key = tag<<3 | wire type
//	value      = uvarint | zigzag varint (wire type 0)
//	           | length:uvarint bytes     (wire type 2)
//
// Tags are the events columns' tags (eventTable) and those of extraFields
// below, the fields a row does not hold but a forward needs. A time is
// milliseconds since the epoch (zigzag varint); a bool is 0 or 1; a string
// is its bytes; Props are a length-prefixed run of name, value strings;
// Truncated is a length-prefixed run of strings. Empty and zero values are
// left out. A decoder skips tags it does not know, so a record written by a
// newer tally with more fields is read by an older one, and the reverse.
const recordVersion = 1

const (
	wireVarint = 0
	wireBytes  = 2
)

// extraFields are what a log record keeps beyond the events columns: the
// user data and consent a forward needs. They never reach ClickHouse.
var extraFields = []struct {
	tag uint64
	str func(*ingest.Completion) *string
}{
	{100, func(c *ingest.Completion) *string { return &c.Identity.Phone }},
	{101, func(c *ingest.Completion) *string { return &c.Identity.ExternalID }},
	{102, func(c *ingest.Completion) *string { return &c.Identity.FirstName }},
	{103, func(c *ingest.Completion) *string { return &c.Identity.LastName }},
	{104, func(c *ingest.Completion) *string { return &c.Identity.City }},
	{105, func(c *ingest.Completion) *string { return &c.Identity.State }},
	{106, func(c *ingest.Completion) *string { return &c.Identity.Zip }},
	{107, func(c *ingest.Completion) *string { return &c.Identity.Country }},
	{108, func(c *ingest.Completion) *string { return &c.Identity.Fbp }},
	{109, func(c *ingest.Completion) *string { return &c.Identity.Fbc }},
}

const (
	tagConsentAnalytics = 120
	tagConsentAds       = 121
)

// AppendRecord appends the log record of cs to dst.
func AppendRecord(dst []byte, cs []ingest.Completion) []byte {
	dst = append(dst, recordVersion)
	dst = binary.AppendUvarint(dst, uint64(len(cs)))
	var body []byte
	for i := range cs {
		body = appendCompletion(body[:0], &cs[i])
		dst = binary.AppendUvarint(dst, uint64(len(body)))
		dst = append(dst, body...)
	}
	return dst
}

func appendCompletion(b []byte, c *ingest.Completion) []byte {
	for i := range eventTable {
		col := &eventTable[i]
		if col.tag == 0 {
			continue
		}
		switch col.kind {
		case kindString:
			b = appendString(b, col.tag, *col.str(c))
		case kindTime:
			if t := *col.tm(c); !t.IsZero() {
				b = binary.AppendUvarint(b, col.tag<<3|wireVarint)
				b = binary.AppendVarint(b, t.UnixMilli())
			}
		case kindBool:
			if *col.flag(c) {
				b = binary.AppendUvarint(b, col.tag<<3|wireVarint)
				b = binary.AppendVarint(b, 1)
			}
		case kindPropKeys:
			if len(c.Props) > 0 {
				n := 0
				for _, p := range c.Props {
					n += stringSize(p.Name) + stringSize(p.Value)
				}
				b = binary.AppendUvarint(b, col.tag<<3|wireBytes)
				b = binary.AppendUvarint(b, uint64(n))
				for _, p := range c.Props {
					b = appendBytes(b, p.Name)
					b = appendBytes(b, p.Value)
				}
			}
		case kindStrings:
			if l := *col.list(c); len(l) > 0 {
				n := 0
				for _, s := range l {
					n += stringSize(s)
				}
				b = binary.AppendUvarint(b, col.tag<<3|wireBytes)
				b = binary.AppendUvarint(b, uint64(n))
				for _, s := range l {
					b = appendBytes(b, s)
				}
			}
		}
	}
	for _, f := range extraFields {
		b = appendString(b, f.tag, *f.str(c))
	}
	for _, f := range []struct {
		tag uint64
		on  bool
	}{{tagConsentAnalytics, c.Consent.Analytics}, {tagConsentAds, c.Consent.Ads}} {
		if f.on {
			b = binary.AppendUvarint(b, f.tag<<3|wireVarint)
			b = binary.AppendVarint(b, 1)
		}
	}
	return b
}

func appendString(b []byte, tag uint64, s string) []byte {
	if s == "" {
		return b
	}
	b = binary.AppendUvarint(b, tag<<3|wireBytes)
	return appendBytes(b, s)
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func stringSize(s string) int { return uvarintSize(uint64(len(s))) + len(s) }

func uvarintSize(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// errRecord reports a record that does not decode.
var errRecord = errors.New("malformed log record")

// DecodeRecord appends the completions of one log record to cs. The
// strings of the completions share one allocation, a copy of data.
func DecodeRecord(cs []ingest.Completion, data []byte) ([]ingest.Completion, error) {
	return decodeRecord(cs, data, string(data), nil) // one copy; every string is a slice of it
}

// decodeRecord is DecodeRecord with the strings of the completions sliced
// from s, which holds the bytes of data, and their properties carved from
// *props when it is not nil (see carveProps).
func decodeRecord(cs []ingest.Completion, data []byte, s string, props *[]ingest.Prop) ([]ingest.Completion, error) {
	if len(data) == 0 || data[0] != recordVersion {
		return cs, fmt.Errorf("%w: version %v, want %d", errRecord, first(data), recordVersion)
	}
	p := 1
	count, n := binary.Uvarint(data[p:])
	if n <= 0 || count > uint64(len(data)) {
		return cs, fmt.Errorf("%w: bad completion count", errRecord)
	}
	p += n
	for i := uint64(0); i < count; i++ {
		size, n := binary.Uvarint(data[p:])
		if n <= 0 || size > uint64(len(data)-p-n) {
			return cs, fmt.Errorf("%w: completion %d: bad length", errRecord, i)
		}
		p += n
		// Decoded in place: a Completion built apart and appended escapes
		// to the heap, one allocation and one copy per completion.
		cs = append(cs, ingest.Completion{})
		if err := decodeCompletion(&cs[len(cs)-1], data[p:p+int(size)], s[p:p+int(size)], props); err != nil {
			cs[len(cs)-1] = ingest.Completion{}
			return cs[:len(cs)-1], fmt.Errorf("%w: completion %d: %w", errRecord, i, err)
		}
		p += int(size)
	}
	if p != len(data) {
		return cs, fmt.Errorf("%w: %d bytes after the last completion", errRecord, len(data)-p)
	}
	return cs, nil
}

func first(b []byte) any {
	if len(b) == 0 {
		return "none"
	}
	return b[0]
}

// byTag finds the column or extra field of a tag.
var byTag = func() map[uint64]int {
	m := map[uint64]int{}
	for i, c := range eventTable {
		if c.tag != 0 {
			m[c.tag] = i
		}
	}
	for i, f := range extraFields {
		m[f.tag] = -1 - i
	}
	return m
}()

// decodeCompletion reads the fields of one completion; b and s are the same
// bytes, s as a string to slice values from.
func decodeCompletion(c *ingest.Completion, b []byte, s string, props *[]ingest.Prop) error {
	p := 0
	for p < len(b) {
		key, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return errors.New("bad field key")
		}
		p += n
		tag, wire := key>>3, key&7
		var num int64
		var val string
		var raw []byte
		switch wire {
		case wireVarint:
			v, n := binary.Varint(b[p:])
			if n <= 0 {
				return fmt.Errorf("field %d: bad number", tag)
			}
			num, p = v, p+n
		case wireBytes:
			l, n := binary.Uvarint(b[p:])
			if n <= 0 || l > uint64(len(b)-p-n) {
				return fmt.Errorf("field %d: bad length", tag)
			}
			p += n
			val, raw = s[p:p+int(l)], b[p:p+int(l)]
			p += int(l)
		default:
			return fmt.Errorf("field %d: unknown wire type %d", tag, wire)
		}
		switch tag {
		case tagConsentAnalytics:
			c.Consent.Analytics = num != 0
			continue
		case tagConsentAds:
			c.Consent.Ads = num != 0
			continue
		}
		i, ok := byTag[tag]
		if !ok {
			continue // a newer tally's field
		}
		if i < 0 {
			*extraFields[-1-i].str(c) = val
			continue
		}
		col := &eventTable[i]
		switch col.kind {
		case kindString:
			*col.str(c) = val
		case kindTime:
			*col.tm(c) = time.UnixMilli(num).UTC()
		case kindBool:
			*col.flag(c) = num != 0
		case kindPropKeys:
			n, err := countStrings(raw)
			if err != nil || n%2 != 0 {
				return fmt.Errorf("field %d: bad properties", tag)
			}
			c.Props = carveProps(props, n/2)
			for j, p := 0, 0; j < len(c.Props); j++ {
				c.Props[j].Name, p = nextString(raw, val, p)
				c.Props[j].Value, p = nextString(raw, val, p)
			}
		case kindStrings:
			strs, err := splitStrings(raw, val)
			if err != nil {
				return fmt.Errorf("field %d: %w", tag, err)
			}
			*col.list(c) = strs
		}
	}
	return nil
}

// carveProps returns room for n properties: from *arena when it is not
// nil (a new arena is started when it is full; what was carved from the
// old one stays valid), else a slice of its own.
func carveProps(arena *[]ingest.Prop, n int) []ingest.Prop {
	if arena == nil {
		return make([]ingest.Prop, n)
	}
	a := *arena
	if cap(a)-len(a) < n {
		a = make([]ingest.Prop, 0, max(n, propArenaSize))
	}
	*arena = a[:len(a)+n]
	return a[len(a) : len(a)+n : len(a)+n]
}

// propArenaSize is the properties an arena holds: those of 2,000
// completions with four each.
const propArenaSize = 8192

// splitStrings reads a run of length-prefixed strings.
func splitStrings(b []byte, s string) ([]string, error) {
	n, err := countStrings(b)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i, p := 0, 0; i < n; i++ {
		out[i], p = nextString(b, s, p)
	}
	return out, nil
}

// countStrings checks a run of length-prefixed strings and counts them.
func countStrings(b []byte) (int, error) {
	count := 0
	for p := 0; p < len(b); count++ {
		l, n := binary.Uvarint(b[p:])
		if n <= 0 || l > uint64(len(b)-p-n) {
			return 0, errors.New("bad string length")
		}
		p += n + int(l)
	}
	return count, nil
}

// nextString is the string at p in a run countStrings has checked (s is
// the run as a string), and the position after it.
func nextString(b []byte, s string, p int) (string, int) {
	l, n := binary.Uvarint(b[p:])
	p += n
	return s[p : p+int(l)], p + int(l)
}
