package ingest

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of §4, counted in Unicode characters.
const (
	MaxEventNameLen       = 50
	MaxLabelLen           = 100
	MaxPropertyNameLen    = 50
	MaxPropertiesPerEvent = 50  // custom properties per definition
	MaxPropsPerCompletion = 50  // properties per completion
	MaxValueLen           = 256 // property value
	MaxLongValueLen       = 1024
	MaxBatch              = 500
	MaxFutureSkew         = 5 * time.Minute
)

// PropertyType is the type of a defined property.
type PropertyType string

const (
	TypeString      PropertyType = "string"
	TypeNumber      PropertyType = "number"
	TypeDatetime    PropertyType = "datetime"
	TypeDate        PropertyType = "date"
	TypeEnumeration PropertyType = "enumeration"
	TypeBool        PropertyType = "bool"
)

var propertyTypes = []PropertyType{TypeString, TypeNumber, TypeDatetime, TypeDate, TypeEnumeration, TypeBool}

// Definition is one event definition from the config.
type Definition struct {
	Name        string     `yaml:"name"`
	Label       string     `yaml:"label"`
	Description string     `yaml:"description"`
	Object      string     `yaml:"object"` // contact | company | deal | ticket | custom object name
	Properties  []Property `yaml:"properties"`
	Capture     []Capture  `yaml:"capture"`
	// MatchingProperty names a property whose value identifies the record
	// (HubSpot's customMatchingId); it ranks above objectId, email and utk.
	MatchingProperty string `yaml:"matching_property"`
}

// Property is one typed property of a definition.
type Property struct {
	Name        string       `yaml:"name"`
	Label       string       `yaml:"label"`
	Description string       `yaml:"description"`
	Type        PropertyType `yaml:"type"`
	Options     []string     `yaml:"options"`
}

// Capture is a no-code trigger the snippet runs: exactly one of Clicked (a CSS
// selector) or Visited (a URL path pattern, * matching any run of characters).
type Capture struct {
	Clicked string `yaml:"clicked"`
	Visited string `yaml:"visited"`
}

