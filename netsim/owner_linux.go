//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"os"
)

// Owner reports the process recorded in lab's state file and whether it is
// still alive (the lab runs) or not (it was killed: what it left is for
// Clean). A lab without a state file is an error wrapping os.ErrNotExist.
// Equivalent to: jq .pid /run/nplab/<lab>.json; kill -0 <pid>
func Owner(lab string) (pid int, running bool, err error) {
	if err := ValidateLabName(lab); err != nil {
		return 0, false, err
	}
	st, err := readState(lab)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, fmt.Errorf("lab %q: %w", lab, err)
	}
	if err != nil {
		return 0, false, err
	}
	if pid, ok := runningOwner(st); ok {
		return pid, true, nil
	}
	return st.PID, st.PID == os.Getpid(), nil
}
