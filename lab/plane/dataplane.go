package plane

import (
	"context"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// DataPlane is what the control plane drives below it: kubelet and
// kube-proxy on every node (package nodes on Linux). The control plane
// never calls it while holding its own lock, and calls it from one
// goroutine at a time for StartPod, StopPod and SyncServices, in the order
// things happened.
type DataPlane interface {
	// StartPod starts pod on node with address ip: its namespace, its
	// apps, its readiness probes. Readiness comes back later through
	// Control.PodReady.
	StartPod(ctx context.Context, node string, pod *corev1.Pod, ip netip.Addr) error
	// StopPod stops a pod in the background and reports
	// Control.PodStopped when it is gone. grace is the kubelet's grace
	// period after SIGTERM: the deletion's (deletionGracePeriodSeconds),
	// or for a pod the API server deleted at once (--force
	// --grace-period=0) its terminationGracePeriodSeconds, as the kubelet
	// falls back to. StopPod again while the pod stops may only shorten
	// it, and reports nothing more.
	StopPod(name string, grace time.Duration)
	// SyncServices hands over the complete set of service ports with
	// their endpoints, after every change. It is level-triggered: only the
	// latest set matters.
	SyncServices(ports []ServicePort)

	// Logs is a container's log, as the kubelet serves `kubectl logs`:
	// the latest start's, or with previous the one before. An error
	// wrapping nothing is in the kubelet's words (the container is not
	// the pod's, has not started, has no previous start); a pod the data
	// plane does not have is a *NotFoundError.
	Logs(pod, container string, previous bool) ([]LogLine, error)

	// Send runs one request from a host of the lab.
	Send(ctx context.Context, r Request) (Reply, error)
	// Command is the shell command a student can type for the same request.
	Command(r Request) string

	// Faults.
	SetPodUnready(pod string, unready bool) error
	SetAppRunning(pod string, running bool) error
	SetNodeLink(node string, up bool) error
	// SetImpairment sets delay, jitter, loss and rate on a node's link;
	// an error wrapping ErrNotSupported where the kernel cannot.
	SetImpairment(node string, im Impairment) error

	// Close stops every pod and proxy and removes everything the data
	// plane created.
	Close() error
}

// LogLine is one line a container printed. Seq counts the lines of that
// start of the container from 1, so a follower can ask for what is new.
type LogLine struct {
	Seq  uint64
	Time time.Time
	Text string
}

// Control is the handle through which the data plane reports what happened.
// Only the data plane receives it. Its methods are quick, never call back
// into the DataPlane, and may be called from any goroutine, with the data
// plane's own locks held.
type Control interface {
	// PodStarted: the pod's namespace and apps are up on node.
	PodStarted(pod, node, message string)
	// PodReady: the pod's readiness changed (its probe).
	PodReady(pod string, ready bool)
	// PodStopped: a pod that StopPod was called for is gone.
	PodStopped(pod string)
	// PodNotice: something a student should know about a pod ("nginx
	// listens on 80 only").
	PodNotice(pod, message string)
	// Warning: something went wrong on a node (or with a pod, when pod
	// is set).
	Warning(node, pod, message string)
	// Flow: one attempt through a node ended (or was answered by the
	// node's kernel).
	Flow(f Flow)
	// Listening: the sockets node's proxy listens on changed; ls is the
	// complete new set.
	Listening(node string, ls []Listener)
	// PodStatus: the kubelet's view of a pod's containers changed (an
	// init container ran or failed, a container started, exited, or
	// waits in CrashLoopBackOff). st is complete: every init container
	// and container of the pod, in spec order. The control plane derives
	// the pod's phase and conditions from it, as the kubelet's status
	// manager does.
	PodStatus(pod string, st PodStatus)
}

// PodStatus is what the kubelet reports of a pod's containers: their
// states (Waiting with a reason such as PodInitializing or
// CrashLoopBackOff, Running, Terminated with a reason and exit code), the
// last termination and the restart counts, as in the Pod's status.
// Ready is not the data plane's to say here: PodReady is.
type PodStatus struct {
	InitContainers []corev1.ContainerStatus
	Containers     []corev1.ContainerStatus
}

// Options configure a data plane.
type Options struct {
	// ProxyMode is how every node's proxy picks an endpoint; "" is random.
	ProxyMode ProxyMode
	// ProbeScale multiplies the kubelet's and the apps' times (probe
	// delays and periods, --delay-shutdown); 0 means real time. Tests use
	// a small value such as 0.05.
	ProbeScale float64
}

// Factory builds a data plane for a topology. On error it leaves nothing
// behind.
type Factory func(ctx context.Context, topo Topology, opts Options, ctl Control) (DataPlane, error)
