package ingest

import (
	"fmt"
	"net/mail"
	"strings"
	"testing"
)

var testDef = Definition{Name: "viewed_car", Properties: []Property{
	{Name: "make", Type: TypeString},
	{Name: "year", Type: TypeNumber},
	{Name: "listing_url", Type: TypeString},
	{Name: "referrer_note", Type: TypeString},
	{Name: "share_link", Type: TypeString},
}}

func TestValueLengthLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		ok   bool
	}{
		{"make", 256, true}, {"make", 257, false},
		{"listing_url", 1024, true}, {"listing_url", 1025, false},
		{"referrer_note", 1024, true}, {"referrer_note", 1025, false},
		{"share_link", 1024, true}, {"share_link", 1025, false},
	} {
		v := strings.Repeat("ü", tc.n) // two bytes each: the limit counts characters
		var c Completion
		errs := ApplyProperties(&c, &testDef, []Prop{{tc.name, v}}, Strict, "properties")
		if (len(errs) == 0) != tc.ok {
			t.Errorf("Strict %s of %d characters: errors %v; want ok=%v", tc.name, tc.n, errs, tc.ok)
		}
		if !tc.ok && (errs[0].Code != "VALUE_TOO_LONG" || errs[0].Path != "properties."+tc.name) {
			t.Errorf("Strict %s of %d: got %+v; want VALUE_TOO_LONG at properties.%s", tc.name, tc.n, errs[0], tc.name)
		}

		c = Completion{}
		ApplyProperties(&c, &testDef, []Prop{{tc.name, v}}, Lenient, "properties")
		got, _ := c.Prop(tc.name)
		want := tc.n
		if !tc.ok {
			want = MaxLen(tc.name)
		}
		if n := len([]rune(got)); n != want {
			t.Errorf("Lenient %s of %d characters stored %d; want %d", tc.name, tc.n, n, want)
		}
		if tc.ok != (len(c.Truncated) == 0) {
			t.Errorf("Lenient %s of %d: Truncated = %v; want recorded only when cut", tc.name, tc.n, c.Truncated)
		}
	}
}

func TestPropertiesPerCompletionLimit(t *testing.T) {
	def := Definition{Name: "e"}
	for i := 0; i < 51; i++ {
		def.Properties = append(def.Properties, Property{Name: fmt.Sprintf("p%02d", i), Type: TypeString})
	}
	props := func(n int) []Prop {
		out := make([]Prop, n)
		for i := range out {
			out[i] = Prop{Name: fmt.Sprintf("p%02d", i), Value: "v"}
		}
		return out
	}
	var c Completion
	if errs := ApplyProperties(&c, &def, props(50), Strict, "properties"); len(errs) > 0 || len(c.Props) != 50 {
		t.Errorf("50 properties: errors %v, stored %d; want none, 50", errs, len(c.Props))
	}
	c = Completion{}
	errs := ApplyProperties(&c, &def, props(51), Strict, "properties")
	if len(errs) != 1 || errs[0].Code != "TOO_MANY_PROPERTIES" {
		t.Errorf("51 properties Strict: %v; want TOO_MANY_PROPERTIES", errs)
	}
	c = Completion{}
	ApplyProperties(&c, &def, props(51), Lenient, "properties")
	if len(c.Props) != 50 || len(c.Truncated) != 1 || !strings.HasPrefix(c.Truncated[0], "p50:") {
		t.Errorf("51 properties Lenient: stored %d, truncated %v; want 50 stored and p50 recorded", len(c.Props), c.Truncated)
	}
}

func TestCaseDuplicatesLastWinsAmongFirst50(t *testing.T) {
	def := Definition{Name: "e", Properties: []Property{{Name: "make", Type: TypeString}, {Name: "year", Type: TypeNumber}}}
	var c Completion
	// Sorted ascending as sent: "MAKE" < "Make" < "make"; the last one wins.
	errs := ApplyProperties(&c, &def, []Prop{{"make", "c"}, {"MAKE", "a"}, {"Make", "b"}, {"year", "2020"}}, Strict, "p")
	if len(errs) > 0 {
		t.Fatalf("case duplicates: %v; want no error", errs)
	}
	if got, _ := c.Prop("make"); got != "c" || len(c.Props) != 2 {
		t.Errorf("case duplicates stored %v; want make=c and year", c.Props)
	}
}

func TestUnknownAndInvalidProperties(t *testing.T) {
	var c Completion
	errs := ApplyProperties(&c, &testDef, []Prop{{"colour", "red"}, {"year", "new"}, {"make", "volvo"}, {"hs_bogus", "x"}}, Strict, "inputs[2].properties")
	want := map[string]string{
		"inputs[2].properties.colour":   "UNKNOWN_PROPERTY",
		"inputs[2].properties.year":     "INVALID_VALUE",
		"inputs[2].properties.hs_bogus": "UNKNOWN_PROPERTY",
	}
	if len(errs) != len(want) {
		t.Fatalf("errors %v; want %d", errs, len(want))
	}
	for _, e := range errs {
		if want[e.Path] != e.Code {
			t.Errorf("error %+v; want code %s at that path", e, want[e.Path])
		}
	}
	c = Completion{}
	errs = ApplyProperties(&c, &testDef, []Prop{{"colour", "red"}, {"year", "new"}, {"make", "volvo"}}, Lenient, "p")
	if len(errs) != 2 || len(c.Props) != 1 || len(c.Truncated) != 2 {
		t.Errorf("Lenient: errors %v props %v truncated %v; want 2 dropped and recorded, make kept", errs, c.Props, c.Truncated)
	}
}

func TestHubSpotDefaultPropertiesMapOntoStandardFields(t *testing.T) {
	var c Completion
	errs := ApplyProperties(&c, &testDef, []Prop{
		{"hs_page_url", "https://shop.example.com/cars/1"}, {"hs_referrer", "https://google.com/"},
		{"hs_city", "Cambridge"}, {"hs_touchpoint_source", "DIRECT_TRAFFIC"}, {"hs_utm_source", "news"},
		{"hs_screen_width", "1280"}, {"make", "volvo"},
	}, Strict, "p")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if c.Page.URL != "https://shop.example.com/cars/1" || c.Page.Referrer != "https://google.com/" ||
		c.Enrichment.City != "Cambridge" || c.Enrichment.TouchpointSource != "DIRECT_TRAFFIC" || c.Enrichment.UTMSource != "news" {
		t.Errorf("standard fields not filled: page %+v enrichment %+v", c.Page, c.Enrichment)
	}
	if v, ok := c.Prop("hs_screen_width"); !ok || v != "1280" {
		t.Errorf("hs_screen_width kept as property = %q, %v; want 1280", v, ok)
	}
	if _, ok := c.Prop("hs_page_url"); ok {
		t.Errorf("hs_page_url also stored as a property; want only the standard field")
	}
}

// FuzzPlainEmail: every address plainEmail takes without net/mail, net/mail
// takes too, as the same bare address.
func FuzzPlainEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", "a.b+c@x-y.example.org", "a..b@x.com", ".a@x.com", "a@-x.com", "a@x..com", "A <a@x.com>", "a@x", "%@x.y", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainEmail(s) {
			return
		}
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s {
			t.Fatalf("plainEmail takes %q; net/mail says %v, %v", s, a, err)
		}
	})
}
