package rules

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tally-analytics/tally/ingest"
)

// Op is a filter operation, named as in HubSpot's filter vocabulary.
//
// Semantics, identical in the browser mirror (snippet/src/mirror.js):
//
//   - A property that is absent or empty is unknown: is_unknown holds and
//     every other operation, negative ones included, does not (as SQL treats
//     NULL). "form_id is_not_equal_to newsletter" therefore needs a form_id.
//   - string: comparisons ignore case (HubSpot's filters do, and form input
//     arrives in every casing). Case is folded per character with
//     JavaScript's toLowerCase mapping so the browser agrees exactly;
//     matches_regex is case-insensitive too, searches anywhere in the value
//     (anchor with ^ and $), lets . match any character, and accepts only
//     the syntax RE2 and JavaScript read alike (see compileRegex).
//   - number, datetime, date: compared as numbers (datetimes and dates as
//     epoch milliseconds); is_between is inclusive at both ends.
//   - enumeration: a completion may hold several options (stored
//     ';'-separated). is_any_of holds when any selected option is listed,
//     is_none_of when none is; is_equal_to holds when the selection is
//     exactly the value's options ("a;b" in any order); contains holds when
//     every option of the value is selected. Options compare exactly.
//   - bool: is_equal_to and is_not_equal_to with true or false.
type Op string

// The filter operations.
const (
	OpEqual          Op = "is_equal_to"
	OpNotEqual       Op = "is_not_equal_to"
	OpContains       Op = "contains"
	OpNotContains    Op = "does_not_contain"
	OpStartsWith     Op = "starts_with"
	OpEndsWith       Op = "ends_with"
	OpMatchesRegex   Op = "matches_regex"
	OpAnyOf          Op = "is_any_of"
	OpNoneOf         Op = "is_none_of"
	OpGreater        Op = "is_greater_than"
	OpGreaterOrEqual Op = "is_greater_than_or_equal_to"
	OpLess           Op = "is_less_than"
	OpLessOrEqual    Op = "is_less_than_or_equal_to"
	OpBetween        Op = "is_between"
	OpKnown          Op = "is_known"
	OpUnknown        Op = "is_unknown"
)

var allOps = []Op{
	OpEqual, OpNotEqual, OpContains, OpNotContains, OpStartsWith, OpEndsWith,
	OpMatchesRegex, OpAnyOf, OpNoneOf, OpGreater, OpGreaterOrEqual, OpLess,
	OpLessOrEqual, OpBetween, OpKnown, OpUnknown,
}

// opsByType lists the operations each property type allows.
var opsByType = map[ingest.PropertyType][]Op{
	ingest.TypeString: {OpEqual, OpNotEqual, OpContains, OpNotContains, OpStartsWith,
		OpEndsWith, OpMatchesRegex, OpAnyOf, OpNoneOf, OpKnown, OpUnknown},
	ingest.TypeNumber: {OpEqual, OpNotEqual, OpAnyOf, OpNoneOf, OpGreater, OpGreaterOrEqual,
		OpLess, OpLessOrEqual, OpBetween, OpKnown, OpUnknown},
	ingest.TypeDatetime: {OpEqual, OpNotEqual, OpGreater, OpGreaterOrEqual, OpLess,
		OpLessOrEqual, OpBetween, OpKnown, OpUnknown},
	ingest.TypeDate: {OpEqual, OpNotEqual, OpAnyOf, OpNoneOf, OpGreater, OpGreaterOrEqual,
		OpLess, OpLessOrEqual, OpBetween, OpKnown, OpUnknown},
	ingest.TypeEnumeration: {OpEqual, OpNotEqual, OpContains, OpNotContains, OpAnyOf,
		OpNoneOf, OpKnown, OpUnknown},
	ingest.TypeBool: {OpEqual, OpNotEqual, OpKnown, OpUnknown},
}

func knownOp(op Op) bool { return slices.Contains(allOps, op) }

func opAllowed(t ingest.PropertyType, op Op) bool { return slices.Contains(opsByType[t], op) }

