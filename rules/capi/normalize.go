package capi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Field names one hashed user_data key, spelled as Meta spells it.
type Field string

// The hashed customer-information keys.
const (
	FieldEmail       Field = "em"
	FieldPhone       Field = "ph"
	FieldFirstName   Field = "fn"
	FieldLastName    Field = "ln"
	FieldGender      Field = "ge"
	FieldDateOfBirth Field = "db"
	FieldCity        Field = "ct"
	FieldState       Field = "st"
	FieldZip         Field = "zp"
	FieldCountry     Field = "country"
	FieldExternalID  Field = "external_id"
)

// ErrInvalidValue is wrapped by NormalizeField when a value cannot be
// normalised into anything Meta could match.
var ErrInvalidValue = errors.New("invalid value")

// HashValue is SHA-256 of s as lowercase hex, the form Meta expects.
func HashValue(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// hashField normalises and hashes one raw value; ok is false when the
// field must be left out.
func hashField(f Field, raw, country string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", false
	}
	if isHashed(raw) {
		return strings.ToLower(raw), true
	}
	n, err := NormalizeField(f, raw, country)
	if err != nil || n == "" {
		return "", false
	}
	return HashValue(n), true
}

// isHashed reports whether s is already a SHA-256 hex digest (either
// case). 32-hex (MD5) values are deliberately NOT passed through, unlike
// Meta's SDK: Meta documents SHA-256 only.
func isHashed(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// NormalizeField turns a raw value into the string Meta hashes, following
// Meta's customer-information-parameters page where it is explicit and
// Meta's Node SDK where the page is silent. country is the person's
// normalised ISO alpha-2 country ("" when unknown); it decides the phone
// country code, US zip truncation and US/CA state-name mapping.
//
// Where tally follows Meta's documentation rather than the SDK:
//   - ph: every non-digit is removed (the SDK keeps dots) and a national
//     number gets the country's calling code (the SDK never adds one);
//   - fn, ln, ct: punctuation is removed (the SDK keeps apostrophes);
//   - st: US and Canadian names map to their 2-letter codes;
//   - db: parsed into YYYYMMDD (the SDK hashes "1990-01-31" as written);
//   - country: names and alpha-3 codes map to alpha-2 (the SDK rejects them);
//   - zp: a dash is removed, not cut at, outside the US.
//
// Lowercasing follows JavaScript's toLowerCase (İ → i̇, word-final Σ → ς),
// as both Meta's SDK and the browser pixel do.
func NormalizeField(f Field, raw, country string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", fmt.Errorf("%s: empty: %w", f, ErrInvalidValue)
	}
	var (
		v  string
		ok bool
	)
	switch f {
	case FieldEmail:
		v = lowerJS(raw)
		ok = validEmail(v)
	case FieldPhone:
		v, ok = normalizePhone(raw, country)
	case FieldFirstName, FieldLastName:
		v = normalizeName(raw)
		ok = v != ""
	case FieldGender:
		v, ok = normalizeGender(raw)
	case FieldDateOfBirth:
		v, ok = normalizeDate(raw)
	case FieldCity:
		v = lettersOnly(lowerJS(raw))
		ok = v != ""
	case FieldState:
		v, ok = normalizeState(raw, country)
	case FieldZip:
		v, ok = normalizeZip(raw, country)
	case FieldCountry:
		v, ok = normalizeCountry(raw)
	case FieldExternalID:
		v = lowerJS(raw)
		ok = true
	default:
		return "", fmt.Errorf("unknown field %q", f)
	}
	if !ok {
		return "", fmt.Errorf("%s %q: %w", f, raw, ErrInvalidValue)
	}
	return v, nil
}

// lowerJS lowercases like JavaScript's String.prototype.toLowerCase: Go's
// unicode.ToLower plus the two SpecialCasing rules that differ (U+0130 and
// the word-final capital sigma), so hashes equal those of Meta's tooling.
func lowerJS(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i, r := range s {
		switch {
		case r == 'İ':
			b.WriteString("i\u0307")
		case r == 'Σ' && finalSigma(s, i):
			b.WriteRune('ς')
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma implements Unicode's Final_Sigma condition for the Σ at byte
// offset i: a cased letter before it (skipping case-ignorables) and none
// after it.
func finalSigma(s string, i int) bool {
	before := false
	for j := i; j > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if caseIgnorable(r) {
			continue
		}
		before = cased(r)
		break
	}
	if !before {
		return false
	}
	for _, r := range s[i+len("Σ"):] {
		if caseIgnorable(r) {
			continue
		}
		return !cased(r)
	}
	return true
}

func cased(r rune) bool { return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) }

func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', '·', '\u2019':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// validEmail accepts what Meta's SDK (email-validator) accepts: an ASCII
// dot-atom local part, and a domain of letters, digits and hyphens with a
// TLD of at least two characters starting with a letter.
func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || at > 64 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	const atext = "!#$%&'*+/=?^_`{|}~-"
	prevDot := true // a leading dot is invalid
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte(atext, c) >= 0:
		default:
			return false
		}
		prevDot = false
	}
	if prevDot {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	return len(tld) >= 2 && ('a' <= tld[0] && tld[0] <= 'z')
}