// FieldError is one problem with one field, named by its path
// ("inputs[3].properties.year", "events[0].properties[2].name").
type FieldError struct {
	Path    string
	Code    string // e.g. VALUE_TOO_LONG, UNKNOWN_PROPERTY, INVALID_NAME
	Message string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// fieldErr builds an error about input. Its path and message may quote
// what the client sent, so both are bounded (maxEchoPath, maxEchoMessage):
// a megabyte-long property name must not come back as a megabyte-long
// answer or rejection row.
func fieldErr(path, code, format string, args ...any) FieldError {
	return FieldError{Path: echo(path, maxEchoPath), Code: code, Message: echo(fmt.Sprintf(format, args...), maxEchoMessage)}
}

const (
	maxEchoPath    = 256
	maxEchoMessage = 512
)

// echo returns s cut to n characters, with an ellipsis when cut.
func echo(s string, n int) string {
	if len(s) <= n { // bytes ≥ characters: short enough either way
		return s
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return truncateRunes(s, n-1) + "…"
}

// MinOccurredAt is the earliest occurred time tally stores: ClickHouse's
// DateTime starts at the Unix epoch, and an earlier time would be stored as
// 1970-01-01 without a word.
var MinOccurredAt = time.Unix(0, 0).UTC()

var internalName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// PageViewEvent is the built-in event the snippet records for page views.
const PageViewEvent = "page_view"

// Property returns the defined property with that name.
func (d *Definition) Property(name string) (*Property, bool) {
	for i := range d.Properties {
		if d.Properties[i].Name == name {
			return &d.Properties[i], true
		}
	}
	return nil, false
}

// Check validates a definition against the limits of §4; path is where it
// sits in the config (e.g. "events[2]").
func (d *Definition) Check(path string) []FieldError {
	var errs []FieldError
	errs = append(errs, checkName(path+".name", "event", d.Name, MaxEventNameLen)...)
	if d.Name == PageViewEvent {
		errs = append(errs, fieldErr(path+".name", "RESERVED_NAME", "event name %q is built in and cannot be redefined", d.Name))
	}
	if n := utf8.RuneCountInString(d.Label); n > MaxLabelLen {
		errs = append(errs, fieldErr(path+".label", "LABEL_TOO_LONG", "label is %d characters; the limit is %d", n, MaxLabelLen))
	}
	if len(d.Properties) > MaxPropertiesPerEvent {
		errs = append(errs, fieldErr(path+".properties", "TOO_MANY_PROPERTIES", "event %q defines %d properties; the limit is %d", d.Name, len(d.Properties), MaxPropertiesPerEvent))
	}
	seen := map[string]int{}
	for i, p := range d.Properties {
		pp := fmt.Sprintf("%s.properties[%d]", path, i)
		errs = append(errs, checkName(pp+".name", "property", p.Name, MaxPropertyNameLen)...)
		if j, dup := seen[p.Name]; dup && p.Name != "" {
			errs = append(errs, fieldErr(pp+".name", "DUPLICATE_PROPERTY", "property %q is already defined at properties[%d]", p.Name, j))
		}
		seen[p.Name] = i
		if strings.HasPrefix(p.Name, "hs_") {
			errs = append(errs, fieldErr(pp+".name", "RESERVED_NAME", "property names starting with hs_ are reserved for standard properties"))
		}
		errs = append(errs, p.check(pp)...)
	}
	if d.MatchingProperty != "" {
		if _, ok := d.Property(d.MatchingProperty); !ok {
			errs = append(errs, fieldErr(path+".matching_property", "UNKNOWN_PROPERTY", "matching_property %q is not a property of event %q", d.MatchingProperty, d.Name))
		}
	}
	for i, c := range d.Capture {
		cp := fmt.Sprintf("%s.capture[%d]", path, i)
		if (c.Clicked == "") == (c.Visited == "") {
			errs = append(errs, fieldErr(cp, "INVALID_CAPTURE", "a capture trigger needs exactly one of clicked (CSS selector) or visited (URL path pattern)"))
		}
		if c.Visited != "" && !strings.HasPrefix(c.Visited, "/") && !strings.Contains(c.Visited, "://") {
			errs = append(errs, fieldErr(cp+".visited", "INVALID_CAPTURE", "visited pattern %q must start with / or be a full URL", c.Visited))
		}
	}
	return errs
}

func (p *Property) check(path string) []FieldError {
	var errs []FieldError
	known := false
	for _, t := range propertyTypes {
		known = known || p.Type == t
	}
	if !known {
		errs = append(errs, fieldErr(path+".type", "INVALID_TYPE", "unknown property type %q; use one of string, number, datetime, date, enumeration, bool", p.Type))
	}
	if p.Type == TypeEnumeration {
		if len(p.Options) == 0 {
			errs = append(errs, fieldErr(path+".options", "MISSING_OPTIONS", "enumeration property %q needs at least one option", p.Name))
		}
		for i, o := range p.Options {
			if o == "" || strings.Contains(o, ";") {
				errs = append(errs, fieldErr(fmt.Sprintf("%s.options[%d]", path, i), "INVALID_OPTION", "option %q must be non-empty and must not contain ';' (the multi-value separator)", o))
			}
		}
	} else if len(p.Options) > 0 {
		errs = append(errs, fieldErr(path+".options", "UNEXPECTED_OPTIONS", "options are only for enumeration properties; %q is %s", p.Name, p.Type))
	}
	if n := utf8.RuneCountInString(p.Label); n > MaxPropertyNameLen {
		errs = append(errs, fieldErr(path+".label", "LABEL_TOO_LONG", "property label is %d characters; the limit is %d", n, MaxPropertyNameLen))
	}
	return errs
}

func checkName(path, what, name string, max int) []FieldError {
	switch n := utf8.RuneCountInString(name); {
	case n == 0:
		return []FieldError{fieldErr(path, "MISSING_NAME", "%s name is required", what)}
	case n > max:
		return []FieldError{fieldErr(path, "NAME_TOO_LONG", "%s name %q is %d characters; the limit is %d", what, name, n, max)}
	case !internalName.MatchString(name):
		return []FieldError{fieldErr(path, "INVALID_NAME", "%s name %q must start with a letter and use only a-z, 0-9 and _", what, name)}
	}
	return nil
}

// MaxLen is the longest value the property may hold: 1,024 characters when
// its name contains url, referrer or link, else 256.
func MaxLen(propertyName string) int {
	if strings.Contains(propertyName, "url") || strings.Contains(propertyName, "referrer") || strings.Contains(propertyName, "link") {
		return MaxLongValueLen
	}
	return MaxValueLen
}

// Normalize checks a raw string value against the property's type and returns
// its stored form: numbers in shortest decimal form, datetimes as epoch
// milliseconds, dates as YYYY-MM-DD, bools as true/false, enumerations as the
// options given (joined by ';'). Length limits are checked by the caller.
func (p *Property) Normalize(v string) (string, error) {
	switch p.Type {
	case TypeString:
		return v, nil
	case TypeNumber:
		// Go's ParseFloat also takes "1_000", "0x1p4", "Inf" and "NaN";
		// the contract is a finite decimal, so its shape is checked first.
		t := strings.TrimSpace(v)
		if !decimalShaped(t) {
			return "", fmt.Errorf("%q is not a finite decimal number", v)
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("%q is not a finite decimal number", v)
		}
		// Most numbers arrive already in their stored form ("2020"):
		// keep the caller's string rather than allocate its copy.
		var buf [32]byte
		if out := strconv.AppendFloat(buf[:0], f, 'f', -1, 64); string(out) != t {
			return string(out), nil
		}
		return t, nil
	case TypeDatetime:
		t, err := ParseTime(v)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(t.UnixMilli(), 10), nil
	case TypeDate:
		t, err := ParseTime(v)
		if err != nil {
			return "", err
		}
		if t.Hour() != 0 || t.Minute() != 0 || t.Second() != 0 || t.Nanosecond() != 0 {
			return "", fmt.Errorf("%q is not a date (ISO date or epoch milliseconds at midnight UTC)", v)
		}
		return t.Format("2006-01-02"), nil
	case TypeBool:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return "true", nil
		case "false":
			return "false", nil
		}
		return "", fmt.Errorf("%q is not a bool (true or false)", v)
	case TypeEnumeration:
		parts := strings.Split(v, ";")
		for _, part := range parts {
			ok := false
			for _, o := range p.Options {
				ok = ok || part == o
			}
			if !ok {
				return "", fmt.Errorf("%q is not one of the options %s", part, strings.Join(p.Options, ", "))
			}
		}
		return v, nil
	}
	return "", fmt.Errorf("property has unknown type %q", p.Type)
}

// ParseTime reads epoch milliseconds or ISO 8601 (RFC 3339, with or without
// fractional seconds or zone, or a bare date) and returns UTC time truncated
// to milliseconds.
func ParseTime(v string) (time.Time, error) {
	s := strings.TrimSpace(v)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time")
	}
	// ParseInt is tried only on what it could accept: on an ISO time it
	// fails, and its error costs allocations on every call.
	if integerShaped(s) {
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			if ms < 0 || ms > 253402300799999 { // 9999-12-31T23:59:59.999Z
				return time.Time{}, fmt.Errorf("%q is out of range for epoch milliseconds", v)
			}
			return time.UnixMilli(ms).UTC(), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Truncate(time.Millisecond), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not epoch milliseconds or ISO 8601", v)
}

// decimalShaped reports whether s is a decimal number: an optional sign,
// digits with at most one point among or around them, and an optional
// exponent ("-12", "3.5", ".5", "5.", "1e-3").
func decimalShaped(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits, point, i := 0, false, 0
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !point:
			point = true
		default:
			goto exponent
		}
	}
exponent:
	if digits == 0 {
		return false
	}
	if i == len(s) {
		return true
	}
	if s[i] != 'e' && s[i] != 'E' {
		return false
	}
	return integerShaped(s[i+1:])
}

// integerShaped reports whether s is an optional sign and decimal digits,
// the only strings strconv.ParseInt(s, 10, 64) can accept.
func integerShaped(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