// arity is how many values an operation takes: 0 (none), 1 (value), -1 (a
// non-empty values list) or 2 (values: [low, high]).
func arity(op Op) int {
	switch op {
	case OpKnown, OpUnknown:
		return 0
	case OpAnyOf, OpNoneOf:
		return -1
	case OpBetween:
		return 2
	}
	return 1
}

// filter is a Filter compiled against the property's definition.
type filter struct {
	prop  string // the property's or standard field's name
	field bool   // prop is a standard field
	typ   ingest.PropertyType
	op    Op
	strs  []string  // string: folded values; enumeration: options; bool: "true"/"false"
	nums  []float64 // number, datetime, date (epoch ms)
	re    *regexp.Regexp
	sets  [][]string // enumeration is_equal_to/contains: the value's options
	canon []string   // normalised values, for the browser rules
	opts  []string   // enumeration options, for the browser rules
}

// compileFilter checks f against p and compiles it; the error says what is
// wrong with which field ("op", "value", "values[1]").
func compileFilter(f Filter, p *ingest.Property) (*filter, *fieldProblem) {
	if !knownOp(f.Op) {
		return nil, problem("op", "UNKNOWN_OPERATION", "unknown operation %q; use one of %s", f.Op, joinOps(allOps))
	}
	if !opAllowed(p.Type, f.Op) {
		return nil, problem("op", "OPERATION_NOT_FOR_TYPE", "operation %s is not valid for %s property %q; valid: %s", f.Op, p.Type, p.Name, joinOps(opsByType[p.Type]))
	}
	var raw []string
	var field func(i int) string
	switch n := arity(f.Op); n {
	case 0:
		if f.Value != nil || len(f.Values) > 0 {
			return nil, problem("value", "UNEXPECTED_VALUE", "%s takes no value", f.Op)
		}
	case 1:
		if len(f.Values) > 0 {
			return nil, problem("values", "UNEXPECTED_VALUE", "%s takes one value; write value: instead of values:", f.Op)
		}
		if f.Value == nil {
			return nil, problem("value", "MISSING_VALUE", "%s needs a value", f.Op)
		}
		raw = []string{*f.Value}
		field = func(int) string { return "value" }
	default:
		if f.Value != nil {
			return nil, problem("value", "UNEXPECTED_VALUE", "%s takes a list: write values: [...] instead of value:", f.Op)
		}
		if n == 2 && len(f.Values) != 2 {
			return nil, problem("values", "INVALID_VALUE", "%s needs values: [low, high]; got %d values", f.Op, len(f.Values))
		}
		if len(f.Values) == 0 {
			return nil, problem("values", "MISSING_VALUE", "%s needs a non-empty values list", f.Op)
		}
		raw = f.Values
		field = func(i int) string { return fmt.Sprintf("values[%d]", i) }
	}
	c := &filter{prop: p.Name, typ: p.Type, op: f.Op, opts: p.Options}
	for i, v := range raw {
		canon, err := p.Normalize(v)
		if err == nil && canon == "" {
			err = fmt.Errorf("empty value; use is_unknown to match a missing value")
		}
		if err != nil {
			return nil, problem(field(i), "INVALID_VALUE", "value for %s property %q: %v", p.Type, p.Name, err)
		}
		c.canon = append(c.canon, canon)
		switch p.Type {
		case ingest.TypeString:
			if f.Op == OpMatchesRegex {
				re, js, err := compileRegex(canon)
				if err != nil {
					return nil, problem(field(i), "INVALID_REGEX", "%v", err)
				}
				c.re = re
				c.canon[i] = js // the browser's spelling
			}
			c.strs = append(c.strs, fold(canon))
		case ingest.TypeNumber, ingest.TypeDatetime, ingest.TypeDate:
			n, _ := typedNumber(p.Type, canon)
			c.nums = append(c.nums, n)
		case ingest.TypeEnumeration:
			opts := strings.Split(canon, ";")
			if f.Op == OpEqual || f.Op == OpNotEqual || f.Op == OpContains || f.Op == OpNotContains {
				c.sets = append(c.sets, opts)
			}
			c.strs = append(c.strs, opts...)
		case ingest.TypeBool:
			c.strs = append(c.strs, canon)
		}
	}
	if f.Op == OpBetween && c.nums[0] > c.nums[1] {
		return nil, problem("values", "INVALID_VALUE", "is_between low %s is above high %s", c.canon[0], c.canon[1])
	}
	return c, nil
}

