package nodes

import (
	"context"
	"errors"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// A Cluster is the data plane the control plane drives.
var (
	_ plane.DataPlane = (*Cluster)(nil)
	_ plane.Factory   = NewDataPlane
)

// NewDataPlane is New as a plane.Factory: on error it returns a nil
// DataPlane (not a nil *Cluster inside a non-nil interface).
func NewDataPlane(ctx context.Context, topo plane.Topology, opts plane.Options, ctl plane.Control) (plane.DataPlane, error) {
	c, err := New(ctx, topo, opts, ctl)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Clean removes what a killed lab left behind (its namespaces and links),
// and nothing else.
// A running lab is refused (errors.Is(err, ErrLabRunning)).
func Clean(lab string) error { return planeErr(netsim.Clean(lab)) }

// CleanAll cleans every killed lab this machine has a record of and returns
// their names; running labs are skipped and named in the error.
func CleanAll() ([]string, error) {
	labs, err := netsim.CleanAll()
	return labs, planeErr(err)
}

// ErrLabRunning is what Clean and CleanAll report for a lab still running.
var ErrLabRunning = netsim.ErrLabRunning

// unsupportedError is an error of netsim's that wraps netsim.ErrNotSupported,
// made to wrap plane.ErrNotSupported too, with the same message.
type unsupportedError struct{ err error }

func (e *unsupportedError) Error() string   { return e.err.Error() }
func (e *unsupportedError) Unwrap() []error { return []error{e.err, plane.ErrNotSupported} }

// planeErr makes an error that wraps netsim.ErrNotSupported (no netem, no
// SCTP, no Linux) wrap plane.ErrNotSupported as well, so callers of the
// data plane test for plane's sentinel and netsim's alike.
func planeErr(err error) error {
	if err != nil && errors.Is(err, netsim.ErrNotSupported) && !errors.Is(err, plane.ErrNotSupported) {
		return &unsupportedError{err}
	}
	return err
}

// nopControl drops every report (New with a nil Control).
type nopControl struct{}

func (nopControl) PodStarted(pod, node, message string)       {}
func (nopControl) PodReady(pod string, ready bool)            {}
func (nopControl) PodStopped(pod string)                      {}
func (nopControl) PodNotice(pod, message string)              {}
func (nopControl) Warning(node, pod, message string)          {}
func (nopControl) Flow(f plane.Flow)                          {}
func (nopControl) Listening(node string, ls []plane.Listener) {}
func (nopControl) PodStatus(pod string, st plane.PodStatus)   {}
