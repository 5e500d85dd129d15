//go:build unix

package main

import "syscall"

// alive reports whether process pid exists.
func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// interrupt sends pid SIGINT, as Ctrl-C does.
func interrupt(pid int) error { return syscall.Kill(pid, syscall.SIGINT) }

// newSession detaches a child from the terminal (setsid).
func newSession() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