// compileRegex compiles a matches_regex pattern for Go, case-insensitive
// and with . matching every character, and returns the same pattern for
// JavaScript's RegExp with the flags "isu" (mirror.js). It refuses the
// syntax the two engines read differently: inline flags, \A \z \Q \C,
// POSIX classes, escapes RE2 accepts and the u flag does not (\a, octal,
// \x{…}, escaped letters and punctuation without meaning), literal { and }
// and a ] first in a class. \s, which JavaScript widens to every Unicode
// space, is spelled out as RE2's [\t\n\f\r ] for the browser.
func compileRegex(p string) (*regexp.Regexp, string, error) {
	for _, bad := range []struct{ s, why string }{
		{`(?i`, "inline flags"}, {`(?s`, "inline flags"}, {`(?m`, "inline flags"}, {`(?U`, "inline flags"},
		{`(?-`, "inline flags"}, {`(?P<`, "(?P<name>) groups (write (?<name>))"},
		{`\A`, `\A`}, {`\z`, `\z`}, {`\Q`, `\Q…\E`}, {`\C`, `\C`}, {`[[:`, "POSIX classes like [[:alpha:]]"},
	} {
		if strings.Contains(p, bad.s) {
			return nil, "", fmt.Errorf("regex %q uses %s, which browsers do not read the same way; matching already ignores case", p, bad.why)
		}
	}
	var js strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '[' && !inClass:
			inClass = true
			j := i + 1
			if j < len(p) && p[j] == '^' {
				j++
			}
			if j < len(p) && p[j] == ']' {
				return nil, "", fmt.Errorf("regex %q: escape a ] that starts a class (\\])", p)
			}
		case c == ']' && inClass:
			inClass = false
		case (c == '{' || c == '}') && !inClass:
			n := quantifier.FindString(p[i:])
			if c == '}' || n == "" {
				return nil, "", fmt.Errorf("regex %q: escape a literal %c (\\%c); browsers refuse it", p, c, c)
			}
			js.WriteString(n)
			i += len(n) - 1
			continue
		case c == '\\' && i+1 < len(p):
			e := p[i+1]
			i++
			switch {
			case e == 's' && inClass:
				js.WriteString(`\t\n\f\r `)
				continue
			case e == 's':
				js.WriteString(`[\t\n\f\r ]`)
				continue
			case e == 'S' && inClass:
				return nil, "", fmt.Errorf("regex %q: \\S inside a class is read differently by browsers; write [^\\t\\n\\f\\r ] or restructure", p)
			case e == 'S':
				js.WriteString(`[^\t\n\f\r ]`)
				continue
			case strings.IndexByte(`^$\.*+?()[]{}|/`, e) >= 0, strings.IndexByte("dDwWbBfnrtv", e) >= 0:
			case e == '-' && inClass:
			case e == 'p' || e == 'P':
				end := strings.IndexByte(p[i+1:], '}')
				if i+1 >= len(p) || p[i+1] != '{' || end < 0 {
					return nil, "", fmt.Errorf("regex %q: write \\p{L}, not \\pL", p)
				}
				js.WriteString(p[i-1 : i+2+end]) // \p{…} as written
				i += 1 + end
				continue
			case e == 'x':
				if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
					return nil, "", fmt.Errorf("regex %q: write \\x with exactly two hex digits (\\x41)", p)
				}
			default:
				return nil, "", fmt.Errorf("regex %q: the escape \\%c is not read the same way by browsers; escape only regex syntax characters", p, e)
			}
			js.WriteByte('\\')
			c = e
		}
		js.WriteByte(c)
	}
	re, err := regexp.Compile("(?is)" + p)
	if err != nil {
		return nil, "", fmt.Errorf("regex %q does not compile: %w", p, err)
	}
	return re, js.String(), nil
}

// quantifier is a counted repetition: {n}, {n,} or {n,m}.
var quantifier = regexp.MustCompile(`^\{[0-9]+(,[0-9]*)?\}`)

