//go:build linux

package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// dieWithParent asks the kernel to send this process SIGTERM when its
// parent exits (PR_SET_PDEATHSIG). `go run .` runs nplab as a child: a
// SIGTERM to `go run` kills only the go command, and without this the lab
// would keep running, orphaned. With it, nplab gets the SIGTERM too and
// removes its lab as on any other SIGTERM. If the parent is already gone
// (it died before the call), nplab stops now.
//
// The setting is not inherited by children, and is cleared by exec of a
// set-user-ID program; a process that wants to outlive its parent (a
// detached lab) must undo it with PR_SET_PDEATHSIG 0.
func dieWithParent() {
	parent := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		return // not fatal: the lab still goes on Ctrl-C and kill
	}
	if os.Getppid() != parent {
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
