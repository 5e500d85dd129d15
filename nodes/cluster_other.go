//go:build !linux

package nodes

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
)

// Cluster is nplab's data plane. It needs Linux network namespaces; on
// this system New always fails and a Cluster is never built.
type Cluster struct{ topo plane.Topology }

func notLinux(what string) error {
	return fmt.Errorf("%s: nplab's data plane needs Linux network namespaces (this is %s): %w", what, runtime.GOOS, plane.ErrNotSupported)
}

// New returns an error wrapping plane.ErrNotSupported: the data plane
// needs Linux.
func New(ctx context.Context, topo plane.Topology, opts plane.Options, ctl plane.Control) (*Cluster, error) {
	return nil, notLinux(fmt.Sprintf("lab %q", topo.Lab))
}

// Topology returns the cluster's plan.
func (c *Cluster) Topology() plane.Topology { return c.topo }

// Network is nil: there is no network here.
func (c *Cluster) Network() netsim.Network { return nil }

// Ready returns an error wrapping plane.ErrNotSupported.
func (c *Cluster) Ready(name string) (bool, error) { return false, notLinux("pod readiness") }

func (c *Cluster) StartPod(ctx context.Context, node string, pod *corev1.Pod, ip netip.Addr) error {
	return notLinux("start pod")
}
func (c *Cluster) StopPod(name string, grace time.Duration) {}
func (c *Cluster) SyncServices(ports []plane.ServicePort)   {}
func (c *Cluster) Logs(pod, container string, previous bool) ([]plane.LogLine, error) {
	return nil, notLinux("logs")
}
func (c *Cluster) Send(ctx context.Context, r plane.Request) (plane.Reply, error) {
	return plane.Reply{}, notLinux("send")
}
func (c *Cluster) Command(r plane.Request) string               { return "" }
func (c *Cluster) SetPodUnready(pod string, unready bool) error { return notLinux("set pod unready") }
func (c *Cluster) SetAppRunning(pod string, running bool) error { return notLinux("set app running") }
func (c *Cluster) SetNodeLink(node string, up bool) error       { return notLinux("set node link") }
func (c *Cluster) SetImpairment(node string, im plane.Impairment) error {
	return notLinux("set impairment")
}
func (c *Cluster) Close() error { return nil }
