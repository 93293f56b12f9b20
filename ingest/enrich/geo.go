package enrich

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/oschwald/geoip2-golang"
)

// geoDB looks places up in a MaxMind City database.
type geoDB struct {
	r *geoip2.Reader
}

// openGeoDB opens and checks a City database. Missing, unreadable, corrupt
// and non-City files (an ASN database by mistake) are all startup errors,
// because a silently empty country column is found weeks later.
func openGeoDB(path string) (*geoDB, error) {
	r, err := geoip2.Open(path)
	if err != nil {
		if r != nil {
			// geoip2 returns the open reader along with an unknown-type error.
			_ = r.Close()
		}
		return nil, fmt.Errorf("geoip.city_db: open %q: %w", path, err)
	}
	// geoip2 accepts any database type it knows; City lookups need a City
	// (or Country) database, and a probe says so now rather than per event.
	if _, err := r.City(net.IPv4zero); err != nil {
		var im geoip2.InvalidMethodError
		dbType := r.Metadata().DatabaseType
		_ = r.Close()
		if errors.As(err, &im) {
			return nil, fmt.Errorf("geoip.city_db: %q is a %s database; a GeoLite2/GeoIP2 City database is needed", path, dbType)
		}
		return nil, fmt.Errorf("geoip.city_db: read %q: %w", path, err)
	}
	return &geoDB{r: r}, nil
}

// place is what the database says of an address.
type place struct {
	Country string // ISO 3166-1 alpha-2
	Region  string // English name of the largest subdivision
	City    string // English name
}

// lookup returns the place of ip ("" fields when the address is unknown,
// unparseable, private or absent from the database).
func (g *geoDB) lookup(ip string) place {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return place{}
	}
	a = a.Unmap().WithZone("")
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
		return place{}
	}
	var nip net.IP
	if a.Is4() {
		b := a.As4()
		nip = net.IP(b[:])
	} else {
		b := a.As16()
		nip = net.IP(b[:])
	}
	rec, err := g.r.City(nip)
	if err != nil {
		// A record that does not decode is a database problem, not the
		// visitor's; the completion is kept without a place.
		return place{}
	}
	p := place{Country: rec.Country.IsoCode, City: rec.City.Names["en"]}
	if len(rec.Subdivisions) > 0 {
		p.Region = rec.Subdivisions[0].Names["en"]
	}
	return p
}

func (g *geoDB) close() error {
	return g.r.Close()
}
