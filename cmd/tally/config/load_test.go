package config

import (
	"os"
	"strings"
	"testing"
)

func env(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExampleConfigIsValid(t *testing.T) {
	f, err := Load("../../../examples/tally.yaml", env(nil))
	if err != nil {
		t.Fatalf("examples/tally.yaml: %v", err)
	}
	if len(f.Events) == 0 || len(f.Sites) == 0 {
		t.Errorf("example config has %d events and %d sites; want some of each", len(f.Events), len(f.Sites))
	}
	if f.APITokens[0].Token != "demo-token-change-me" {
		t.Errorf("token default = %q; want the ${...:-default} value", f.APITokens[0].Token)
	}
}

func TestEveryProblemWithPosition(t *testing.T) {
	src := `listen: ":8080"
clikhouse:
  dsn: ""
sites:
  - id: shop
    domains: [shop.example.com]
    cookie_days: many
api_tokens:
  - name: crm
    token: ${TALLY_TOKEN_CRM}
events:
  - name: Viewed-Car
    label: x
    properties:
      - {name: year, type: numbr}
      - {name: year, type: number, colour: red}
  - name: ok_event
    properties: {name: x}
`
	_, ps := Parse("tally.yaml", []byte(src), env(nil))
	want := []string{
		`tally.yaml:2:1: unknown key "clikhouse" in the config; did you mean "clickhouse"?`,
		`tally.yaml:7:18: sites[0].cookie_days: "many" is not a whole number`,
		`tally.yaml:10:12: environment variable TALLY_TOKEN_CRM is not set`,
		`tally.yaml:12:11: event name "Viewed-Car" must start with a letter`,
		`tally.yaml:15:28: unknown property type "numbr"`,
		`tally.yaml:16:16: property "year" is already defined at properties[0]`,
		`tally.yaml:16:36: unknown key "colour" in events[0].properties[1]; known keys:`,
		`tally.yaml:18:17: events[1].properties must be a list`,
	}
	checkProblems(t, ps, want)
}

func TestSemanticProblemsArePlaced(t *testing.T) {
	src := `sites:
  - id: shop
    domains: ["https://shop.example.com/"]
  - id: shop
    domains: [b.example.com]
api_tokens:
  - {name: crm, token: short}
events:
  - name: Viewed-Car
    label: x
    properties:
      - {name: year, type: numbr}
      - {name: year, type: number}
      - {name: condition, type: enumeration}
  - name: ` + strings.Repeat("e", 51) + `
`
	_, ps := Parse("t.yaml", []byte(src), env(nil))
	want := []string{
		`t.yaml:3:15: domain "https://shop.example.com/" must be a bare host name`,
		`t.yaml:4:9: site id "shop" is already used by sites[0]`,
		`t.yaml:7:24: token is 5 characters; use at least 16`,
		`t.yaml:9:11: event name "Viewed-Car" must start with a letter and use only a-z`,
		`t.yaml:12:28: unknown property type "numbr"`,
		`t.yaml:13:16: property "year" is already defined at properties[0]`,
		`t.yaml:14:9: enumeration property "condition" needs at least one option`,
		`t.yaml:15:11: event name "eeee`,
	}
	checkProblems(t, ps, want)
}

func checkProblems(t *testing.T, ps Problems, want []string) {
	t.Helper()
	got := strings.Split(ps.Error(), "\n")
	if len(got) != len(want) {
		t.Errorf("got %d problems; want %d:\n%s", len(got), len(want), ps.Error())
	}
	for i := range min(len(got), len(want)) {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q; want prefix %q", i, got[i], want[i])
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	src := "listen: \"${ADDR:-127.0.0.1:9999}\"\napi_tokens:\n  - {name: crm, token: \"${TOK}\"}\nclickhouse:\n  database: ${DB}\n"
	f, ps := Parse("t.yaml", []byte(src), env(map[string]string{"TOK": "0123456789abcdefXYZ", "DB": "analytics"}))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if f.Listen != "127.0.0.1:9999" || f.APITokens[0].Token != "0123456789abcdefXYZ" || f.ClickHouse.Database != "analytics" {
		t.Errorf("expanded = %q %q %q", f.Listen, f.APITokens[0].Token, f.ClickHouse.Database)
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	_, ps := Parse("t.yaml", []byte("listen: \":8080\"\nsites:\n  - id: [unclosed\n"), env(nil))
	// The YAML parser places an unclosed flow sequence at the line before
	// the one that lacks the bracket.
	if len(ps) != 1 || ps[0].Line != 2 || !strings.Contains(ps[0].Message, "invalid YAML: did not find expected") {
		t.Errorf("Parse(bad YAML) = %v; want one invalid YAML problem at line 2", ps)
	}
	_, ps = Parse("t.yaml", nil, env(nil))
	if len(ps) != 1 {
		t.Errorf("Parse(empty) = %v; want one problem", ps)
	}
}

func FuzzParse(f *testing.F) {
	example, _ := os.ReadFile("../../../examples/tally.yaml")
	f.Add(example)
	f.Add([]byte("events:\n  - name: a\n    properties: [{name: b, type: number}]\n"))
	f.Add([]byte("listen: ${X:-:1}\nsites: [{id: s, domains: [a]}]\n"))
	f.Add([]byte("- just\n- a list\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		f, ps := Parse("fuzz.yaml", data, env(nil))
		if (f == nil) == (len(ps) == 0) {
			t.Fatalf("Parse returned config %v with %d problems", f != nil, len(ps))
		}
		for _, p := range ps {
			if p.Line < 1 || p.Column < 1 || p.Message == "" {
				t.Fatalf("problem without a place: %+v", p)
			}
		}
	})
}

func TestTokenScopes(t *testing.T) {
	src := `api_tokens:
  - {name: ops, token: ops-token-0123456789, scopes: [console, read]}
  - {name: bad, token: bad-token-0123456789, scopes: [admin]}
`
	_, ps := Parse("t.yaml", []byte(src), env(nil))
	checkProblems(t, ps, []string{`t.yaml:3:55: scope "admin" is not send, read, erase, replay or console`})
}
