// Package dataplane wires nplab's control plane (package lab) to its data
// plane on Linux network namespaces (package nodes, over netsim). It is the
// one place the two meet: importing it for its side effect
//
//	import _ "github.com/nplab/nplab/lab/dataplane"
//
// registers the Linux data plane as lab's driver, so lab.Start builds real
// namespaces and lab.Clean removes what a killed lab left, while package lab
// itself links no netlink and builds on any OS. (This is database/sql's
// driver pattern.) On a system other than Linux, lab.Start returns an error
// wrapping plane.ErrNotSupported.
package dataplane

import (
	"errors"
	"os"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes"
)

func init() {
	lab.RegisterDriver(lab.Driver{New: nodes.NewDataPlane, Clean: clean, CleanAll: cleanAll, Labs: labs, Exec: nodes.Exec})
}

// labs reads the state records netsim keeps, one per lab.
func labs() ([]lab.LabInfo, error) {
	names, err := netsim.Labs()
	if err != nil {
		return nil, err
	}
	var out []lab.LabInfo
	for _, name := range names {
		pid, running, err := netsim.Owner(name)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since it was listed
		}
		if err != nil {
			// An unreadable record (another lab's, being written by
			// hand or cut short) must not hide every other lab: it
			// is listed as not running, and clean reports its error.
			out = append(out, lab.LabInfo{Name: name})
			continue
		}
		out = append(out, lab.LabInfo{Name: name, PID: pid, Running: running})
	}
	return out, nil
}

func clean(name string) error { return running(nodes.Clean(name)) }

func cleanAll() ([]string, error) {
	labs, err := nodes.CleanAll()
	if err == nil {
		return labs, nil
	}
	// CleanAll joins one error per lab: keep each one's identity.
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, running(e))
		}
		return labs, errors.Join(errs...)
	}
	return labs, running(err)
}

// running makes the data plane's "still running" error also match
// lab.ErrLabRunning (plane.ErrLabRunning), keeping its text.
func running(err error) error {
	if err == nil || !errors.Is(err, nodes.ErrLabRunning) {
		return err
	}
	return runningError{err}
}

type runningError struct{ err error }

func (e runningError) Error() string   { return e.err.Error() }
func (e runningError) Unwrap() []error { return []error{e.err, plane.ErrLabRunning} }
