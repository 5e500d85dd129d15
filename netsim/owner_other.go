//go:build !linux

package netsim

import "fmt"

// Owner returns an error wrapping ErrNotSupported.
func Owner(lab string) (pid int, running bool, err error) {
	return 0, false, notSupported(fmt.Sprintf("lab %q", lab))
}
