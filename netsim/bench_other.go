//go:build !linux

package netsim

import (
	"context"
	"fmt"
	"os/exec"
)

// Run returns an error wrapping ErrNotSupported.
func Run(h Host, f func() error) error { return notSupported(fmt.Sprintf("run in host %v", h)) }

// Command returns an error wrapping ErrNotSupported.
func Command(ctx context.Context, h Host, name string, args ...string) (*exec.Cmd, error) {
	return nil, notSupported("run " + name + " in a host")
}

// DelRoute returns an error wrapping ErrNotSupported.
func DelRoute(h Host, r Route) error { return notSupported("delete a route") }

// Namespaces returns nothing: there are no namespaces here.
func Namespaces(lab string) ([]string, error) { return nil, nil }
