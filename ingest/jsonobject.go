package ingest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
)

// This file reads the members of a JSON object one by one, for the
// property and trait objects of a completion. encoding/json would decode
// them into a map[string]json.RawMessage: a map, a copy of every value and
// a reflect allocation per member, only for the map to be ranged over once
// and thrown away. Here each value is read in place and only its text is
// kept.

var (
	errNotObject = errors.New("not a JSON object")
	errMalformed = errors.New("malformed JSON object")
)

// scalarMember is one member of an object whose values are read as text;
// OK is false when the value has no text form (an object, say).
type scalarMember struct {
	Name  string
	Value string
	OK    bool
}

// decodeMembers is the UnmarshalJSON of an object field read as text with
// read. It decodes the way a map field does: null clears the list, an
// object adds its members to it (so a key repeated in the body merges), and
// anything else is an error.
func decodeMembers(list *[]scalarMember, data []byte, read func(json.RawMessage) (string, bool)) error {
	if string(data) == "null" {
		*list = nil
		return nil
	}
	return objectMembers(data, func(key string, value []byte) {
		s, ok := read(value)
		*list = append(*list, scalarMember{Name: key, Value: s, OK: ok})
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

// objectMembers calls fn with the key and the raw value of each member of
// the JSON object data, in order, repeated keys included. Keys are
// unescaped exactly as encoding/json unescapes map keys. data is meant to
// be a value encoding/json has already checked (UnmarshalJSON is only
// handed complete, valid values), so the scan below only finds where each
// part ends; anything malformed is still an error, never a panic. value
// aliases data and must be copied to be kept.
func objectMembers(data []byte, fn func(key string, value []byte)) error {
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
		key, ok := plainString(data[i:end])
		if !ok {
			if err := json.Unmarshal(data[i:end], &key); err != nil {
				return err
			}
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return errMalformed
		}
		i = skipSpace(data, i+1)
		end = valueEnd(data, i)
		if end < 0 {
			return errMalformed
		}
		fn(key, data[i:end])
		i = skipSpace(data, end)
		if i >= len(data) {
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

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just past the JSON value that starts at
// data[i], or -1 when it does not end within data.
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
	case ',', ':', '}', ']':
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
