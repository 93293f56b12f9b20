// Package backoff is the one retry delay policy of tally: capped
// exponential backoff with jitter, used by every loop that retries
// (the ClickHouse writers, the durable log's readers, the forwarders, the
// managed ClickHouse supervisor). It imports nothing of tally.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy spaces retries: attempt n (from 0) waits Min·2^n capped at Max,
// jittered into [d/2, d] so many clients recovering together do not retry
// in step.
type Policy struct {
	Min, Max time.Duration
}

// WithDefaults fills a zero Min or Max.
func (p Policy) WithDefaults(minD, maxD time.Duration) Policy {
	if p.Min <= 0 {
		p.Min = minD
	}
	if p.Max <= 0 {
		p.Max = maxD
	}
	return p
}

// Delay is the wait before retry number attempt+1 (attempt counts from 0).
func (p Policy) Delay(attempt int) time.Duration {
	d := p.Max
	if attempt >= 0 && attempt < 32 {
		d = min(p.Min<<attempt, p.Max)
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
