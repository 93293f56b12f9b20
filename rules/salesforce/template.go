package salesforce

import (
	"fmt"
	"regexp"
	"strings"
)

// Template is a parsed subject template: literal text and {{name}}
// placeholders.
type Template struct {
	parts []part
}

type part struct {
	text string
	name string // a placeholder when not empty
}

// builtins are the placeholders that are not properties.
var builtins = []string{"label", "event", "email", "url"}

var placeholderName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,49}$`)

// ParseTemplate parses s. A "{{" must open a placeholder closed by "}}"
// around a name (a builtin or a property name, spaces around it allowed);
// a lone "}}" is text.
func ParseTemplate(s string) (Template, error) {
	var t Template
	rest, off := s, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, part{text: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{text: rest[:i]})
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return Template{}, fmt.Errorf("template: {{ at offset %d is not closed by }}", off+i)
		}
		name := strings.TrimSpace(rest[i+2 : i+2+j])
		if !placeholderName.MatchString(name) {
			return Template{}, fmt.Errorf("template: {{%s}} at offset %d is not a name (a-z, 0-9, _; like {{label}} or {{form_id}})", rest[i+2:i+2+j], off+i)
		}
		t.parts = append(t.parts, part{name: name})
		n := i + 2 + j + 2
		rest, off = rest[n:], off+n
	}
}

// Names lists the placeholders in order.
func (t Template) Names() []string {
	var out []string
	for _, p := range t.parts {
		if p.name != "" {
			out = append(out, p.name)
		}
	}
	return out
}

// Render fills the placeholders with value's answers ("" when unknown).
func (t Template) Render(value func(name string) string) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.name != "" {
			b.WriteString(value(p.name))
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}
