//go:build linux

package e2e

import (
	"os"
	"syscall"
)

// sysProcAttr makes the kernel kill a server if the test binary dies without
// cleaning up (e.g. on a -timeout panic), so no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// diedOf reports whether the process was terminated by sig.
func diedOf(state *os.ProcessState, sig syscall.Signal) bool {
	ws, ok := state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
