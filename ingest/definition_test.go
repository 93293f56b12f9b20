package ingest

import (
	"fmt"
	"strings"
	"testing"
)

func codes(errs []FieldError) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Code)
	}
	return out
}

func hasCode(errs []FieldError, code string) bool {
	for _, e := range errs {
		if e.Code == code {
			return true
		}
	}
	return false
}

func TestDefinitionNameLimits(t *testing.T) {
	f := func(name string, wantCode string) {
		t.Helper()
		d := Definition{Name: name, Label: "x"}
		errs := d.Check("events[0]")
		if wantCode == "" && len(errs) > 0 {
			t.Errorf("Check(name %q) = %v; want no problem", name, errs)
		}
		if wantCode != "" && !hasCode(errs, wantCode) {
			t.Errorf("Check(name %q) codes = %v; want %s", name, codes(errs), wantCode)
		}
	}
	f("a"+strings.Repeat("b", 49), "")              // 50
	f("a"+strings.Repeat("b", 50), "NAME_TOO_LONG") // 51
	f("viewed_car", "")
	f("", "MISSING_NAME")
	f("Viewed_car", "INVALID_NAME")
	f("1st", "INVALID_NAME")
	f("viewed-car", "INVALID_NAME")
	f("vüewed", "INVALID_NAME")
	f("page_view", "RESERVED_NAME")
}

func TestDefinitionLabelLimitCountsCharacters(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want bool
	}{{100, true}, {101, false}} {
		label := strings.Repeat("é", tc.n) // 2 bytes each: bytes would be 200/202
		d := Definition{Name: "e", Label: label}
		errs := d.Check("events[0]")
		if ok := !hasCode(errs, "LABEL_TOO_LONG"); ok != tc.want {
			t.Errorf("label of %d characters: ok = %v; want %v (%v)", tc.n, ok, tc.want, errs)
		}
	}
}

func TestPropertyNameAndCountLimits(t *testing.T) {
	props := func(n int) []Property {
		out := make([]Property, n)
		for i := range out {
			out[i] = Property{Name: fmt.Sprintf("p%d", i), Type: TypeString}
		}
		return out
	}
	if errs := (&Definition{Name: "e", Properties: props(50)}).Check("e"); len(errs) > 0 {
		t.Errorf("50 properties: %v; want none", errs)
	}
	if errs := (&Definition{Name: "e", Properties: props(51)}).Check("e"); !hasCode(errs, "TOO_MANY_PROPERTIES") {
		t.Errorf("51 properties: codes %v; want TOO_MANY_PROPERTIES", codes(errs))
	}
	name50 := "p" + strings.Repeat("x", 49)
	if errs := (&Definition{Name: "e", Properties: []Property{{Name: name50, Type: TypeString}}}).Check("e"); len(errs) > 0 {
		t.Errorf("property name of 50: %v; want none", errs)
	}
	errs := (&Definition{Name: "e", Properties: []Property{{Name: name50 + "x", Type: TypeString}}}).Check("e")
	if !hasCode(errs, "NAME_TOO_LONG") || errs[0].Path != "e.properties[0].name" {
		t.Errorf("property name of 51: %v; want NAME_TOO_LONG at e.properties[0].name", errs)
	}
}

