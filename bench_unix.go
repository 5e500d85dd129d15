//go:build unix

package main

import "syscall"

// raiseFileLimit raises the soft limit on open files to the hard limit:
// the 100-node lab holds a namespace file, sockets and netlink handles for
// each of its 601 namespaces.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
