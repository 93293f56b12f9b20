package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// JSON logs give durations in milliseconds.
func TestLogDurationsInMillis(t *testing.T) {
	var b bytes.Buffer
	newLogger(&b).Info("stopped", "took", 1500*time.Microsecond)
	if !strings.Contains(b.String(), `"took_ms":1.5`) {
		t.Errorf("log line %s; want took_ms 1.5", b.String())
	}
}
