package snippet

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
	"github.com/tally-analytics/tally/ingest"
)

//go:embed src/*.js
var sources embed.FS

// Config is what a Builder needs from the config file.
type Config struct {
	Sites       []ingest.Site
	Definitions []ingest.Definition
	// EventPath is the collection path the script posts to; empty means /e.
	EventPath string
	// Mirrors returns a site's pixel mirror rules as a JSON-able value, baked
	// into its script; nil (or a nil result) mirrors nothing.
	Mirrors func(site string) any
}

// Builder holds every site's built tracker script.
type Builder struct {
	scripts map[string]ingest.Script
}

// NewBuilder builds and minifies the tracker for every site. It fails when a
// script does not build, which is a bug in the source or a mirror value
// that is not JSON.
func NewBuilder(cfg Config) (*Builder, error) {
	if cfg.EventPath == "" {
		cfg.EventPath = "/e"
	}
	b := &Builder{scripts: make(map[string]ingest.Script, len(cfg.Sites))}
	captures := capturesOf(cfg.Definitions)
	for _, site := range cfg.Sites {
		var mirrors any
		if cfg.Mirrors != nil {
			mirrors = cfg.Mirrors(site.ID)
		}
		js, err := build(siteConfig{Site: site.ID, EventPath: cfg.EventPath, Captures: captures, Mirrors: mirrors})
		if err != nil {
			return nil, fmt.Errorf("build tracker for site %q: %w", site.ID, err)
		}
		s, err := pack(js)
		if err != nil {
			return nil, fmt.Errorf("compress tracker for site %q: %w", site.ID, err)
		}
		b.scripts[site.ID] = s
	}
	return b, nil
}

// Script returns the site's built tracker (ingest.ScriptSource).
func (b *Builder) Script(site string) (ingest.Script, bool) {
	s, ok := b.scripts[site]
	return s, ok
}

// siteConfig is what is baked into a site's script as __TALLY__; the short
// keys are the script's own names for them.
type siteConfig struct {
	Site      string     `json:"s"`
	EventPath string     `json:"e"`
	Captures  [][]string `json:"c"`
	Mirrors   any        `json:"m"`
}

// capturesOf lists every definition's capture triggers as
// [event, "c", selector] or [event, "v", pattern].
func capturesOf(defs []ingest.Definition) [][]string {
	out := [][]string{}
	for _, d := range defs {
		for _, c := range d.Capture {
			switch {
			case c.Clicked != "":
				out = append(out, []string{d.Name, "c", c.Clicked})
			case c.Visited != "":
				out = append(out, []string{d.Name, "v", c.Visited})
			}
		}
	}
	return out
}

// build bundles src/tally.js with its imports from the embedded sources,
// defines __TALLY__ as the site's config and minifies. esbuild runs in
// process: no node, and a build takes a few milliseconds.
func build(cfg siteConfig) ([]byte, error) {
	define, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode site config: %w", err)
	}
	// The mirror's standard-field and dedupe code is built in only for a
	// site whose mirror rules use them (rules.BrowserFilter.Field is "f":true,
	// rules.BrowserRule.Dedupe is "d"), keeping the other sites' script
	// within its size budget.
	m, err := json.Marshal(cfg.Mirrors)
	if err != nil {
		return nil, fmt.Errorf("encode mirror rules: %w", err)
	}
	fields, dedupe := strconv.FormatBool(bytes.Contains(m, []byte(`"f":true`))), strconv.FormatBool(bytes.Contains(m, []byte(`"d":{`)))
	res := api.Build(api.BuildOptions{
		EntryPoints:       []string{"src/tally.js"},
		Bundle:            true,
		Write:             false,
		Format:            api.FormatIIFE,
		Target:            api.ES2017,
		Platform:          api.PlatformBrowser,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		Charset:           api.CharsetUTF8,
		LegalComments:     api.LegalCommentsNone,
		Define:            map[string]string{"__TALLY__": string(define), "__FIELDS__": fields, "__DEDUPE__": dedupe},
		LogLevel:          api.LogLevelSilent,
		Outfile:           "t.js",
		Plugins:           []api.Plugin{embedded(sources)},
	})
	if len(res.Errors) > 0 {
		msgs := make([]string, 0, len(res.Errors))
		for _, m := range res.Errors {
			loc := ""
			if m.Location != nil {
				loc = fmt.Sprintf("%s:%d:%d: ", m.Location.File, m.Location.Line, m.Location.Column)
			}
			msgs = append(msgs, loc+m.Text)
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	if len(res.OutputFiles) != 1 {
		return nil, fmt.Errorf("esbuild wrote %d files; want 1", len(res.OutputFiles))
	}
	return res.OutputFiles[0].Contents, nil
}

// embedded resolves and loads every module from the embedded sources, so a
// build never touches the disk.
func embedded(fsys fs.FS) api.Plugin {
	return api.Plugin{
		Name: "embedded",
		Setup: func(pb api.PluginBuild) {
			pb.OnResolve(api.OnResolveOptions{Filter: ".*"}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
				p := a.Path
				if a.Importer != "" {
					p = path.Join(path.Dir(a.Importer), p)
				}
				return api.OnResolveResult{Path: path.Clean(p), Namespace: "embedded"}, nil
			})
			pb.OnLoad(api.OnLoadOptions{Filter: ".*", Namespace: "embedded"}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
				src, err := fs.ReadFile(fsys, a.Path)
				if err != nil {
					return api.OnLoadResult{}, fmt.Errorf("read %s: %w", a.Path, err)
				}
				s := string(src)
				return api.OnLoadResult{Contents: &s, Loader: api.LoaderJS}, nil
			})
		},
	}
}

// pack adds the gzip form and a strong entity tag (a digest of the script).
func pack(js []byte) (ingest.Script, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return ingest.Script{}, err
	}
	if _, err := zw.Write(js); err != nil {
		return ingest.Script{}, err
	}
	if err := zw.Close(); err != nil {
		return ingest.Script{}, err
	}
	sum := sha256.Sum256(js)
	digest := base64.RawURLEncoding.EncodeToString(sum[:18])
	return ingest.Script{JS: js, Gzip: buf.Bytes(), ETag: `"` + digest + `"`}, nil
}
