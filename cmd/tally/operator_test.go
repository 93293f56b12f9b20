package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-analytics/tally/cmd/tally/config"
)

// tally check places a bad admin_listen; a good one, or none (loopback by
// default), passes.
func TestCheckAdminListen(t *testing.T) {
	for _, tt := range []struct {
		line, want string
	}{
		{`admin_listen: "9090"`, `:2:15: admin_listen "9090" is not host:port`},
		{`admin_listen: "127.0.0.1:9091"`, ""},
		{``, ""},
	} {
		path := filepath.Join(t.TempDir(), "tally.yaml")
		src := "sites: [{id: shop, domains: [shop.example.com]}]\n" + tt.line + "\nevents: [{name: form_submitted}]\n"
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"check", "-config", path}, &stdout, &stderr)
		if tt.want == "" && code != 0 || tt.want != "" && (code != 1 || !strings.Contains(stderr.String(), path+tt.want)) {
			t.Errorf("tally check with %q = exit %d, stderr %q; want %q", tt.line, code, stderr.String(), tt.want)
		}
	}
	if got := (&config.File{}).AdminAddr(); got != "127.0.0.1:9090" {
		t.Errorf("default admin address = %q; want loopback 127.0.0.1:9090", got)
	}
}

func noEnv(string) (string, bool) { return "", false }

// The demo page is served only when the config says demo: true, as the
// example config does.
func TestDemoOnlyWhenEnabled(t *testing.T) {
	sites := "sites: [{id: shop, domains: [shop.example.com]}]\n"
	for _, tt := range []struct {
		src  string
		want bool
	}{
		{sites, false},
		{sites + "demo: false\n", false},
		{sites + "demo: true\n", true},
	} {
		f, probs := config.Parse("tally.yaml", []byte(tt.src), noEnv)
		if len(probs) > 0 {
			t.Fatalf("parse %q: %v", tt.src, probs)
		}
		if _, ok := demoPages(f)["/demo"]; ok != tt.want {
			t.Errorf("demo page served with %q: %v; want %v", tt.src, ok, tt.want)
		}
	}
	ex, err := config.Load("../../examples/tally.yaml", noEnv)
	if err != nil || !ex.Demo {
		t.Errorf("examples/tally.yaml: demo %v, %v; want demo: true", ex != nil && ex.Demo, err)
	}
}

// TALLY_ADMIN_LISTEN sets the admin address per deployment, as
// TALLY_LISTEN does the public one.
func TestAdminListenFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tally.yaml")
	if err := os.WriteFile(path, []byte("sites: [{id: shop, domains: [shop.example.com]}]\nevents: [{name: form_submitted}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TALLY_ADMIN_LISTEN", "10.0.0.7:9090")
	f, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.AdminAddr(); got != "10.0.0.7:9090" {
		t.Errorf("loadConfig with TALLY_ADMIN_LISTEN: admin address %q; want 10.0.0.7:9090", got)
	}
}
