package lab

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nplab/nplab/lab/plane"
)

// Driver is a data plane implementation a lab can start on: package
// lab/dataplane registers the Linux one (nodes on network namespaces) when
// it is imported. This keeps lab itself free of netlink: the control plane
// and everything built on it compile anywhere, and a program opts into real
// namespaces with
//
//	import _ "github.com/nplab/nplab/lab/dataplane"
type Driver struct {
	// New builds a running data plane.
	New plane.Factory
	// Clean removes what a killed lab left behind; an error wrapping
	// ErrLabRunning for a lab whose process still runs, and a
	// *plane.NotFoundError for a lab the machine has no record of.
	Clean func(lab string) error
	// CleanAll cleans every killed lab and returns their names.
	CleanAll func() ([]string, error)
	// Labs lists the labs the machine has a record of; nil means none.
	Labs func() ([]LabInfo, error)
	// Exec replaces this process with a command run in a host of a
	// running lab (`nplab exec`); nil means not supported.
	Exec func(lab, host string, argv []string) error
}

// LabInfo is a lab this machine has a record of (under /run/nplab, for the
// Linux data plane): one that runs, or one that was killed and left
// something for Clean.
type LabInfo struct {
	Name    string
	PID     int  // the process that ran it
	Running bool // that process is still alive
}

var (
	driverMu sync.Mutex
	driver   *Driver
)

// RegisterDriver makes d the data plane of Start, Clean and CleanAll.
func RegisterDriver(d Driver) {
	driverMu.Lock()
	defer driverMu.Unlock()
	driver = &d
}

func registered() (*Driver, error) {
	driverMu.Lock()
	defer driverMu.Unlock()
	if driver == nil {
		return nil, ErrNoDriver
	}
	return driver, nil
}

// ErrNoDriver is what Start returns when no data plane was registered.
var ErrNoDriver = errors.New(`lab: no data plane is linked into this program (import _ "github.com/nplab/nplab/lab/dataplane")`)

// ErrNoDataPlane is what a lab without a data plane returns for traffic and
// faults that need one.
var ErrNoDataPlane = errors.New("lab: this lab has no data plane (it was made with lab.New; lab.Start runs pods for real)")

// ErrLabRunning is what Clean and CleanAll report for a lab still running.
var ErrLabRunning = plane.ErrLabRunning

// Start builds a lab whose pods run for real: nodes, pods and the client as
// network namespaces (root, Linux), a proxy on every node. On error nothing
// of the lab is left behind; Close removes everything it created.
func Start(ctx context.Context, cfg Config) (*Lab, error) {
	if cfg.DataPlane == nil {
		d, err := registered()
		if err != nil {
			return nil, err
		}
		cfg.DataPlane = d.New
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lab %q: %w", cfg.Name, err)
	}
	return build(ctx, cfg)
}

// Clean removes what a killed lab left behind: the namespaces and links its
// record under /run/nplab lists, and nothing else. A lab that is still
// running is refused (errors.Is(err, ErrLabRunning)).
func Clean(name string) error {
	d, err := registered()
	if err != nil {
		return err
	}
	return d.Clean(name)
}

// CleanAll cleans every killed lab this machine has a record of and returns
// their names; running labs are skipped and named in the error.
func CleanAll() ([]string, error) {
	d, err := registered()
	if err != nil {
		return nil, err
	}
	return d.CleanAll()
}

// Labs lists the labs this machine has a record of, by name, each with the
// process that runs (or ran) it. Equivalent to: ls /run/nplab
func Labs() ([]LabInfo, error) {
	d, err := registered()
	if err != nil {
		return nil, err
	}
	if d.Labs == nil {
		return nil, nil
	}
	return d.Labs()
}

// Exec replaces this process with argv run in host (a node, a pod or the
// client) of the running lab name, as `ip netns exec` would: on success it
// does not return. An unknown host is an error listing the lab's hosts.
// Equivalent to: ip netns exec nplab-<lab>-<host> argv...
func Exec(name, host string, argv []string) error {
	d, err := registered()
	if err != nil {
		return err
	}
	if d.Exec == nil {
		return errors.New("lab: this data plane cannot run commands in its hosts")
	}
	return d.Exec(name, host, argv)
}
