package ingest

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ProxyTrust decides which address sent a request: the connection's peer, or,
// when the peer is a trusted proxy, the first untrusted hop its forwarding
// headers name, read from the right.
//
// Reading from the right matters because a client can put anything into the
// headers it sends; only the entries that trusted proxies appended are
// believable, and each proxy appends the address it received the request
// from. So the walk starts at the peer, moves left while the address it has
// reached is a trusted proxy, and stops at the first one that is not: that is
// the client. When every hop is trusted (a client inside the proxies' own
// network) the leftmost hop is the client. When the walk meets an entry it
// cannot read ("unknown", an obfuscated identifier, garbage), the trusted
// proxy that wrote it is the best address known and is returned.
//
// Which header: X-Forwarded-For when present, else Forwarded (RFC 7239).
// Nearly every proxy and load balancer (nginx, HAProxy's forwardfor, Envoy,
// Caddy, Traefik, AWS ALB, Google's and Cloudflare's) appends to
// X-Forwarded-For and passes Forwarded through untouched, so preferring
// X-Forwarded-For keeps a client-written Forwarded header from being believed
// behind them. A proxy that writes only Forwarded must also strip any
// X-Forwarded-For the client sent.
//
// A ProxyTrust is immutable after NewProxyTrust and safe for concurrent use.
type ProxyTrust struct {
	prefixes []netip.Prefix
}

// maxHops bounds how many forwarding hops are considered. Only the rightmost
// ones can be trusted, and real chains are a handful of proxies long; 32 is
// far beyond any deployment and keeps the parse allocation-free.
const maxHops = 32

