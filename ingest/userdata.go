package ingest

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// UserDataProperties are the properties an API completion (POST
// /events/v3/send, the batch and CSV import) may carry for ad-platform
// matching, with what each fills. They need no definition: they are not
// stored as properties, only kept for the forward of a rule whose share
// lists them (§9), and never logged. HubSpot defines no hs_ names for
// them; these are the names Meta's user_data uses in words. An event that
// defines a property of one of these names keeps it as that property, and
// its value is used for matching too.
var UserDataProperties = []string{
	"phone", "external_id", "first_name", "last_name", "city", "state", "zip", "country",
	"client_ip_address", "client_user_agent", "fbp", "fbc",
}

// maxUserDataLen bounds one user-data value, like a property value.
const maxUserDataLen = MaxValueLen

// takeUserData moves the user-data properties out of raw into c.Identity
// and c.Client and returns the rest. A value that cannot be used (an IP
// address that is not one, a value over the length limit) is an error at
// path.<name>; so is a control character.
func takeUserData(c *Completion, def *Definition, raw []Prop, path string) ([]Prop, []FieldError) {
	var errs []FieldError
	out := raw[:0] // filtered in place: the result reuses raw's array
	for _, p := range raw {
		name := p.Name
		if asciiName(name) {
			name = strings.ToLower(name) // property names are case-insensitive (§4)
		}
		dst := userDataField(c, name)
		if dst == nil {
			out = append(out, p)
			continue
		}
		_, defined := def.Property(name)
		if defined {
			out = append(out, p)
		}
		switch {
		case utf8.RuneCountInString(p.Value) > maxUserDataLen:
			errs = append(errs, fieldErr(path+"."+p.Name, "VALUE_TOO_LONG", "%s is %d characters; the limit is %d", name, utf8.RuneCountInString(p.Value), maxUserDataLen))
			continue
		case hasControl(p.Value):
			// Identifiers are matched and forwarded as they are: a newline
			// in one is a forged header or a different person, never data.
			_, msg := checkIdentifier(p.Value, maxUserDataLen)
			errs = append(errs, fieldErr(path+"."+p.Name, "INVALID_VALUE", "%s %s", name, msg))
			continue
		case name == "client_ip_address" && p.Value != "":
			if _, err := netip.ParseAddr(p.Value); err != nil {
				errs = append(errs, fieldErr(path+"."+p.Name, "INVALID_VALUE", "client_ip_address %q is not an IPv4 or IPv6 address", p.Value))
				continue
			}
		}
		*dst = p.Value
	}
	return out, errs
}

// hasControl reports whether s holds a C0 control character or DEL.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

// userDataField is where a user-data property goes; nil for other names.
func userDataField(c *Completion, name string) *string {
	switch name {
	case "email": // the API's own identifier, not a property
		return nil
	case "fbp":
		return &c.Identity.Fbp
	case "fbc":
		return &c.Identity.Fbc
	case "client_ip_address":
		return &c.Client.IP
	case "client_user_agent":
		return &c.Client.UserAgent
	}
	return traitField(&c.Identity, name)
}
