//go:build !linux

package e2e

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// diedOf reports whether the process was terminated by sig.
func diedOf(state *os.ProcessState, sig syscall.Signal) bool {
	type signaled interface {
		Signaled() bool
		Signal() syscall.Signal
	}
	ws, ok := state.Sys().(signaled)
	return ok && ws.Signaled() && ws.Signal() == sig
}
