package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// The peak is read back from /proc, and a reset brings it down to what the
// process holds now: a 64 MB buffer touched and dropped before the reset no
// longer counts.
var ballast []byte

func TestPeakRSS(t *testing.T) {
	pid := os.Getpid()
	ballast = make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	before, err := peakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if before < 64<<20 {
		t.Fatalf("peak RSS %d bytes; want at least the 64 MB just touched", before)
	}
	ballast = nil
	debug.FreeOSMemory()
	if err := resetPeakRSS(pid); err != nil {
		t.Fatal(err)
	}
	after, err := peakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after >= before {
		t.Errorf("peak RSS after reset %d bytes; want below the %d before", after, before)
	}
}
