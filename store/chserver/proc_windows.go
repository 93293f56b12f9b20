package chserver

import "syscall"

// sysProcAttr: ClickHouse does not run on Windows; Start fails earlier with
// ErrNotInstalled, and this only keeps the package building there.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
