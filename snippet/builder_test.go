package snippet

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

// Builder is what the collector serves /t.js from.
var _ ingest.ScriptSource = (*Builder)(nil)

// sizeBudget is the tracker's gzipped size limit (product goal: 4 KB).
const sizeBudget = 4096

func testConfig() Config {
	return Config{
		Sites: []ingest.Site{{ID: "shop", Domains: []string{"shop.example.com"}}, {ID: "blog"}},
		Definitions: []ingest.Definition{
			{Name: "viewed_car", Capture: []ingest.Capture{{Clicked: "a.car-card"}, {Visited: "/cars/*"}}},
			{Name: "form_submitted"},
		},
		EventPath: "/collect",
		Mirrors: func(site string) any {
			if site == "shop" {
				return []map[string]any{{"event": "form_submitted", "name": "Lead"}}
			}
			return nil
		},
	}
}

func TestScriptSize(t *testing.T) {
	b, err := NewBuilder(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := b.Script("shop")
	if !ok {
		t.Fatal(`Script("shop") not found`)
	}
	t.Logf("t.js for site shop: %d bytes minified, %d bytes gzipped (budget %d)", len(s.JS), len(s.Gzip), sizeBudget)
	if len(s.Gzip) > sizeBudget {
		t.Errorf("gzipped tracker is %d bytes; the budget is %d", len(s.Gzip), sizeBudget)
	}
}

func TestBuilderBakesSiteConfig(t *testing.T) {
	b, err := NewBuilder(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	shop, _ := b.Script("shop")
	blog, _ := b.Script("blog")
	for _, want := range []string{`"shop"`, `"/collect"`, `"a.car-card"`, `"/cars/*"`, `"Lead"`} {
		if !bytes.Contains(shop.JS, []byte(want)) {
			t.Errorf("shop script lacks %s", want)
		}
	}
	if bytes.Contains(shop.JS, []byte("__TALLY__")) {
		t.Error("shop script still holds the __TALLY__ placeholder")
	}
	if bytes.Contains(blog.JS, []byte(`"Lead"`)) {
		t.Error("blog script holds shop's mirror rules")
	}
	if shop.ETag == blog.ETag || shop.ETag == "" {
		t.Errorf("ETags %s and %s; want distinct, non-empty", shop.ETag, blog.ETag)
	}
	zr, err := gzip.NewReader(bytes.NewReader(shop.Gzip))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, shop.JS) {
		t.Error("gzip form does not decompress to the script")
	}
	if _, ok := b.Script("nope"); ok {
		t.Error(`Script("nope") found; want not found`)
	}
}

func TestBuilderDefaultsEventPath(t *testing.T) {
	cfg := testConfig()
	cfg.EventPath = ""
	b, err := NewBuilder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := b.Script("blog")
	if !bytes.Contains(s.JS, []byte(`"/e"`)) {
		t.Errorf("script lacks the default path /e")
	}
}

func TestBuilderRejectsUnencodableMirrors(t *testing.T) {
	cfg := testConfig()
	cfg.Mirrors = func(string) any { return func() {} }
	if _, err := NewBuilder(cfg); err == nil {
		t.Error("NewBuilder with a mirror value that is not JSON: nil error; want one")
	}
}

func TestTags(t *testing.T) {
	got := Tags("shop", "https://shop.example.com/")
	want := "<script>" + Stub + "</script>\n" +
		`<script async src="https://shop.example.com/t.js?site=shop" data-site="shop"></script>` + "\n"
	if got != want {
		t.Errorf("Tags = %q; want %q", got, want)
	}
	if got := Tags(`a"b`, "http://x"); !strings.Contains(got, `site=a%22b" data-site="a&#34;b"`) {
		t.Errorf("Tags did not escape the site id: %q", got)
	}
}

func TestCapturesOf(t *testing.T) {
	got, _ := json.Marshal(capturesOf(testConfig().Definitions))
	want := `[["viewed_car","c","a.car-card"],["viewed_car","v","/cars/*"]]`
	if string(got) != want {
		t.Errorf("capturesOf = %s; want %s", got, want)
	}
}

func TestDemoPage(t *testing.T) {
	page := string(DemoPage(`de"mo`))
	for _, want := range []string{
		`<script>` + Stub + `</script>`,
		`src="/t.js?site=de%22mo"`,
		`class="car-card"`,
		`tally('debug'`,
		`'form_submitted'`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("demo page lacks %s", want)
		}
	}
	if strings.Contains(page, `de"mo`) {
		t.Error("demo page holds the site id unescaped")
	}
}
