package capi

import (
	"errors"
	"testing"
	"time"
)

// A physical_store event may be up to 62 days old (offline sales); every
// other source 7 days.
func TestMaxAgePerActionSource(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	one := 1.0
	for _, tt := range []struct {
		src    ActionSource
		age    time.Duration
		tooOld bool
	}{
		{"physical_store", 30 * 24 * time.Hour, false},
		{"physical_store", 63 * 24 * time.Hour, true},
		{ActionSystemGenerated, 8 * 24 * time.Hour, true},
		{ActionSystemGenerated, 6 * 24 * time.Hour, false},
	} {
		ev := &Event{EventName: "Purchase", EventID: "x", EventTime: now.Add(-tt.age).Unix(), ActionSource: tt.src,
			UserData: UserData{Email: []string{HashValue("a@example.com")}}, CustomData: &CustomData{Value: &one, Currency: "EUR"}}
		err := Validate(ev, now)
		if got := errors.Is(err, ErrTooOld); got != tt.tooOld {
			t.Errorf("Validate(%s, %v old) = %v; want too old %v", tt.src, tt.age, err, tt.tooOld)
		}
	}
	it := Item(Event{EventID: "x", EventName: "Purchase", ActionSource: "physical_store"})
	if got := horizon(it); got != 62*24*time.Hour-time.Hour {
		t.Errorf("the outbox keeps a physical_store event %v; want 62 days less an hour", got)
	}
}
