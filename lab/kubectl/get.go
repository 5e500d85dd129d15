package kubectl

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
)

// table is one kind's rows, as kubectl's human-readable printer holds them.
type table struct {
	header []string
	rows   [][]string
}

// newTabWriter is kubectl's printers.GetNewTabWriter.
func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
}

func (t table) print(w io.Writer) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// withKind prefixes every NAME cell with "resource/", as kubectl does when one
// get shows several kinds.
func (t table) withKind(resource string) table {
	out := table{header: t.header}
	for _, r := range t.rows {
		r2 := append([]string(nil), r...)
		r2[0] = resource + "/" + r2[0]
		out.rows = append(out.rows, r2)
	}
	return out
}

// age is the printers' translateTimestampSince with a given now.
func age(ts metav1.Time, now time.Time) string {
	if ts.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(ts.Time))
}

// GetServices prints `kubectl get services [-o wide]`:
//
//	NAME   TYPE       CLUSTER-IP     EXTERNAL-IP   PORT(S)                     AGE
//	web    NodePort   10.96.141.38   <none>        80:30080/TCP,80:30080/UDP   5m
func GetServices(w io.Writer, svcs []*corev1.Service, now time.Time, wide bool) error {
	return serviceTable(svcs, now, wide).print(w)
}

func serviceTable(svcs []*corev1.Service, now time.Time, wide bool) table {
	t := table{header: []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}}
	if wide {
		t.header = append(t.header, "SELECTOR")
	}
	for _, s := range svcs {
		internalIP := "<none>"
		if len(s.Spec.ClusterIPs) > 0 {
			internalIP = s.Spec.ClusterIPs[0]
		}
		ports := PortString(s.Spec.Ports)
		if ports == "" {
			ports = "<none>"
		}
		row := []string{s.Name, string(s.Spec.Type), internalIP, externalIP(s, wide), ports, age(s.CreationTimestamp, now)}
		if wide {
			row = append(row, labels.FormatLabels(s.Spec.Selector))
		}
		t.rows = append(t.rows, row)
	}
	return t
}

