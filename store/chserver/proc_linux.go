package chserver

import "syscall"

// sysProcAttr asks the kernel to send SIGTERM to the server when the thread
// that started it dies, so the server does not outlive a crashed parent. Go
// threads only exit with a goroutine that locked them, which Start never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}
