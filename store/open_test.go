package store

import (
	"strings"
	"testing"
)

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // codes, space-separated
	}{
		{Config{}, ""},
		{Config{DSN: "clickhouse://127.0.0.1:9000/default", Database: "analytics"}, ""},
		{Config{DSN: "http://127.0.0.1:8123"}, "INVALID_DSN"},
		{Config{DSN: "clickhouse://127.0.0.1:9000?dial_timeout=soon"}, "INVALID_DSN"},
		{Config{Database: "my-db"}, "INVALID_DATABASE"},
	}
	for _, tt := range tests {
		var codes []string
		for _, e := range tt.cfg.Check("clickhouse") {
			codes = append(codes, e.Code)
			if !strings.HasPrefix(e.Path, "clickhouse.") {
				t.Errorf("Check(%+v) path %q; want clickhouse.*", tt.cfg, e.Path)
			}
		}
		if got := strings.Join(codes, " "); got != tt.want {
			t.Errorf("Check(%+v) = %q; want %q", tt.cfg, got, tt.want)
		}
	}
	if got := (Config{}).DatabaseName(); got != "tally" {
		t.Errorf("default DatabaseName = %q; want tally", got)
	}
}

func TestParseDSNKeepsPasswordOut(t *testing.T) {
	_, err := parseDSN("clickhouse://user:s3cret@127.0.0.1:9000?dial_timeout=soon")
	if err == nil {
		t.Fatal("parseDSN accepted a bad dial_timeout")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("parseDSN error %q repeats the password", err)
	}
}
