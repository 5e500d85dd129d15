//go:build !unix

package main

// raiseFileLimit does nothing: labs run on Linux only.
func raiseFileLimit() error { return nil }
