package ingest

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustTrust(t testing.TB, cidrs ...string) *ProxyTrust {
	t.Helper()
	pt, err := NewProxyTrust(cidrs)
	if err != nil {
		t.Fatalf("NewProxyTrust(%q) error: %v", cidrs, err)
	}
	return pt
}

func TestClientIP(t *testing.T) {
	trust := mustTrust(t, "10.0.0.0/8", "192.0.2.7", "2001:db8:ffff::/48")
	tests := []struct {
		name      string
		peer      string
		xff, fwd  string
		want      string
		nilTrust  bool
		emptyList bool
	}{
		{name: "untrusted peer ignores headers", peer: "203.0.113.9", xff: "198.51.100.1", want: "203.0.113.9"},
		{name: "untrusted peer ignores Forwarded", peer: "203.0.113.9", fwd: "for=198.51.100.1", want: "203.0.113.9"},
		{name: "nil trust", peer: "10.0.0.1", xff: "198.51.100.1", want: "10.0.0.1", nilTrust: true},
		{name: "empty list trusts nobody", peer: "10.0.0.1", xff: "198.51.100.1", want: "10.0.0.1", emptyList: true},
		{name: "trusted peer without headers", peer: "10.0.0.1", want: "10.0.0.1"},
		{name: "one proxy", peer: "10.0.0.1", xff: "198.51.100.1", want: "198.51.100.1"},
		{name: "spoofed left entries are skipped", peer: "10.0.0.1", xff: "1.1.1.1, 198.51.100.1", want: "198.51.100.1"},
		{name: "chain of trusted proxies", peer: "10.0.0.1", xff: "1.1.1.1, 198.51.100.1, 10.9.9.9, 192.0.2.7", want: "198.51.100.1"},
		{name: "all hops trusted gives leftmost", peer: "10.0.0.1", xff: "10.1.1.1, 10.2.2.2", want: "10.1.1.1"},
		{name: "xff with port", peer: "10.0.0.1", xff: "198.51.100.1:5123", want: "198.51.100.1"},
		{name: "xff bracketed IPv6 with port", peer: "10.0.0.1", xff: "[2001:db8::1]:443", want: "2001:db8::1"},
		{name: "xff bare IPv6", peer: "10.0.0.1", xff: "2001:db8::1", want: "2001:db8::1"},
		{name: "xff garbage stops at the proxy", peer: "10.0.0.1", xff: "198.51.100.1, nonsense", want: "10.0.0.1"},
		{name: "xff unknown behind trusted hop", peer: "10.0.0.1", xff: "unknown, 10.3.3.3", want: "10.3.3.3"},
		{name: "xff empty entries skipped", peer: "10.0.0.1", xff: " , 198.51.100.1 ,, ", want: "198.51.100.1"},
		{name: "xff wins over Forwarded", peer: "10.0.0.1", xff: "198.51.100.1", fwd: "for=198.51.100.2", want: "198.51.100.1"},
		{name: "forwarded simple", peer: "10.0.0.1", fwd: "for=198.51.100.2", want: "198.51.100.2"},
		{name: "forwarded case and spaces", peer: "10.0.0.1", fwd: "For = 198.51.100.2 ; proto=https", want: "198.51.100.2"},
		{name: "forwarded quoted IPv6 with port", peer: "10.0.0.1", fwd: `for="[2001:db8:cafe::17]:4711"`, want: "2001:db8:cafe::17"},
		{name: "forwarded quoted IPv6 without port", peer: "10.0.0.1", fwd: `for="[2001:db8:cafe::17]"`, want: "2001:db8:cafe::17"},
		{name: "forwarded quoted IPv4 with port", peer: "10.0.0.1", fwd: `for="198.51.100.3:80"`, want: "198.51.100.3"},
		{name: "forwarded several elements", peer: "10.0.0.1", fwd: `for=1.1.1.1, for=198.51.100.4;proto=http;by=10.0.0.1, for="10.5.5.5"`, want: "198.51.100.4"},
		{name: "forwarded by before for", peer: "10.0.0.1", fwd: `by=10.0.0.1;for=198.51.100.5`, want: "198.51.100.5"},
		{name: "forwarded quoted comma inside value", peer: "10.0.0.1", fwd: `for=198.51.100.6;ext="a,b", for=10.7.7.7`, want: "198.51.100.6"},
		{name: "forwarded escaped quote", peer: "10.0.0.1", fwd: `for="198.51.100.\7"`, want: "198.51.100.7"},
		{name: "forwarded obfuscated port", peer: "10.0.0.1", fwd: `for="198.51.100.8:_abc"`, want: "198.51.100.8"},
		{name: "forwarded unknown stops", peer: "10.0.0.1", fwd: `for=unknown, for=10.6.6.6`, want: "10.6.6.6"},
		{name: "forwarded obfuscated node stops", peer: "10.0.0.1", fwd: `for=_hidden`, want: "10.0.0.1"},
		{name: "forwarded element without for stops", peer: "10.0.0.1", fwd: `for=198.51.100.9, proto=https`, want: "10.0.0.1"},
		{name: "forwarded trusted IPv6 proxy", peer: "2001:db8:ffff::1", fwd: `for=198.51.100.10, for="[2001:db8:ffff::2]"`, want: "198.51.100.10"},
		{name: "mapped peer is unmapped", peer: "::ffff:10.0.0.1", xff: "198.51.100.11", want: "198.51.100.11"},
		{name: "mapped client is unmapped", peer: "10.0.0.1", xff: "::ffff:198.51.100.12", want: "198.51.100.12"},
		{name: "zone dropped", peer: "fe80::1%eth0", want: "fe80::1"},
		{name: "bad port is not an address", peer: "10.0.0.1", xff: "198.51.100.1:99999", want: "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt := trust
			if tt.nilTrust {
				pt = nil
			}
			if tt.emptyList {
				pt = mustTrust(t)
			}
			got := pt.ClientIP(netip.MustParseAddr(tt.peer), tt.xff, tt.fwd)
			if got.String() != tt.want {
				t.Errorf("ClientIP(%s, %q, %q) = %s; want %s", tt.peer, tt.xff, tt.fwd, got, tt.want)
			}
		})
	}
}

