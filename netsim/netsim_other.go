//go:build !linux

package netsim

import (
	"fmt"
	"runtime"
)

func notSupported(what string) error {
	return fmt.Errorf("%s: %w (nplab's network needs Linux network namespaces; this is %s)", what, ErrNotSupported, runtime.GOOS)
}

// New returns an error wrapping ErrNotSupported: the Linux backend needs
// network namespaces.
func New(lab string) (Network, error) {
	if err := ValidateLabName(lab); err != nil {
		return nil, err
	}
	return nil, notSupported(fmt.Sprintf("create lab %q", lab))
}

// Clean returns an error wrapping ErrNotSupported.
func Clean(lab string) error { return notSupported(fmt.Sprintf("clean lab %q", lab)) }

// CleanAll returns an error wrapping ErrNotSupported.
func CleanAll() ([]string, error) { return nil, notSupported("clean all labs") }

// Hosts returns an error wrapping ErrNotSupported.
func Hosts(lab string) ([]string, error) {
	return nil, notSupported(fmt.Sprintf("hosts of lab %q", lab))
}

// Exec returns an error wrapping ErrNotSupported.
func Exec(lab, host, _ string, _ []string) error {
	return notSupported(fmt.Sprintf("run a command in host %q of lab %q", host, lab))
}
