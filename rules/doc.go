// Package rules decides which completions are forwarded where, and maps each
// onto the destination's event.
package rules