// PortString is the PORT(S) cell: "80:30080/TCP,443/TCP".
func PortString(ports []corev1.ServicePort) string {
	pieces := make([]string, len(ports))
	for i, p := range ports {
		pieces[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if p.NodePort > 0 {
			pieces[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		}
	}
	return strings.Join(pieces, ",")
}

// externalIP is the printers' getServiceExternalIP.
func externalIP(s *corev1.Service, wide bool) string {
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(s.Spec.ExternalIPs) > 0 {
			return strings.Join(s.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			} else if in.Hostname != "" {
				ips = append(ips, in.Hostname)
			}
		}
		ips = append(ips, s.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		if !wide && len(ips) > 16 {
			return strings.Join(ips[:16], ",") + "..."
		}
		return strings.Join(ips, ",")
	case corev1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	}
	return "<unknown>"
}

// GetPods prints `kubectl get pods [-o wide]`:
//
//	NAME      READY   STATUS    RESTARTS   AGE   IP           NODE     NOMINATED NODE   READINESS GATES
//	backend   1/1     Running   0          2m    10.244.1.2   node-1   <none>           <none>
func GetPods(w io.Writer, pods []*corev1.Pod, now time.Time, wide bool) error {
	return podTable(pods, now, wide).print(w)
}

func podTable(pods []*corev1.Pod, now time.Time, wide bool) table {
	t := table{header: []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}}
	if wide {
		t.header = append(t.header, "IP", "NODE", "NOMINATED NODE", "READINESS GATES")
	}
	for _, p := range pods {
		t.rows = append(t.rows, podRow(p, now, wide))
	}
	return t
}

// podRow is the printers' printPod (pkg/printers/internalversion), for
// regular (not sidecar) init containers.
func podRow(pod *corev1.Pod, now time.Time, wide bool) []string {
	reason, ready, restarts, lastRestart := podStatus(pod)
	restartStr := strconv.Itoa(restarts)
	if restarts != 0 && !lastRestart.IsZero() {
		restartStr = fmt.Sprintf("%d (%s ago)", restarts, duration.HumanDuration(now.Sub(lastRestart)))
	}
	row := []string{pod.Name, fmt.Sprintf("%d/%d", ready, len(pod.Spec.Containers)), reason, restartStr, age(pod.CreationTimestamp, now)}
	if !wide {
		return row
	}
	ip := "<none>"
	if len(pod.Status.PodIPs) > 0 && pod.Status.PodIPs[0].IP != "" {
		ip = pod.Status.PodIPs[0].IP
	}
	node := pod.Spec.NodeName
	if node == "" {
		node = "<none>"
	}
	nominated := pod.Status.NominatedNodeName
	if nominated == "" {
		nominated = "<none>"
	}
	gates := "<none>"
	if len(pod.Spec.ReadinessGates) > 0 {
		trueConds := 0
		for _, g := range pod.Spec.ReadinessGates {
			for _, c := range pod.Status.Conditions {
				if c.Type == g.ConditionType {
					if c.Status == corev1.ConditionTrue {
						trueConds++
					}
					break
				}
			}
		}
		gates = fmt.Sprintf("%d/%d", trueConds, len(pod.Spec.ReadinessGates))
	}
	return append(row, ip, node, nominated, gates)
}

// PodStatusText is the STATUS column of `kubectl get pods` for pod:
// Running, Pending, Init:0/1, Init:CrashLoopBackOff, Error,
// CrashLoopBackOff, Completed, Terminating...
func PodStatusText(pod *corev1.Pod) string {
	reason, _, _, _ := podStatus(pod)
	return reason
}

// podStatus is printPod's reading of a pod's status: the STATUS text, the
// ready containers, the restarts and the last restart.
func podStatus(pod *corev1.Pod) (reason string, ready, restarts int, lastRestart time.Time) {
	reason = string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	initializing := false
	for i, c := range pod.Status.InitContainerStatuses {
		restarts += int(c.RestartCount)
		if t := c.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
			lastRestart = t.FinishedAt.Time
		}
		switch {
		case c.State.Terminated != nil && c.State.Terminated.ExitCode == 0:
			continue
		case c.State.Terminated != nil:
			// initialization failed
			switch {
			case c.State.Terminated.Reason != "":
				reason = "Init:" + c.State.Terminated.Reason
			case c.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Init:Signal:%d", c.State.Terminated.Signal)
			default:
				reason = fmt.Sprintf("Init:ExitCode:%d", c.State.Terminated.ExitCode)
			}
			initializing = true
		case c.State.Waiting != nil && c.State.Waiting.Reason != "" && c.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + c.State.Waiting.Reason
			initializing = true
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
			initializing = true
		}
		break
	}
	if !initializing || podInitialized(pod) {
		restarts = 0
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			c := pod.Status.ContainerStatuses[i]
			restarts += int(c.RestartCount)
			if t := c.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
				lastRestart = t.FinishedAt.Time
			}
			switch {
			case c.State.Waiting != nil && c.State.Waiting.Reason != "":
				reason = c.State.Waiting.Reason
			case c.State.Terminated != nil && c.State.Terminated.Reason != "":
				reason = c.State.Terminated.Reason
			case c.State.Terminated != nil:
				if c.State.Terminated.Signal != 0 {
					reason = fmt.Sprintf("Signal:%d", c.State.Terminated.Signal)
				} else {
					reason = fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode)
				}
			case c.Ready && c.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		if reason == "Completed" && hasRunning {
			reason = "NotReady"
			for _, c := range pod.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					reason = "Running"
				}
			}
		}
	}
	if pod.DeletionTimestamp != nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		reason = "Terminating"
	}
	return reason, ready, restarts, lastRestart
}

func podInitialized(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodInitialized {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// GetEndpoints prints `kubectl get endpoints`:
//
//	NAME   ENDPOINTS                                         AGE
//	web    10.244.1.2:8080,10.244.2.2:8080,10.244.3.2:8080 + 3 more...   5m
func GetEndpoints(w io.Writer, eps []*corev1.Endpoints, now time.Time) error {
	t := table{header: []string{"NAME", "ENDPOINTS", "AGE"}}
	for _, e := range eps {
		t.rows = append(t.rows, []string{e.Name, formatEndpoints(e), age(e.CreationTimestamp, now)})
	}
	return t.print(w)
}

// formatEndpoints is the printers' formatEndpoints: ready addresses as
// ip:port, at most 3, then " + N more...".
func formatEndpoints(e *corev1.Endpoints) string {
	if len(e.Subsets) == 0 {
		return "<none>"
	}
	var list []string
	const max = 3
	more := false
	count := 0
	for _, ss := range e.Subsets {
		if len(ss.Ports) == 0 {
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	return ret
}

// GetServicesAndPods prints `kubectl get services,pods [-o wide]`: one table
// per kind that has objects, names prefixed "service/" and "pod/", a blank
// line between the tables. It reports whether it printed anything (kubectl
// says "No resources found in default namespace." otherwise).
func GetServicesAndPods(w io.Writer, svcs []*corev1.Service, pods []*corev1.Pod, now time.Time, wide bool) (bool, error) {
	var tables []table
	if len(svcs) > 0 {
		tables = append(tables, serviceTable(svcs, now, wide).withKind("service"))
	}
	if len(pods) > 0 {
		tables = append(tables, podTable(pods, now, wide).withKind("pod"))
	}
	for i, t := range tables {
		if i > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return true, err
			}
		}
		if err := t.print(w); err != nil {
			return true, err
		}
	}
	return len(tables) > 0, nil
}