func TestClientIPLongChainKeepsRightmostHops(t *testing.T) {
	trust := mustTrust(t, "10.0.0.0/8")
	// 40 spoofed entries, then the real client, then two proxies: only the
	// rightmost maxHops are kept, which still contain the client.
	xff := strings.Repeat("1.1.1.1, ", 40) + "198.51.100.20, 10.0.0.2, 10.0.0.3"
	got := trust.ClientIP(netip.MustParseAddr("10.0.0.1"), xff, "")
	if want := "198.51.100.20"; got.String() != want {
		t.Errorf("ClientIP(long chain) = %s; want %s", got, want)
	}
}

func TestNewProxyTrustErrors(t *testing.T) {
	_, err := NewProxyTrust([]string{"10.0.0.0/8", "10.0.0/8", "not-an-ip", "fe80::1%eth0", "10.0.0.0/33"})
	if err == nil {
		t.Fatal("NewProxyTrust(bad entries) error = nil; want errors")
	}
	var paths []string
	var fe FieldError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		if !errors.As(e, &fe) {
			t.Fatalf("error %v is not a FieldError", e)
		}
		paths = append(paths, fe.Path)
	}
	want := "collector.trusted_proxies[1] collector.trusted_proxies[2] collector.trusted_proxies[3] collector.trusted_proxies[4]"
	if got := strings.Join(paths, " "); got != want {
		t.Errorf("error paths = %s; want %s", got, want)
	}
}

