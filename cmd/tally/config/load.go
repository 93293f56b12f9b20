package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with the config, at a place in the file.
type Problem struct {
	File    string
	Line    int
	Column  int
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
}

// Problems is every problem found in one config; it is an error.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// LookupEnv reads an environment variable (os.LookupEnv in production).
type LookupEnv func(name string) (string, bool)

// Load reads and checks the config file at path. A returned error is either
// Problems (the file is wrong) or an I/O error.
func Load(path string, env LookupEnv) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	f, ps := Parse(path, data, env)
	if len(ps) > 0 {
		return nil, ps
	}
	return f, nil
}

// Parse decodes and checks a config. It reports every problem it can find at
// once: syntax, unknown keys, values of the wrong type, unset environment
// variables, and every rule of the config's semantics (limits of event
// definitions, references between rules, events and destinations).
func Parse(name string, data []byte, env LookupEnv) (*File, Problems) {
	if env == nil {
		env = os.LookupEnv
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{syntaxProblem(name, err)}
	}
	p := &parser{file: name, env: env, index: map[string]*yaml.Node{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == 0 || root.Kind == yaml.DocumentNode { // empty file
		return nil, Problems{{File: name, Line: 1, Column: 1, Message: "config is empty; see examples/tally.yaml for a starting point"}}
	}
	p.walk(root, reflect.TypeOf(File{}), "")
	structural := len(p.problems)
	p.structural = structural
	// Decode even when walk found problems: yaml fills what it can, so the
	// semantic checks below still report the rest of the file at once.
	var f File
	if err := root.Decode(&f); err != nil && structural == 0 {
		// walk checks every scalar, so this is a mismatch walk did not
		// foresee; report it without a precise column rather than not at all.
		return nil, Problems{syntaxProblem(name, err)}
	}
	for _, fe := range Check(&f) {
		p.at(fe.Path, fe.Message)
	}
	if len(p.problems) > 0 {
		return nil, p.sorted()
	}
	return &f, nil
}

type parser struct {
	file     string
	env      LookupEnv
	index    map[string]*yaml.Node // YAML path -> node, for placing semantic problems
	problems Problems
	// structural counts the problems walk found: a semantic problem at the
	// same place as one of them is its consequence and left out.
	structural int
}

func (p *parser) sorted() Problems {
	sort.SliceStable(p.problems, func(i, j int) bool {
		a, b := p.problems[i], p.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return p.problems
}

func (p *parser) add(n *yaml.Node, format string, args ...any) {
	p.problems = append(p.problems, Problem{File: p.file, Line: max(n.Line, 1), Column: max(n.Column, 1), Message: fmt.Sprintf(format, args...)})
}

// at places a problem reported by path at the deepest node that exists on
// that path (a missing key is reported where its parent is).
func (p *parser) at(path, msg string) {
	for q := path; ; {
		if n, ok := p.index[q]; ok {
			for i, prev := range p.problems {
				if prev.Line == n.Line && prev.Column == n.Column && (i < p.structural || prev.Message == msg) {
					return // the value was already refused, or this was said here
				}
			}
			p.add(n, "%s", msg)
			return
		}
		i := strings.LastIndexAny(q, ".[")
		if i < 0 {
			break
		}
		q = q[:i]
	}
	p.problems = append(p.problems, Problem{File: p.file, Line: 1, Column: 1, Message: msg})
}

// walk checks node against the Go type it will decode into, expanding
// ${ENV} references in scalars and indexing every node by its path.
func (p *parser) walk(n *yaml.Node, t reflect.Type, path string) {
	p.index[path] = n
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	switch {
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			p.add(n, "%s must be a mapping of keys to values", describe(path))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			fp := join(path, k.Value)
			p.index[fp] = k
			f, ok := fields[k.Value]
			if !ok {
				p.add(k, "unknown key %q in %s%s", k.Value, describe(path), suggest(k.Value, fields))
				continue
			}
			p.walk(v, f.Type, fp)
			p.index[fp] = v
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			p.add(n, "%s must be a mapping of keys to values", describe(path))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			fp := join(path, k.Value)
			p.index[fp] = k
			p.walk(v, t.Elem(), fp)
			p.index[fp] = v
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			p.add(n, "%s must be a list", describe(path))
			return
		}
		for i, item := range n.Content {
			p.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			p.add(n, "%s must be a single value, not a %s", describe(path), kindName(n.Kind))
			return
		}
		p.expand(n)
		target := reflect.New(t)
		if err := n.Decode(target.Interface()); err != nil {
			p.add(n, "%s: %q is not %s", describe(path), n.Value, typeName(t))
		}
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${NAME} and ${NAME:-default} in a scalar. An unset
// variable without a default is a problem: a secret that silently became
// empty would fail later and less clearly.
func (p *parser) expand(n *yaml.Node) {
	if !strings.Contains(n.Value, "${") {
		return
	}
	n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v, ok := p.env(m[1]); ok && v != "" {
			return v
		}
		if m[2] != "" {
			return m[3]
		}
		p.add(n, "environment variable %s is not set (write ${%s:-default} to give a default)", m[1], m[1])
		return ""
	})
	if n.Tag == "" || n.Style != 0 {
		return
	}
	n.Tag = "" // let the expanded text resolve as the field's type
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		switch {
		case len(tag) > 1 && tag[1] == "inline":
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
		case f.Anonymous && tag[0] == "":
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
		case tag[0] == "-" || !f.IsExported():
		case tag[0] != "":
			out[tag[0]] = f
		default:
			out[strings.ToLower(f.Name)] = f
		}
	}
	return out
}

func suggest(key string, fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	best, bestDist := "", 3 // suggest only names within two edits
	for _, n := range names {
		if d := editDistance(strings.ToLower(key), n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; known keys: " + strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance between two short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(path string) string {
	if path == "" {
		return "the config"
	}
	return path
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func typeName(t reflect.Type) string {
	if t.String() == "time.Duration" {
		return "a duration (like 30s, 5m, 1h)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.String:
		return "text"
	}
	return "a " + t.String()
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func syntaxProblem(name string, err error) Problem {
	line := 1
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimSpace(strings.SplitN(msg, m[0]+":", 2)[len(strings.SplitN(msg, m[0]+":", 2))-1])
	}
	return Problem{File: name, Line: line, Column: 1, Message: "invalid YAML: " + msg}
}
