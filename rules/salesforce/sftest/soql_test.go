package sftest

import (
	"slices"
	"testing"

	"github.com/tally-analytics/tally/rules/salesforce"
)

// FuzzQuoteSOQL: every string tally quotes reads back, through the
// stand-in's SOQL literal parser, as itself, alone and in a list.
func FuzzQuoteSOQL(f *testing.F) {
	for _, s := range []string{"ada@example.com", "o'brien@example.com", `back\slash`, "line\nbreak", `"`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := literals(salesforce.QuoteSOQL(s) + ", " + salesforce.QuoteSOQL("x"))
		if err != nil {
			t.Fatalf("literals(QuoteSOQL(%q)) = %v", s, err)
		}
		if !slices.Equal(got, []string{s, "x"}) {
			t.Fatalf("literals(QuoteSOQL(%q)) = %q", s, got)
		}
	})
}

func TestLiteralsRefuseUnescapedQuotes(t *testing.T) {
	for _, in := range []string{`'o'brien'`, `'a' 'b'`, `'a`, `'a\q'`, `a`} {
		if got, err := literals(in); err == nil {
			t.Errorf("literals(%q) = %q; want an error", in, got)
		}
	}
}

func TestIDs(t *testing.T) {
	s := New(Config{})
	id := s.newID("003")
	if len(id) != 18 || !validID(id) || !validID(id[:15]) {
		t.Errorf("newID = %q; want a valid 18-character id", id)
	}
	if bad := id[:15] + "ZZZ"; validID(bad) {
		t.Errorf("validID(%q) = true; want false for a wrong suffix", bad)
	}
	// The suffix encodes which of each five characters are upper case.
	if got := idSuffix("00Q5g0000000003"); got != "EAA" {
		t.Errorf("idSuffix(00Q5g0000000003) = %q; want EAA", got)
	}
}