func TestNewProxyTrustForms(t *testing.T) {
	pt := mustTrust(t, " 192.0.2.7 ", "10.1.2.3/8", "::ffff:172.16.0.0/108", "2001:db8::/32")
	tests := []struct {
		addr string
		want bool
	}{
		{"192.0.2.7", true},
		{"192.0.2.8", false},
		{"10.200.0.1", true}, // prefix is masked, not rejected
		{"172.16.5.5", true}, // mapped prefix matches plain IPv4
		{"172.32.0.1", false},
		{"2001:db8:1::1", true},
		{"2001:db9::1", false},
	}
	for _, tt := range tests {
		if got := pt.Trusted(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Trusted(%s) = %v; want %v", tt.addr, got, tt.want)
		}
	}
}

// checkFuzzResult holds ClientIP to its contract on any input: the answer
// is a valid, unmapped, zone-less address that is the peer or one of the
// header's hops, and it is never a trusted proxy while an untrusted hop
// exists to its right.
func checkFuzzResult(t *testing.T, pt *ProxyTrust, peer, got netip.Addr, header string, hops []string) {
	t.Helper()
	if !got.IsValid() {
		t.Fatalf("ClientIP(%q) returned an invalid address", header)
	}
	if got.Is4In6() || got.Zone() != "" {
		t.Fatalf("ClientIP(%q) = %s; want unmapped, zone-less", header, got)
	}
	if got == peer {
		return
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseNode(hops[i])
		if !ok {
			break
		}
		if a == got {
			return
		}
		if !pt.Trusted(a) {
			t.Fatalf("ClientIP(%q) = %s, left of the untrusted hop %s", header, got, a)
		}
	}
	t.Fatalf("ClientIP(%q) = %s: neither the peer nor a hop of the header %q", header, got, hops)
}

func FuzzClientIPXForwardedFor(f *testing.F) {
	for _, s := range []string{
		"198.51.100.1", "1.1.1.1, 198.51.100.1, 10.0.0.9", "[2001:db8::1]:443", "unknown, 10.0.0.3",
		" , ,", "198.51.100.1:8080", "::ffff:1.2.3.4", "fe80::1%eth0",
	} {
		f.Add(s)
	}
	pt := mustTrust(f, "10.0.0.0/8", "2001:db8::/32")
	peer := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, h string) {
		got := pt.ClientIP(peer, h, "")
		var hops [maxHops]string
		n := xForwardedForHops(h, &hops)
		checkFuzzResult(t, pt, peer, got, h, hops[:n])
		// Without trust the header is never read.
		if got := (*ProxyTrust)(nil).ClientIP(peer, h, ""); got != peer {
			t.Fatalf("nil ClientIP(%q) = %s; want peer", h, got)
		}
	})
}

func FuzzClientIPForwarded(f *testing.F) {
	for _, s := range []string{
		`for=192.0.2.60;proto=http;by=203.0.113.43`,
		`for="[2001:db8:cafe::17]:4711"`,
		`for=198.51.100.1, for=10.0.0.2`,
		`For="_gazonk"`,
		`for=unknown;by="[2001:db8::1]", for="198.51.100.\7:_p"`,
		`ext="a,b;c";for=198.51.100.9`,
		`for="unterminated`,
		`;;,,=;for=`,
	} {
		f.Add(s)
	}
	pt := mustTrust(f, "10.0.0.0/8", "2001:db8::/32")
	peer := netip.MustParseAddr("2001:db8::5")
	f.Fuzz(func(t *testing.T, h string) {
		got := pt.ClientIP(peer, "", h)
		var hops [maxHops]string
		n := forwardedForHops(h, &hops)
		checkFuzzResult(t, pt, peer, got, h, hops[:n])
	})
}

func BenchmarkClientIP(b *testing.B) {
	pt := mustTrust(b, "10.0.0.0/8", "2001:db8::/32")
	peer := netip.MustParseAddr("10.0.0.1")
	b.Run("XForwardedFor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pt.ClientIP(peer, "198.51.100.1, 10.0.0.7", "")
		}
	})
	b.Run("Forwarded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pt.ClientIP(peer, "", `for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.7`)
		}
	})
}
