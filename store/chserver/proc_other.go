//go:build !linux && !windows

package chserver

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; Stop (or
// chtest.Main) is the only way the server ends.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