// normalizePhone keeps digits only, with the country calling code and
// without the international prefix: "+1 (650) 555-1234" → "16505551234".
// A number written without "+" or "00" is national: with a known country
// its trunk prefix is dropped and the calling code prepended; without one,
// leading zeros are removed as Meta's rule says. Meta's doc example
// "(650)555-1212" becomes "16505551212" only when the country is US.
func normalizePhone(raw, country string) (string, bool) {
	digits := make([]byte, 0, len(raw))
	international := false
	seenDigit := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case '0' <= c && c <= '9':
			digits = append(digits, c)
			seenDigit = true
		case c == '+' && !seenDigit:
			international = true
		}
	}
	d := string(digits)
	if strings.HasPrefix(d, "00") {
		international = true
	}
	cc, known := lookupCallingCode(country)
	switch {
	case international || !known:
		d = strings.TrimLeft(d, "0")
	case cc.code == "1":
		// NANP: ten digits nationally, optionally written with the leading 1.
		if len(d) == 10 {
			d = "1" + d
		}
	case cc.trunk != "" && strings.HasPrefix(d, cc.trunk):
		d = cc.code + strings.TrimPrefix(d, cc.trunk)
	case strings.HasPrefix(d, cc.code) && len(d) >= len(cc.code)+8:
		// Written with the calling code but without "+": keep it.
	default:
		d = cc.code + d
	}
	// E.164 allows at most 15 digits; an extension makes more, which the SDK
	// tolerates up to 16. Fewer than 7 digits is no phone number.
	if len(d) < 7 || len(d) > 16 {
		return "", false
	}
	return d, true
}

// normalizeName lowercases, removes punctuation and symbols, and collapses
// spaces: "O'Brien" → "obrien", "  John " → "john", "Valéry" → "valéry".
func normalizeName(raw string) string {
	s := lowerJS(raw)
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
		case unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsControl(r):
		default:
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// lettersOnly keeps letters and combining marks: Meta's city rule allows
// UTF-8 characters but no punctuation, digits or spaces.
func lettersOnly(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func normalizeGender(raw string) (string, bool) {
	switch lettersOnly(lowerJS(raw)) {
	case "f", "female":
		return "f", true
	case "m", "male":
		return "m", true
	}
	return "", false
}

// normalizeDate parses a birth date into YYYYMMDD. Accepted: YYYYMMDD,
// YYYY-MM-DD (any separator), and day-month forms with the year last:
// "/" and "-" are read month first (US, as in Meta's example "2/16/1997")
// unless the first number exceeds 12, "." is read day first.
func normalizeDate(raw string) (string, bool) {
	var parts []string
	sep := byte(0)
	start := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if '0' <= c && c <= '9' {
			continue
		}
		if c != '/' && c != '-' && c != '.' && c != ' ' {
			return "", false
		}
		if sep == 0 {
			sep = c
		}
		parts = append(parts, raw[start:i])
		start = i + 1
	}
	parts = append(parts, raw[start:])
	var y, m, d int
	atoi := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			return -1
		}
		return n
	}
	switch {
	case len(parts) == 1 && len(raw) == 8:
		y, m, d = atoi(raw[:4]), atoi(raw[4:6]), atoi(raw[6:])
	case len(parts) == 3 && len(parts[0]) == 4:
		y, m, d = atoi(parts[0]), atoi(parts[1]), atoi(parts[2])
	case len(parts) == 3 && len(parts[2]) == 4:
		a, b := atoi(parts[0]), atoi(parts[1])
		y = atoi(parts[2])
		if sep == '.' || a > 12 {
			d, m = a, b
		} else {
			m, d = a, b
		}
	default:
		return "", false
	}
	if y < 1900 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return "", false
	}
	return fmt.Sprintf("%04d%02d%02d", y, m, d), true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// normalizeState gives US and Canadian 2-letter codes (names are mapped
// when the country is US, CA or unknown) and, elsewhere, the lowercase
// name without punctuation or spaces.
func normalizeState(raw, country string) (string, bool) {
	s := lettersOnly(lowerJS(raw))
	if s == "" {
		return "", false
	}
	if country == "" || country == "us" || country == "ca" {
		if code, ok := lookupRegionCode(s); ok {
			return code, true
		}
	}
	return s, true
}

// normalizeZip lowercases and removes spaces and dashes; US zips keep
// their first five digits ("94025-1234" → "94025"). With the country
// unknown, only the unmistakable ZIP+4 form is cut.
func normalizeZip(raw, country string) (string, bool) {
	s := lowerJS(raw)
	if country == "us" || country == "" && isZipPlus4(s) {
		var d []byte
		for i := 0; i < len(s) && len(d) < 5; i++ {
			if '0' <= s[i] && s[i] <= '9' {
				d = append(d, s[i])
			}
		}
		if len(d) == 5 {
			return string(d), true
		}
	}
	var b strings.Builder
	for _, r := range s {
		if r == '-' || unicode.IsSpace(r) {
			continue
		}
		b.WriteRune(r)
	}
	if b.Len() < 2 {
		return "", false
	}
	return b.String(), true
}

func isZipPlus4(s string) bool {
	if len(s) != 10 || s[5] != '-' {
		return false
	}
	for i := 0; i < 10; i++ {
		if i != 5 && !('0' <= s[i] && s[i] <= '9') {
			return false
		}
	}
	return true
}

// normalizeCountry gives the lowercase ISO 3166-1 alpha-2 code, mapping
// alpha-3 codes, "UK" and common English names.
func normalizeCountry(raw string) (string, bool) {
	s := lettersOnly(lowerJS(raw))
	if len(s) == 2 {
		if s == "uk" {
			return "gb", true
		}
		if strings.Contains(iso3166Alpha2, " "+s+" ") {
			return s, true
		}
		return "", false
	}
	if c, ok := lookupCountry(s); ok {
		return c, true
	}
	return "", false
}
