package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			if d := p.Delay(attempt); d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v; want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := p.Delay(1000); d < time.Second/2 || d > time.Second {
		t.Errorf("Delay(1000) = %v; want capped at 1s", d)
	}
	if d := (Policy{}).WithDefaults(time.Millisecond, time.Second).Delay(0); d < time.Millisecond/2 || d > time.Millisecond {
		t.Errorf("default Delay(0) = %v; want within [0.5ms, 1ms]", d)
	}
}
