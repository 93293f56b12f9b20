package capi

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Meta's time limits on event_time.
const (
	// MaxEventAge is how old an event may be when Meta receives it: "If any
	// event_time in data is greater than 7 days in the past, we return an
	// error for the entire request and process no events."
	MaxEventAge = 7 * 24 * time.Hour
	// MaxStoreEventAge is the same for action_source physical_store:
	// offline store sales "upload within 62 days".
	MaxStoreEventAge = 62 * 24 * time.Hour
	// MaxEventSkew is how far in the future an event_time may lie. Meta does
	// not document its tolerance; one minute is what RudderStack enforces.
	MaxEventSkew = time.Minute
	// MaxBatch is Meta's limit on events per request.
	MaxBatch = 1000
)

// ErrTooOld is wrapped by Validate for an event Meta would refuse for its
// age; the forwarder records it as expired rather than failed.
var ErrTooOld = errors.New("event_time too old for Meta")

// MaxAgeFor is how old Meta takes an event of action_source src.
func MaxAgeFor(src ActionSource) time.Duration {
	if src == "physical_store" {
		return MaxStoreEventAge
	}
	return MaxEventAge
}

// Validate checks ev against what Meta requires of every event, so one bad
// event is caught before it makes Meta reject a whole batch. now is the
// time the request will be sent.
func Validate(ev *Event, now time.Time) error {
	if ev.EventName == "" {
		return errors.New("event_name is empty")
	}
	if ev.EventTime <= 0 {
		return errors.New("event_time is missing")
	}
	t := time.Unix(ev.EventTime, 0)
	if now.Sub(t) > MaxAgeFor(ev.ActionSource) {
		return fmt.Errorf("event_time %s is %s before now: %w", t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Second), ErrTooOld)
	}
	if t.Sub(now) > MaxEventSkew {
		return fmt.Errorf("event_time %s is %s in the future", t.UTC().Format(time.RFC3339), t.Sub(now).Round(time.Second))
	}
	switch ev.ActionSource {
	case ActionWebsite:
		if ev.EventSourceURL == "" {
			return errors.New("event_source_url is required for action_source website")
		}
		if ev.UserData.ClientUserAgent == "" {
			return errors.New("user_data.client_user_agent is required for action_source website")
		}
	case ActionSystemGenerated, "email", "app", "phone_call", "chat", "physical_store", "business_messaging", "other":
	case "":
		return errors.New("action_source is empty")
	default:
		return fmt.Errorf("action_source %q is not one of Meta's", ev.ActionSource)
	}
	if err := validateUserData(&ev.UserData); err != nil {
		return err
	}
	cd := ev.CustomData
	if cd != nil && cd.Currency != "" && !isCurrency(cd.Currency) {
		return fmt.Errorf("custom_data.currency %q is not an ISO 4217 code", cd.Currency)
	}
	if ev.EventName == "Purchase" && (cd == nil || cd.Value == nil || cd.Currency == "") {
		return errors.New("a Purchase event requires custom_data.value and custom_data.currency")
	}
	return nil
}

func validateUserData(u *UserData) error {
	hashed := []struct {
		key string
		vs  []string
	}{
		{"em", u.Email}, {"ph", u.Phone}, {"fn", u.FirstName}, {"ln", u.LastName},
		{"ge", u.Gender}, {"db", u.DateOfBirth}, {"ct", u.City}, {"st", u.State},
		{"zp", u.Zip}, {"country", u.Country}, {"external_id", u.ExternalID},
	}
	n := 0
	for _, h := range hashed {
		for _, v := range h.vs {
			if !isLowerSHA256(v) {
				return fmt.Errorf("user_data.%s holds a value that is not SHA-256 lowercase hex", h.key)
			}
			n++
		}
	}
	if u.ClientIPAddress != "" {
		if _, err := netip.ParseAddr(u.ClientIPAddress); err != nil {
			return fmt.Errorf("user_data.client_ip_address %q is not an IP address", u.ClientIPAddress)
		}
		n++
	}
	for _, raw := range []struct{ key, v string }{
		{"client_user_agent", u.ClientUserAgent}, {"fbp", u.Fbp}, {"fbc", u.Fbc},
	} {
		if raw.v == "" {
			continue
		}
		if isHashed(raw.v) {
			return fmt.Errorf("user_data.%s looks hashed; Meta needs it as-is", raw.key)
		}
		n++
	}
	if u.LeadID < 0 {
		return fmt.Errorf("user_data.lead_id %d is negative", u.LeadID)
	}
	if u.LeadID > 0 {
		n++
	}
	if n == 0 {
		return errors.New("user_data has no customer information parameter")
	}
	return nil
}

func isLowerSHA256(s string) bool {
	return isHashed(s) && strings.ToLower(s) == s
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
