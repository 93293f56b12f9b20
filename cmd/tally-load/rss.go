package main

import (
	"fmt"
	"os"
	"time"

	"github.com/prometheus/procfs"
)

// resetPeakRSS starts pid's peak resident set size afresh (Linux: writing 5
// to /proc/PID/clear_refs), so the next peakRSS is the peak of this load.
func resetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset the peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

// peakRSS is pid's peak resident set size in bytes since its start or the
// last resetPeakRSS (VmHWM in /proc/PID/status).
func peakRSS(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, fmt.Errorf("read the peak RSS of pid %d: %w", pid, err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, fmt.Errorf("read the peak RSS of pid %d: %w", pid, err)
	}
	return int64(st.VmHWM), nil
}

// cpuTime is the CPU time pid has used, user and system (utime and stime
// in /proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, fmt.Errorf("read the CPU time of pid %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("read the CPU time of pid %d: %w", pid, err)
	}
	return time.Duration(st.CPUTime() * float64(time.Second)), nil
}
