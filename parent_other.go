//go:build !linux

package main

// dieWithParent does nothing where there is no PR_SET_PDEATHSIG (labs
// run only on Linux).
func dieWithParent() {}

// outliveParent does nothing here either.
func outliveParent() {}