// NewProxyTrust builds a ProxyTrust from CIDRs ("10.0.0.0/8", "fd00::/8") or
// single addresses ("192.0.2.7"). An empty list trusts nobody: the peer is
// always the client. Every bad entry is reported, as a FieldError whose path
// is collector.trusted_proxies[i], joined into the returned error.
func NewProxyTrust(cidrs []string) (*ProxyTrust, error) {
	t := &ProxyTrust{}
	var errs []error
	for i, s := range cidrs {
		s = strings.TrimSpace(s)
		path := fmt.Sprintf("collector.trusted_proxies[%d]", i)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			if err == nil && a.Zone() != "" {
				err = errors.New("zone")
			}
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			errs = append(errs, FieldError{Path: path, Code: "INVALID_CIDR",
				Message: fmt.Sprintf("%q is not a CIDR (10.0.0.0/8) or an IP address without zone", s)})
			continue
		}
		p = p.Masked()
		if p.Addr().Is4In6() {
			// ::ffff:10.0.0.0/104 means 10.0.0.0/8: peers are unmapped before
			// matching, so the prefix must be too. (A mapped prefix shorter
			// than /96 masks the ffff away and is an ordinary IPv6 prefix.)
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		t.prefixes = append(t.prefixes, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// Trusted reports whether addr is inside a trusted proxy range.
func (t *ProxyTrust) Trusted(addr netip.Addr) bool {
	if t == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientIP returns the client's address for a request that arrived from peer
// carrying the given X-Forwarded-For and Forwarded header values (several
// header lines of one name joined with ","). The result is unmapped (an
// IPv4-mapped IPv6 address comes back as IPv4) and has no zone. A nil
// ProxyTrust trusts nobody.
func (t *ProxyTrust) ClientIP(peer netip.Addr, xForwardedFor, forwarded string) netip.Addr {
	peer = peer.Unmap().WithZone("")
	if !t.Trusted(peer) {
		return peer
	}
	var hops [maxHops]string
	var n int
	if strings.TrimSpace(xForwardedFor) != "" {
		n = xForwardedForHops(xForwardedFor, &hops)
	} else {
		n = forwardedForHops(forwarded, &hops)
	}
	client := peer
	for i := n - 1; i >= 0; i-- {
		a, ok := parseNode(hops[i])
		if !ok {
			return client
		}
		client = a
		if !t.Trusted(a) {
			return a
		}
	}
	return client
}

// keepHop records one hop, keeping only the rightmost maxHops: once the array
// is full the oldest (leftmost) entry is dropped.
func keepHop(hops *[maxHops]string, n int, h string) int {
	if n == maxHops {
		copy(hops[:], hops[1:])
		n--
	}
	hops[n] = h
	return n + 1
}

// xForwardedForHops splits "client, proxy1, proxy2" into its entries.
func xForwardedForHops(h string, hops *[maxHops]string) int {
	n := 0
	for len(h) > 0 {
		var part string
		if i := strings.IndexByte(h, ','); i >= 0 {
			part, h = h[:i], h[i+1:]
		} else {
			part, h = h, ""
		}
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n = keepHop(hops, n, part)
	}
	return n
}

// forwardedForHops extracts the for= value of each element of an RFC 7239
// Forwarded header:
//
//	Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::17]:4711"
//
// Elements are separated by ",", pairs by ";"; names are case-insensitive;
// values are tokens or quoted strings (which may hold "," and ";" and
// backslash escapes). An element without for= contributes an empty hop, which
// stops the walk like any unreadable entry: the proxy that wrote it did not
// say where the request came from.
func forwardedForHops(h string, hops *[maxHops]string) int {
	n := 0
	i := 0
	for i < len(h) {
		// One element: pairs until an unquoted ',' or the end.
		var forVal string
		sawPair := false
		for i < len(h) && h[i] != ',' {
			// Skip whitespace and empty pairs.
			for i < len(h) && (h[i] == ' ' || h[i] == '\t' || h[i] == ';') {
				i++
			}
			if i >= len(h) || h[i] == ',' {
				break
			}
			nameStart := i
			for i < len(h) && h[i] != '=' && h[i] != ';' && h[i] != ',' {
				i++
			}
			name := strings.TrimSpace(h[nameStart:i])
			var val string
			if i < len(h) && h[i] == '=' {
				i++
				for i < len(h) && (h[i] == ' ' || h[i] == '\t') {
					i++
				}
				if i < len(h) && h[i] == '"' {
					i++
					start := i
					for i < len(h) && h[i] != '"' {
						if h[i] == '\\' && i+1 < len(h) {
							i++
						}
						i++
					}
					val = h[start:i]
					if i < len(h) {
						i++ // closing quote
					}
				} else {
					start := i
					for i < len(h) && h[i] != ';' && h[i] != ',' {
						i++
					}
					val = strings.TrimSpace(h[start:i])
				}
			}
			sawPair = sawPair || name != ""
			if strings.EqualFold(name, "for") && forVal == "" {
				forVal = val
			}
			// Anything after a value up to the next separator is junk.
			for i < len(h) && h[i] != ';' && h[i] != ',' {
				i++
			}
		}
		if i < len(h) && h[i] == ',' {
			i++
		}
		if sawPair {
			n = keepHop(hops, n, forVal)
		}
	}
	return n
}

// parseNode reads one hop: an IP address, optionally with a port
// ("192.0.2.1:8080", "[2001:db8::1]:443", "[2001:db8::1]"), possibly with
// backslash escapes left from a quoted string. "unknown", obfuscated
// identifiers ("_hidden") and anything else are not addresses.
func parseNode(s string) (netip.Addr, bool) {
	if strings.IndexByte(s, '\\') >= 0 {
		s = unescapeQuoted(s)
	}
	if s == "" {
		return netip.Addr{}, false
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		rest := s[end+1:]
		if rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		s = s[1:end]
	} else if c := strings.Count(s, ":"); c == 1 {
		host, port := s[:strings.IndexByte(s, ':')], s[strings.IndexByte(s, ':')+1:]
		if !validPort(port) {
			return netip.Addr{}, false
		}
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// validPort accepts a decimal port or an RFC 7239 obfuscated port ("_abc").
func validPort(p string) bool {
	if p == "" {
		return false
	}
	if p[0] == '_' {
		return true
	}
	if len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// unescapeQuoted removes quoted-pair backslashes. Addresses never need them,
// so this runs only on odd input and may allocate.
func unescapeQuoted(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
