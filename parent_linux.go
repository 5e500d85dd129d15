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
// The setting is not inherited by forked children, and exec of a
// set-user-ID program clears it; but every nplab process sets it again in
// main, so one meant to outlive its parent (a detached lab) calls
// outliveParent.
func dieWithParent() {
	parent := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		return // not fatal: the lab still goes on Ctrl-C and kill
	}
	if os.Getppid() != parent {
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}

// outliveParent undoes dieWithParent, for a process meant to run on after
// the one that started it (a detached lab): call it first thing there.
func outliveParent() {
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0)
}