func TestDefinitionPropertyRules(t *testing.T) {
	for _, tc := range []struct {
		p    Property
		code string
	}{
		{Property{Name: "a", Type: "text"}, "INVALID_TYPE"},
		{Property{Name: "a", Type: TypeEnumeration}, "MISSING_OPTIONS"},
		{Property{Name: "a", Type: TypeEnumeration, Options: []string{"x;y"}}, "INVALID_OPTION"},
		{Property{Name: "a", Type: TypeString, Options: []string{"x"}}, "UNEXPECTED_OPTIONS"},
		{Property{Name: "hs_city", Type: TypeString}, "RESERVED_NAME"},
		{Property{Name: "Make", Type: TypeString}, "INVALID_NAME"},
	} {
		errs := (&Definition{Name: "e", Properties: []Property{tc.p}}).Check("e")
		if !hasCode(errs, tc.code) {
			t.Errorf("Check(%+v) codes = %v; want %s", tc.p, codes(errs), tc.code)
		}
	}
	dup := &Definition{Name: "e", Properties: []Property{{Name: "a", Type: TypeString}, {Name: "a", Type: TypeNumber}}}
	if errs := dup.Check("e"); !hasCode(errs, "DUPLICATE_PROPERTY") {
		t.Errorf("duplicate property: codes = %v; want DUPLICATE_PROPERTY", codes(errs))
	}
	bad := &Definition{Name: "e", Capture: []Capture{{}, {Clicked: "a", Visited: "/x"}, {Visited: "cars"}}}
	if errs := bad.Check("e"); len(errs) != 3 {
		t.Errorf("bad captures: %v; want 3 problems", errs)
	}
}

func TestNormalize(t *testing.T) {
	enum := Property{Name: "c", Type: TypeEnumeration, Options: []string{"new", "used"}}
	for _, tc := range []struct {
		p       Property
		in      string
		want    string
		wantErr bool
	}{
		{Property{Type: TypeString}, " any text ", " any text ", false},
		{Property{Type: TypeNumber}, "2020", "2020", false},
		{Property{Type: TypeNumber}, " 2020 ", "2020", false},
		{Property{Type: TypeNumber}, "007", "7", false},
		{Property{Type: TypeNumber}, "12.50", "12.5", false},
		{Property{Type: TypeNumber}, "-0.25", "-0.25", false},
		{Property{Type: TypeNumber}, "1e3", "1000", false},
		{Property{Type: TypeNumber}, "NaN", "", true},
		{Property{Type: TypeNumber}, "Inf", "", true},
		{Property{Type: TypeNumber}, "1e400", "", true},
		{Property{Type: TypeNumber}, "twelve", "", true},
		{Property{Type: TypeNumber}, "", "", true},
		{Property{Type: TypeDatetime}, "1719576571000", "1719576571000", false},
		{Property{Type: TypeDatetime}, "2024-06-28T12:09:31Z", "1719576571000", false},
		{Property{Type: TypeDatetime}, "2024-06-28T14:09:31.250+02:00", "1719576571250", false},
		{Property{Type: TypeDatetime}, "2024-06-28", "1719532800000", false},
		{Property{Type: TypeDatetime}, "yesterday", "", true},
		{Property{Type: TypeDatetime}, "-5", "", true},
		{Property{Type: TypeDate}, "2024-06-28", "2024-06-28", false},
		{Property{Type: TypeDate}, "1719532800000", "2024-06-28", false},
		{Property{Type: TypeDate}, "1719576571000", "", true}, // not midnight
		{Property{Type: TypeDate}, "28/06/2024", "", true},
		{Property{Type: TypeBool}, "true", "true", false},
		{Property{Type: TypeBool}, "FALSE", "false", false},
		{Property{Type: TypeBool}, "yes", "", true},
		{Property{Type: TypeBool}, "1", "", true},
		{enum, "new", "new", false},
		{enum, "new;used", "new;used", false},
		{enum, "New", "", true},
		{enum, "new;broken", "", true},
		{enum, "", "", true},
	} {
		got, err := tc.p.Normalize(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s Normalize(%q) = %q, %v; want %q, error %v", tc.p.Type, tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestStripPortalPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"pe1234567_viewed_car": "viewed_car",
		"viewed_car":           "viewed_car",
		"pe_viewed":            "pe_viewed",
		"pet_adopted":          "pet_adopted",
		"pe12":                 "pe12",
		"pe12_":                "",
	} {
		if got := stripPortalPrefix(in); got != want {
			t.Errorf("stripPortalPrefix(%q) = %q; want %q", in, got, want)
		}
	}
}
