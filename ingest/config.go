package ingest

import "time"

// Site is one website allowed to send completions through the snippet.
type Site struct {
	ID      string   `yaml:"id"`
	Domains []string `yaml:"domains"` // allowed origins (host names) for /e and t.js
	// CookieDomain is the Domain attribute of the visitor cookie; empty means
	// host-only.
	CookieDomain string `yaml:"cookie_domain"`
	// CookieDays is the visitor cookie's lifetime; 0 means 390 days (13 months,
	// the longest lifetime common consent regimes accept).
	CookieDays int `yaml:"cookie_days"`
}

// Token is one API bearer token.
type Token struct {
	Name  string `yaml:"name"`
	Token string `yaml:"token"`
	// Scopes are what the token may do: "send" (the send API, imports),
	// "read" (GET /events/v3/events), "erase" (POST /privacy/erase on the
	// admin listener) and "replay" (POST /rules/replay on it), "console" (the console on it, from another host). Empty means send only, so a token embedded in a
	// backend that only sends can do nothing else.
	Scopes []string `yaml:"scopes"`
}

// Token scopes.
const (
	ScopeSend  = "send"
	ScopeRead  = "read"
	ScopeErase = "erase"
	// ScopeReplay may ask a rule to forward stored history again.
	ScopeReplay = "replay"
	// ScopeConsole may open the console on the admin listener from
	// another host than the admin listener's own (loopback needs none).
	ScopeConsole = "console"
)

// Allows reports whether the token has scope.
func (t *Token) Allows(scope string) bool {
	if len(t.Scopes) == 0 {
		return scope == ScopeSend
	}
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// CollectorConfig tunes the HTTP collector.
type CollectorConfig struct {
	// EventPath is the snippet's collection path; empty means /e.
	EventPath string `yaml:"event_path"`
	// MaxBodyBytes bounds a request body; 0 means 1 MiB (a full API batch of
	// 500 completions with 50 properties of 256 characters is about 7 MB, so
	// the API path allows 16 MiB).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// SessionTimeout ends a browser session after inactivity; 0 means 30 min.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// TrustedProxies are CIDRs whose X-Forwarded-For/Forwarded is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// RateLimitPerMinute bounds the snippet requests one client IP may make
	// in a minute; past it the collector answers 429 with Retry-After and the
	// tracker retries later. 0 means 1,200 (20 a second: a page sends one
	// request per burst of completions, so only a script hammering the
	// endpoint, or a very large office behind one address, reaches it);
	// -1 turns the limit off. The HubSpot-compatible API is not limited by
	// IP: its callers authenticate, and a full queue answers 503.
	RateLimitPerMinute int `yaml:"rate_limit_per_minute"`
}
