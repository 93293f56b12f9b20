package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/ingest/enrich"
	"github.com/tally-analytics/tally/rules"
)

// Check validates the meaning of a decoded config: every limit of an event
// definition, unique names, references between parts. Each problem carries
// the YAML path of the field it is about.
func Check(f *File) []ingest.FieldError {
	var errs []ingest.FieldError
	add := func(path, code, format string, args ...any) {
		errs = append(errs, ingest.FieldError{Path: path, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if f.Listen != "" {
		if _, _, err := net.SplitHostPort(f.Listen); err != nil {
			add("listen", "INVALID_ADDRESS", "listen %q is not host:port (for example \":8080\" or \"127.0.0.1:8080\")", f.Listen)
		}
	}
	for name, days := range map[string]int{"events_days": f.Retention.Events, "rejections_days": f.Retention.Rejections, "deliveries_days": f.Retention.Deliveries} {
		if days < 0 {
			add("retention."+name, "INVALID_VALUE", "retention.%s is %d; give a number of days, or 0 to keep rows", name, days)
		}
	}
	if f.AdminListen != "" {
		if _, _, err := net.SplitHostPort(f.AdminListen); err != nil {
			add("admin_listen", "INVALID_ADDRESS", "admin_listen %q is not host:port (for example \"127.0.0.1:9090\")", f.AdminListen)
		}
	}
	if f.ClickHouse.DSN != "" && !strings.HasPrefix(f.ClickHouse.DSN, "clickhouse://") && !strings.HasPrefix(f.ClickHouse.DSN, "tcp://") {
		add("clickhouse.dsn", "INVALID_DSN", "dsn must be a native-protocol URL like clickhouse://user:pass@host:9000 (or empty for a managed local server)")
	}
	if c := f.ClickHouse.Cluster; c != "" && (!validIdent(c) || strings.Contains(c, "-")) {
		add("clickhouse.cluster", "INVALID_NAME", "cluster name %q may use only letters, digits and _", c)
	}
	if f.ClickHouse.Cluster != "" && f.ClickHouse.DSN == "" {
		add("clickhouse.cluster", "REQUIRED", "a cluster needs clickhouse.dsn pointing at one of its servers; the managed local server is a single server")
	}
	if db := f.ClickHouse.Database; db != "" && !validIdent(db) {
		add("clickhouse.database", "INVALID_NAME", "database name %q may use only letters, digits and _", db)
	}
	if f.Collector.EventPath != "" && !strings.HasPrefix(f.Collector.EventPath, "/") {
		add("collector.event_path", "INVALID_PATH", "event_path must start with /")
	}
	for i, cidr := range f.Collector.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			if _, err := netip.ParseAddr(cidr); err != nil {
				add(fmt.Sprintf("collector.trusted_proxies[%d]", i), "INVALID_CIDR", "%q is not an IP address or CIDR", cidr)
			}
		}
	}

	siteIDs := map[string]int{}
	for i, s := range f.Sites {
		p := fmt.Sprintf("sites[%d]", i)
		switch j, dup := siteIDs[s.ID]; {
		case s.ID == "":
			add(p+".id", "REQUIRED", "site id is required")
		case !validIdent(s.ID):
			add(p+".id", "INVALID_NAME", "site id %q may use only letters, digits, _ and -", s.ID)
		case dup:
			add(p+".id", "DUPLICATE", "site id %q is already used by sites[%d]", s.ID, j)
		}
		siteIDs[s.ID] = i
		if len(s.Domains) == 0 {
			add(p+".domains", "REQUIRED", "site %q needs at least one domain the snippet may send from", s.ID)
		}
		for j, d := range s.Domains {
			if d == "" || strings.ContainsAny(d, "/: ") && !strings.HasPrefix(d, "[") {
				add(fmt.Sprintf("%s.domains[%d]", p, j), "INVALID_DOMAIN", "domain %q must be a bare host name like shop.example.com (no scheme, port or path)", d)
			}
		}
		if s.CookieDays < 0 {
			add(p+".cookie_days", "INVALID_VALUE", "cookie_days must not be negative")
		}
	}
	tokens := map[string]int{}
	for i, t := range f.APITokens {
		p := fmt.Sprintf("api_tokens[%d]", i)
		if t.Name == "" {
			add(p+".name", "REQUIRED", "token name is required")
		}
		switch j, dup := tokens[t.Token]; {
		case t.Token == "":
			add(p+".token", "REQUIRED", "token value is required (reference a secret as ${TALLY_TOKEN_NAME})")
		case len(t.Token) < 16:
			add(p+".token", "WEAK_TOKEN", "token is %d characters; use at least 16 random characters", len(t.Token))
		case dup:
			add(p+".token", "DUPLICATE", "token is the same as api_tokens[%d]", j)
		}
		tokens[t.Token] = i
		for j, sc := range t.Scopes {
			if sc != ingest.ScopeSend && sc != ingest.ScopeRead && sc != ingest.ScopeErase && sc != ingest.ScopeReplay && sc != ingest.ScopeConsole {
				add(fmt.Sprintf("%s.scopes[%d]", p, j), "INVALID_VALUE", "scope %q is not send, read, erase, replay or console", sc)
			}
		}
	}

	names := map[string]int{}
	for i := range f.Events {
		p := fmt.Sprintf("events[%d]", i)
		d := &f.Events[i]
		errs = append(errs, d.Check(p)...)
		if j, dup := names[d.Name]; dup && d.Name != "" {
			add(p+".name", "DUPLICATE", "event %q is already defined at events[%d]", d.Name, j)
		}
		names[d.Name] = i
	}
	// The checks serve's components run when they start, so that a config
	// tally check passes is one serve starts with.
	ids := make([]string, 0, len(f.Sites))
	for _, s := range f.Sites {
		ids = append(ids, s.ID)
	}
	errs = append(errs, rules.Check(f.Rules, f.Destinations, f.Events)...)
	errs = append(errs, rules.CheckSites(f.Rules, ids)...)
	errs = append(errs, enrich.Config{GeoIP: f.GeoIP, Privacy: f.Privacy}.Check()...)
	return errs
}

func validIdent(s string) bool {
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
