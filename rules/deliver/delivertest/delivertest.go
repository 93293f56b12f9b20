// Package delivertest has what tests of destinations share: a deliveries
// log kept in memory. Test support only: production code must not import
// it.
package delivertest

import (
	"fmt"
	"slices"
	"sync"

	"github.com/tally-analytics/tally/rules/deliver"
)

// Log is a deliver.DeliveryLog that keeps every outcome. Sent, when set,
// receives one value per sent outcome.
type Log struct {
	mu   sync.Mutex
	ds   []deliver.Delivery
	Sent chan struct{}
}

// Record implements deliver.DeliveryLog.
func (l *Log) Record(ds []deliver.Delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ds = append(l.ds, ds...)
	for _, d := range ds {
		if d.Status == deliver.StatusSent && l.Sent != nil {
			l.Sent <- struct{}{}
		}
	}
}

// All returns the outcomes so far, in order.
func (l *Log) All() []deliver.Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ds)
}

// Outcomes summarises the outcomes as "id:status/attempts", in order.
func (l *Log) Outcomes() []string {
	var out []string
	for _, d := range l.All() {
		out = append(out, fmt.Sprintf("%s:%s/%d", d.EventID, d.Status, d.Attempts))
	}
	return out
}

// Count is how many outcomes have status.
func (l *Log) Count(status string) int {
	n := 0
	for _, d := range l.All() {
		if d.Status == status {
			n++
		}
	}
	return n
}