// typedNumber reads a stored number, datetime (epoch ms) or date
// (YYYY-MM-DD, as epoch ms of its midnight UTC).
func typedNumber(t ingest.PropertyType, v string) (float64, bool) {
	switch t {
	case ingest.TypeNumber:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	case ingest.TypeDatetime:
		ms, err := strconv.ParseInt(v, 10, 64)
		return float64(ms), err == nil
	case ingest.TypeDate:
		d, err := time.Parse("2006-01-02", v)
		return float64(d.UnixMilli()), err == nil
	}
	return 0, false
}

// match reports whether the stored value v (ok false: absent) satisfies f.
func (f *filter) match(v string, ok bool) bool {
	known := ok && v != ""
	switch f.op {
	case OpKnown:
		return known
	case OpUnknown:
		return !known
	}
	if !known {
		return false
	}
	switch f.typ {
	case ingest.TypeString:
		if f.op == OpMatchesRegex {
			return f.re.MatchString(v) // the regex ignores case itself
		}
		return f.matchString(fold(v))
	case ingest.TypeNumber, ingest.TypeDatetime, ingest.TypeDate:
		n, ok := typedNumber(f.typ, v)
		return ok && f.matchNumber(n)
	case ingest.TypeEnumeration:
		return f.matchEnum(strings.Split(v, ";"))
	case ingest.TypeBool:
		eq := v == f.strs[0]
		return eq == (f.op == OpEqual)
	}
	return false
}

func (f *filter) matchString(v string) bool {
	switch f.op {
	case OpEqual:
		return v == f.strs[0]
	case OpNotEqual:
		return v != f.strs[0]
	case OpContains:
		return strings.Contains(v, f.strs[0])
	case OpNotContains:
		return !strings.Contains(v, f.strs[0])
	case OpStartsWith:
		return strings.HasPrefix(v, f.strs[0])
	case OpEndsWith:
		return strings.HasSuffix(v, f.strs[0])
	case OpAnyOf:
		return slices.Contains(f.strs, v)
	case OpNoneOf:
		return !slices.Contains(f.strs, v)
	}
	return false
}

func (f *filter) matchNumber(n float64) bool {
	switch f.op {
	case OpEqual:
		return n == f.nums[0]
	case OpNotEqual:
		return n != f.nums[0]
	case OpAnyOf:
		return slices.Contains(f.nums, n)
	case OpNoneOf:
		return !slices.Contains(f.nums, n)
	case OpGreater:
		return n > f.nums[0]
	case OpGreaterOrEqual:
		return n >= f.nums[0]
	case OpLess:
		return n < f.nums[0]
	case OpLessOrEqual:
		return n <= f.nums[0]
	case OpBetween:
		return f.nums[0] <= n && n <= f.nums[1]
	}
	return false
}

func (f *filter) matchEnum(sel []string) bool {
	anyListed := func() bool {
		for _, s := range sel {
			if slices.Contains(f.strs, s) {
				return true
			}
		}
		return false
	}
	switch f.op {
	case OpEqual:
		return sameSet(sel, f.sets[0])
	case OpNotEqual:
		return !sameSet(sel, f.sets[0])
	case OpContains:
		return containsAll(sel, f.sets[0])
	case OpNotContains:
		return !containsAll(sel, f.sets[0])
	case OpAnyOf:
		return anyListed()
	case OpNoneOf:
		return !anyListed()
	}
	return false
}

func containsAll(sel, want []string) bool {
	for _, w := range want {
		if !slices.Contains(sel, w) {
			return false
		}
	}
	return true
}

func sameSet(a, b []string) bool { return containsAll(a, b) && containsAll(b, a) }

// fold lowercases s one character at a time with JavaScript's
// toLowerCase mapping: Go's simple lowercase mapping, except that İ
// (U+0130) becomes i followed by U+0307, the one unconditional full
// mapping in Unicode's SpecialCasing. Per character, so context rules such
// as the final sigma do not apply; mirror.js folds the same way.
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == 'İ' {
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func joinOps(ops []Op) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// fieldProblem is a config problem relative to the thing being compiled.
type fieldProblem struct {
	field, code, msg string
}

func problem(field, code, format string, args ...any) *fieldProblem {
	return &fieldProblem{field: field, code: code, msg: fmt.Sprintf(format, args...)}
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
