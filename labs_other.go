//go:build !unix

package main

import (
	"errors"
	"syscall"
)

// Labs run on Linux only; these keep the command building elsewhere.

func alive(int) bool { return false }

func interrupt(int) error { return errors.New("not supported on this system") }

func newSession() *syscall.SysProcAttr { return nil }
