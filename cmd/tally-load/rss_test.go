package main

import (
	"os"
	"runtime/debug"
	"syscall"
	"testing"
	"time"
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

// CPU time read back from /proc agrees with the kernel's own account
// (getrusage) to within its 10 ms ticks.
func TestCPUTime(t *testing.T) {
	rusage := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	r0 := rusage()
	for deadline := time.Now().Add(30 * time.Second); rusage()-r0 < 200*time.Millisecond && time.Now().Before(deadline); {
	}
	used := rusage() - r0
	after, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < used-50*time.Millisecond || d > used+50*time.Millisecond {
		t.Errorf("CPU time from /proc grew by %v while getrusage counted %v", d, used)
	}
}
