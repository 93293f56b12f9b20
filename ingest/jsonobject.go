package ingest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file walks JSON that encoding/json has already validated, for the
// snippet batch: its body, each completion in it, and their property and
// trait objects. Decoding those with json.Unmarshal cost a validation pass
// per completion on top of the body's, reflection per field, and a map, a
// copy and a reflect allocation per property, only for the maps to be
// ranged over once. The walk finds where each value ends and keeps only the
// text the parser uses; strings are unescaped by encoding/json itself
// whenever they hold an escape. A fuzz test holds the walk to
// encoding/json's own decoding.

var (
	errNotObject = errors.New("not a JSON object")
	errNotArray  = errors.New("not a JSON array")
	errMalformed = errors.New("malformed JSON")
	errWrongType = errors.New("JSON value of the wrong type")
)

// scalarMember is one member of an object whose values are read as text;
// OK is false when the value has no text form (an object, say).
type scalarMember struct {
	Name  string
	Value string
	OK    bool
}

// decodeMembers decodes an object field whose values are read as text
// with read, the way a map field decodes: null clears the list, an object
// adds its members to it (so a key repeated in the body merges), and
// anything else is an error.
func decodeMembers(list *[]scalarMember, data []byte, read func(json.RawMessage) (string, bool)) error {
	if string(data) == "null" {
		*list = nil
		return nil
	}
	if *list == nil {
		// Room for a handful of members: what most completions send, in
		// one allocation instead of three growing ones.
		*list = make([]scalarMember, 0, 4)
	}
	return objectMembers(data, func(key, value []byte) error {
		name, err := unquote(key)
		if err != nil {
			return err
		}
		s, ok := read(value)
		*list = append(*list, scalarMember{Name: name, Value: s, OK: ok})
		return nil
	})
}

// lastPerName returns the members sorted by name with one per name, the
// last sent, which is what a map would have held. It reorders list.
func lastPerName(list []scalarMember) []scalarMember {
	slices.SortStableFunc(list, func(a, b scalarMember) int { return strings.Compare(a.Name, b.Name) })
	n := 0
	for i := range list {
		if i+1 < len(list) && list[i+1].Name == list[i].Name {
			continue
		}
		list[n] = list[i]
		n++
	}
	return list[:n]
}

// objectMembers calls fn with the raw (quoted) key and the raw value of
// each member of the JSON object data, in order, repeated keys included,
// and stops at fn's first error. data is meant to be JSON encoding/json
// has already checked, so the walk only finds where each part ends;
// anything malformed is still an error, never a panic. key and value alias
// data.
func objectMembers(data []byte, fn func(key, value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil
	}
	for i < len(data) {
		if data[i] != '"' {
			return errMalformed
		}
		end := valueEnd(data, i)
		if end < 0 {
			return errMalformed
		}
		key := data[i:end]
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return errMalformed
		}
		i = skipSpace(data, i+1)
		end = valueEnd(data, i)
		if end < 0 {
			return errMalformed
		}
		if err := fn(key, data[i:end]); err != nil {
			return err
		}
		if i = skipSpace(data, end); i >= len(data) {
			return errMalformed
		}
		switch data[i] {
		case '}':
			return nil
		case ',':
			i = skipSpace(data, i+1)
		default:
			return errMalformed
		}
	}
	return errMalformed
}

// arrayElements calls fn with each element of the JSON array data, in
// order, under the same terms as objectMembers.
func arrayElements(data []byte, fn func(value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return errNotArray
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return nil
	}
	for i < len(data) {
		end := valueEnd(data, i)
		if end < 0 {
			return errMalformed
		}
		if err := fn(data[i:end]); err != nil {
			return err
		}
		if i = skipSpace(data, end); i >= len(data) {
			return errMalformed
		}
		switch data[i] {
		case ']':
			return nil
		case ',':
			i = skipSpace(data, i+1)
		default:
			return errMalformed
		}
	}
	return errMalformed
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value that starts at
// data[i], or -1 when none does or it does not end within data.
func valueEnd(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		for j := i + 1; j < len(data); j++ {
			switch data[j] {
			case '\\':
				j++ // the escaped byte cannot end the string
			case '"':
				return j + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			case '"':
				end := valueEnd(data, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			}
		}
		return -1
	case ',', ':', '}', ']', ' ', '\t', '\n', '\r':
		return -1
	}
	// A number, true, false or null: it runs to the next delimiter.
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}

// unquote decodes a JSON string literal as encoding/json does.
func unquote(raw []byte) (string, error) {
	if s, ok := plainString(raw); ok {
		return s, nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// plainString decodes a JSON string literal that needs no unescaping: no
// backslash, no control character and valid UTF-8, which is what almost
// every value is. encoding/json returns exactly the bytes between the
// quotes for it; a full Unmarshal per value costs more than the value.
// ok is false for anything else, which the caller decodes the long way.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, b := range in {
		if b < ' ' || b == '"' || b == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// decodeString decodes a JSON value into a string field as encoding/json
// does: a string is unescaped, null leaves the field as it is, and
// anything else is an error.
func decodeString(value []byte, dst *string) error {
	switch value[0] {
	case '"':
		s, err := unquote(value)
		if err != nil {
			return err
		}
		*dst = s
		return nil
	case 'n':
		return nil
	}
	return errWrongType
}

// optBool is a *bool field without the allocation: set is false when the
// value was absent or null.
type optBool struct{ set, v bool }

// decode decodes a JSON value into the field as encoding/json decodes
// into a *bool: null unsets it, true and false set it, anything else is an
// error.
func (b *optBool) decode(value []byte) error {
	switch string(value) {
	case "null":
		*b = optBool{}
	case "true":
		*b = optBool{set: true, v: true}
	case "false":
		*b = optBool{set: true}
	default:
		return errWrongType
	}
	return nil
}

// fieldKey is the key of a member, raw and quoted, folded the way
// encoding/json folds a key to match it against a struct's field names
// (their folded forms are their upper-case forms: "ID", "NAME", …). buf
// keeps short keys off the heap.
func fieldKey(buf *[32]byte, key []byte) []byte {
	in := key[1 : len(key)-1]
	if slices.Contains(in, '\\') {
		s, err := unquote(key)
		if err != nil {
			return nil
		}
		in = []byte(s)
	}
	return appendFoldedName(buf[:0], in)
}

// appendFoldedName and foldRune are encoding/json's (fold.go), so that a
// key selects the same field here as it did there.
func appendFoldedName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		// Handle single-byte ASCII.
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		// Handle multi-byte Unicode.
		r, n := utf8.DecodeRune(in[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out
}

// foldRune returns the smallest rune for all runes in the same fold set.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
