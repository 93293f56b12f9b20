package ingest

import "strings"

// NormalizeEmail is the one form an email is stored and looked up in:
// trimmed and lower-cased, so Ada.Lovelace@Example.com and
// ada.lovelace@example.com are one person. (RFC 5321 lets a server treat
// the local part case-sensitively; in practice mail providers do not, and
// Meta's matching rules lower-case the whole address too.)
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}
