package enrich

import (
	"fmt"
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

// benchPages are page URL and referrer pairs in the proportions a shop sees:
// mostly internal navigation, some search, some campaigns.
var benchPages = [][2]string{
	{"https://shop.example.com/cars/volvo", "https://shop.example.com/cars"},
	{"https://shop.example.com/cars/volvo", "https://shop.example.com/"},
	{"https://shop.example.com/", "https://www.google.com/"},
	{"https://shop.example.com/cars?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=Cj0KCQiA", "https://www.google.com/"},
	{"https://shop.example.com/offer?utm_source=newsletter&utm_medium=email&utm_campaign=Spring%20Sale", ""},
	{"https://shop.example.com/cars/xc60?fbclid=IwAR0abcdef", "https://l.facebook.com/"},
	{"https://shop.example.com/contact", ""},
	{"https://shop.example.com/cars/v90", "https://www.carblog.example.org/best"},
}

var benchIPs = []string{"198.51.100.7", "2001:db8:1::5", "203.0.113.9", "192.0.2.1"}

func benchCompletions() []ingest.Completion {
	cs := make([]ingest.Completion, 0, len(uaCorpus)*len(benchPages))
	for i, u := range uaCorpus {
		for j, p := range benchPages {
			cs = append(cs, ingest.Completion{
				Source: ingest.SourceBrowser,
				Page:   ingest.Page{URL: p[0], Referrer: p[1]},
				Client: ingest.Client{UserAgent: u.ua, IP: benchIPs[(i+j)%len(benchIPs)]},
			})
		}
	}
	return cs
}

// BenchmarkEnrich measures one completion's enrichment with the user-agent
// cache warm (the steady state: a site's user agents repeat), over a corpus
// of every user agent in uaCorpus × every page in benchPages.
func BenchmarkEnrich(b *testing.B) {
	for _, geo := range []bool{false, true} {
		b.Run(fmt.Sprintf("geoip=%v", geo), func(b *testing.B) {
			cfg := Config{}
			if geo {
				cfg.GeoIP.CityDB = writeTestDB(b, "GeoLite2-City")
			}
			e := newTestEnricher(b, cfg)
			cs := benchCompletions()
			for i := range cs {
				c := cs[i]
				e.Enrich(&c) // warm the cache
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				c := cs[i%len(cs)]
				e.Enrich(&c)
				i++
			}
		})
	}
}

// BenchmarkParseUA is the cost of a cache miss.
func BenchmarkParseUA(b *testing.B) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		parseUA(uaCorpus[i%len(uaCorpus)].ua)
		i++
	}
}

func BenchmarkAttribution(b *testing.B) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := benchPages[i%len(benchPages)]
		a := parseAttribution(p[0], p[1])
		_ = a.touchpoint()
		i++
	}
}

func BenchmarkGeoLookup(b *testing.B) {
	g, err := openGeoDB(writeTestDB(b, "GeoLite2-City"))
	if err != nil {
		b.Fatal(err)
	}
	defer g.close()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.lookup(benchIPs[i%len(benchIPs)])
		i++
	}
}
