package dataplane

import (
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/netsim"
)

// The kernel's list of a lab's namespaces, for lab.WaitRemoved (`nplab
// bench` times a lab until none is left).
func init() { lab.RegisterNamespaces(netsim.Namespaces) }
