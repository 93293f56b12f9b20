package rules

import (
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

func TestFilterMatch(t *testing.T) {
	props := map[ingest.PropertyType]*ingest.Property{}
	for _, p := range testDefs()[0].Properties {
		props[p.Type] = &p
	}
	const missing = "\x00missing"
	f := func(typ ingest.PropertyType, op Op, values []string, stored string, want bool) {
		t.Helper()
		fl := Filter{Property: props[typ].Name, Op: op}
		if arity(op) == 1 {
			fl.Value = &values[0]
		} else if arity(op) != 0 {
			fl.Values = values
		}
		c, prob := compileFilter(fl, props[typ])
		if prob != nil {
			t.Fatalf("compile %s %s %v: %s", typ, op, values, prob.msg)
		}
		got := c.match(stored, stored != missing)
		if got != want {
			t.Errorf("%s %s %v on %q = %v; want %v", typ, op, values, stored, got, want)
		}
	}
	s, n, dt, d, e, b := ingest.TypeString, ingest.TypeNumber, ingest.TypeDatetime, ingest.TypeDate, ingest.TypeEnumeration, ingest.TypeBool
	v := func(vs ...string) []string { return vs }

	// string: case-insensitive.
	f(s, OpEqual, v("Contact"), "contact", true)
	f(s, OpEqual, v("contact"), "CONTACT", true)
	f(s, OpEqual, v("contact"), "contact-us", false)
	f(s, OpNotEqual, v("contact"), "newsletter", true)
	f(s, OpNotEqual, v("contact"), "Contact", false)
	f(s, OpContains, v("TACT"), "contact", true)
	f(s, OpContains, v("news"), "contact", false)
	f(s, OpNotContains, v("news"), "contact", true)
	f(s, OpNotContains, v("con"), "Contact", false)
	f(s, OpStartsWith, v("CON"), "contact", true)
	f(s, OpStartsWith, v("tact"), "contact", false)
	f(s, OpEndsWith, v("TACT"), "contact", true)
	f(s, OpEndsWith, v("con"), "contact", false)
	f(s, OpMatchesRegex, v(`^c.n(tact)?$`), "CONTACT", true)
	f(s, OpMatchesRegex, v(`^\d+$`), "12a", false)
	f(s, OpMatchesRegex, v(`ta`), "contact", true) // unanchored search
	f(s, OpAnyOf, v("a", "Contact"), "CONTACT", true)
	f(s, OpAnyOf, v("a", "b"), "contact", false)
	f(s, OpNoneOf, v("a", "b"), "contact", true)
	f(s, OpNoneOf, v("a", "contact"), "Contact", false)
	f(s, OpKnown, nil, "x", true)
	f(s, OpKnown, nil, missing, false)
	f(s, OpKnown, nil, "", false) // empty is unknown
	f(s, OpUnknown, nil, missing, true)
	f(s, OpUnknown, nil, "x", false)
	// Missing values satisfy no operation but is_unknown, negative ones included.
	for _, op := range []Op{OpEqual, OpNotEqual, OpContains, OpNotContains, OpStartsWith, OpEndsWith, OpMatchesRegex, OpAnyOf, OpNoneOf} {
		vals := v("zzz")
		f(s, op, vals, missing, false)
	}
	// Case folding follows JavaScript's toLowerCase, per character.
	f(s, OpEqual, v("İSTANBUL"), "i\u0307stanbul", true)
	f(s, OpEqual, v("ΟΔΥΣΣΕΥΣ"), "οδυσσευσ", true)
	f(s, OpEqual, v("Straße"), "STRASSE", false)

	// number
	f(n, OpEqual, v("50"), "50", true)
	f(n, OpEqual, v("50.0"), "50", true)
	f(n, OpEqual, v("50"), "50.5", false)
	f(n, OpNotEqual, v("50"), "51", true)
	f(n, OpNotEqual, v("50"), "50", false)
	f(n, OpAnyOf, v("1", "2.5"), "2.5", true)
	f(n, OpAnyOf, v("1", "2.5"), "3", false)
	f(n, OpNoneOf, v("1", "2.5"), "3", true)
	f(n, OpNoneOf, v("1", "2.5"), "1", false)
	f(n, OpGreater, v("10"), "10.5", true)
	f(n, OpGreater, v("10"), "10", false)
	f(n, OpGreaterOrEqual, v("10"), "10", true)
	f(n, OpGreaterOrEqual, v("10"), "9.99", false)
	f(n, OpLess, v("-1"), "-2", true)
	f(n, OpLess, v("-1"), "-1", false)
	f(n, OpLessOrEqual, v("1e3"), "1000", true)
	f(n, OpLessOrEqual, v("1e3"), "1000.01", false)
	f(n, OpBetween, v("10", "20"), "10", true)
	f(n, OpBetween, v("10", "20"), "20", true)
	f(n, OpBetween, v("10", "20"), "20.5", false)
	f(n, OpKnown, nil, "0", true)
	f(n, OpUnknown, nil, "0", false)
	f(n, OpGreater, v("0"), missing, false)

	// datetime: epoch ms stored; values in ISO 8601 or epoch ms.
	f(dt, OpEqual, v("2026-01-02T03:04:05.678Z"), "1767323045678", true)
	f(dt, OpEqual, v("2026-01-02T03:04:05Z"), "1767323045678", false)
	f(dt, OpNotEqual, v("1767323045678"), "1767323045679", true)
	f(dt, OpNotEqual, v("1767323045678"), "1767323045678", false)
	f(dt, OpGreater, v("2026-01-01"), "1767323045678", true)
	f(dt, OpGreater, v("2026-02-01"), "1767323045678", false)
	f(dt, OpGreaterOrEqual, v("2026-01-02T03:04:05.678+00:00"), "1767323045678", true)
	f(dt, OpGreaterOrEqual, v("2026-01-02T04:04:05.678+00:00"), "1767323045678", false)
	f(dt, OpLess, v("2026-01-02T04:04:05.678+01:00"), "1767323045677", true)
	f(dt, OpLess, v("2026-01-02T04:04:05.678+01:00"), "1767323045678", false)
	f(dt, OpLessOrEqual, v("2026-01-03"), "1767323045678", true)
	f(dt, OpLessOrEqual, v("2026-01-02"), "1767323045678", false)
	f(dt, OpBetween, v("2026-01-01", "2026-01-03"), "1767323045678", true)
	f(dt, OpBetween, v("2026-01-03", "2026-01-04"), "1767323045678", false)
	f(dt, OpKnown, nil, "1767323045678", true)
	f(dt, OpUnknown, nil, missing, true)

	// date: YYYY-MM-DD stored.
	f(d, OpEqual, v("2000-02-29"), "2000-02-29", true)
	f(d, OpEqual, v("951782400000"), "2000-02-29", true) // epoch ms at midnight
	f(d, OpEqual, v("2000-02-28"), "2000-02-29", false)
	f(d, OpNotEqual, v("2000-02-28"), "2000-02-29", true)
	f(d, OpNotEqual, v("2000-02-29"), "2000-02-29", false)
	f(d, OpAnyOf, v("2000-01-01", "2000-02-29"), "2000-02-29", true)
	f(d, OpAnyOf, v("2000-01-01"), "2000-02-29", false)
	f(d, OpNoneOf, v("2000-01-01"), "2000-02-29", true)
	f(d, OpNoneOf, v("2000-02-29"), "2000-02-29", false)
	f(d, OpGreater, v("1999-12-31"), "2000-01-01", true)
	f(d, OpGreater, v("2000-01-01"), "2000-01-01", false)
	f(d, OpGreaterOrEqual, v("2000-01-01"), "2000-01-01", true)
	f(d, OpGreaterOrEqual, v("2000-01-02"), "2000-01-01", false)
	f(d, OpLess, v("2000-01-02"), "2000-01-01", true)
	f(d, OpLess, v("2000-01-01"), "2000-01-01", false)
	f(d, OpLessOrEqual, v("2000-01-01"), "2000-01-01", true)
	f(d, OpLessOrEqual, v("1999-12-31"), "2000-01-01", false)
	f(d, OpBetween, v("1990-01-01", "2000-01-01"), "2000-01-01", true)
	f(d, OpBetween, v("1990-01-01", "1999-12-31"), "2000-01-01", false)
	f(d, OpKnown, nil, "2000-01-01", true)
	f(d, OpUnknown, nil, "2000-01-01", false)

	// enumeration: multi-valued, options exact.
	f(e, OpEqual, v("pro;team"), "team;pro", true)
	f(e, OpEqual, v("pro"), "pro;team", false)
	f(e, OpNotEqual, v("pro"), "pro;team", true)
	f(e, OpNotEqual, v("pro"), "pro", false)
	f(e, OpContains, v("pro"), "free;pro", true)
	f(e, OpContains, v("pro;team"), "free;pro", false)
	f(e, OpNotContains, v("team"), "free;pro", true)
	f(e, OpNotContains, v("pro"), "free;pro", false)
	f(e, OpAnyOf, v("team", "pro"), "free;pro", true)
	f(e, OpAnyOf, v("team"), "free;pro", false)
	f(e, OpNoneOf, v("team"), "free;pro", true)
	f(e, OpNoneOf, v("team", "free"), "free;pro", false)
	f(e, OpKnown, nil, "free", true)
	f(e, OpUnknown, nil, "free", false)
	f(e, OpNoneOf, v("team"), missing, false)

	// bool
	f(b, OpEqual, v("true"), "true", true)
	f(b, OpEqual, v("TRUE"), "false", false)
	f(b, OpNotEqual, v("true"), "false", true)
	f(b, OpNotEqual, v("false"), "false", false)
	f(b, OpKnown, nil, "false", true)
	f(b, OpUnknown, nil, "false", false)
	f(b, OpEqual, v("false"), missing, false)
}

func TestOpsCoverEveryType(t *testing.T) {
	// Every operation is valid for at least one type, and every type has
	// is_known and is_unknown.
	for _, op := range allOps {
		ok := false
		for _, ops := range opsByType {
			for _, o := range ops {
				ok = ok || o == op
			}
		}
		if !ok {
			t.Errorf("operation %s is valid for no property type", op)
		}
	}
	for typ := range opsByType {
		if !opAllowed(typ, OpKnown) || !opAllowed(typ, OpUnknown) {
			t.Errorf("type %s lacks is_known/is_unknown", typ)
		}
	}
}

func TestFold(t *testing.T) {
	for _, tc := range [][2]string{
		{"ABC", "abc"}, {"Ünïcödé", "ünïcödé"}, {"İ", "i\u0307"}, {"ΣΑΣ", "σασ"}, {"ǅ", "ǆ"},
	} {
		if got := fold(tc[0]); got != tc[1] {
			t.Errorf("fold(%q) = %q; want %q", tc[0], got, tc[1])
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	rules, errs := compile([]Rule{testRule()}, testDests(), testDefs())
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	c := ingest.Completion{EventName: "form_submitted", Props: []ingest.Prop{
		{Name: "ads_consent", Value: "yes"}, {Name: "deal_amount", Value: "120"}, {Name: "form_id", Value: "Contact"},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if !rules[0].matches(&c) {
			b.Fatal("no match")
		}
	}
}

// FuzzFilter: any operation, type, value and stored value compiles or is
// refused, and never panics when matched.
func FuzzFilter(f *testing.F) {
	f.Add(uint8(0), uint8(0), "contact", "Contact")
	f.Add(uint8(6), uint8(0), `^c(on|all)\d+$`, "con12")
	f.Add(uint8(13), uint8(1), "10", "15")
	f.Add(uint8(2), uint8(4), "pro;team", "free;pro")
	f.Add(uint8(9), uint8(3), "2000-02-29", "2000-02-29")
	f.Add(uint8(11), uint8(2), "2026-01-02T03:04:05Z", "1767323045000")
	f.Add(uint8(0), uint8(5), "true", "false")
	types := []ingest.PropertyType{ingest.TypeString, ingest.TypeNumber, ingest.TypeDatetime, ingest.TypeDate, ingest.TypeEnumeration, ingest.TypeBool}
	f.Fuzz(func(t *testing.T, opi, typi uint8, value, stored string) {
		op := allOps[int(opi)%len(allOps)]
		p := &ingest.Property{Name: "p", Type: types[int(typi)%len(types)]}
		if p.Type == ingest.TypeEnumeration {
			p.Options = []string{"free", "pro", "team"}
		}
		fl := Filter{Property: "p", Op: op}
		switch arity(op) {
		case 1:
			fl.Value = &value
		case 2:
			fl.Values = []string{value, value}
		case -1:
			fl.Values = []string{value}
		}
		c, prob := compileFilter(fl, p)
		if prob != nil {
			return
		}
		stored, err := p.Normalize(stored)
		if err != nil {
			stored = "garbage ;;" // what matching must survive anyway
		}
		m := c.match(stored, true)
		if op == OpKnown && stored != "" && !m {
			t.Errorf("is_known on %q = false", stored)
		}
	})
}
