package salesforce

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	f := func(in, render, err string) {
		t.Helper()
		tpl, e := ParseTemplate(in)
		if err != "" {
			if e == nil || !strings.Contains(e.Error(), err) {
				t.Errorf("ParseTemplate(%q) = %v; want an error containing %q", in, e, err)
			}
			return
		}
		if e != nil {
			t.Fatalf("ParseTemplate(%q) = %v", in, e)
		}
		if got := tpl.Render(func(n string) string { return "<" + n + ">" }); got != render {
			t.Errorf("Render(%q) = %q; want %q", in, got, render)
		}
	}
	f("{{label}}", "<label>", "")
	f("Form {{ form_id }}: {{label}} }}", "Form <form_id>: <label> }}", "")
	f("no placeholders", "no placeholders", "")
	f("{{label", "", "offset 0 is not closed")
	f("ok {{Label}}", "", "offset 3 is not a name")
	f("{{}}", "", "is not a name")
}

// FuzzTemplate: parsing never panics, and what parses renders its text
// back around the placeholders it names.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{{label}}", "a {{b}} c", "{{", "}}", "{{ x }}{{y}}", "{{{{a}}}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := ParseTemplate(s)
		if err != nil {
			return
		}
		back := tpl.Render(func(n string) string { return "{{" + n + "}}" })
		again, err := ParseTemplate(back)
		if err != nil {
			t.Fatalf("rendering %q back gave %q, which does not parse: %v", s, back, err)
		}
		if !slices.Equal(again.Names(), tpl.Names()) {
			t.Fatalf("names of %q = %q; after a round trip %q", s, tpl.Names(), again.Names())
		}
	})
}
