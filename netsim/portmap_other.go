//go:build !linux

package netsim

// SetPortMaps returns an error wrapping ErrNotSupported.
func SetPortMaps(h Host, maps []PortMap) error { return notSupported("hostPort mappings") }
