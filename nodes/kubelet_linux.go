//go:build linux

package nodes

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/apps"
)

// ctr is one container of a pod as the kubelet runs it: its app from the
// image catalog (or, for an init container, its emulated run), its state
// as the kubelet reports it, and its restart back-off. Its fields are
// guarded by the pod's mu; starting and stopping its app by the pod's
// appMu.
type ctr struct {
	name, image string
	spec        apps.Spec    // a container's app
	run         apps.InitRun // an init container's run
	app         *apps.App    // nil while its app does not run
	gen         int          // counts starts, so a stale restart does nothing
	// log is the log of the container's latest start, prev the one
	// before it (kubectl logs --previous); nil before any.
	log, prev *apps.Log

	state, last corev1.ContainerState // State and LastTerminationState
	restarts    int32
	backoff     backOff
}

func newContainers(obj *corev1.Pod, specs []apps.Spec, scale float64) (inits, ctrs []*ctr) {
	for _, c := range obj.Spec.InitContainers {
		inits = append(inits, &ctr{name: c.Name, image: c.Image, run: apps.InitFromContainer(c), backoff: backOff{scale: scale},
			state: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}})
	}
	for i, c := range obj.Spec.Containers {
		st := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
		if len(inits) > 0 {
			st.Waiting.Reason = "PodInitializing"
		}
		ctrs = append(ctrs, &ctr{name: c.Name, image: c.Image, spec: specs[i], backoff: backOff{scale: scale}, state: st})
	}
	return inits, ctrs
}

func (c *ctr) status() corev1.ContainerStatus {
	s := corev1.ContainerStatus{Name: c.name, Image: c.image, RestartCount: c.restarts}
	c.state.DeepCopyInto(&s.State)
	c.last.DeepCopyInto(&s.LastTerminationState)
	return s
}

// report tells the control plane the pod's container statuses. It reports
// under p.mu, so reports arrive in the order the changes happened.
func (p *pod) reportLocked() {
	var st plane.PodStatus
	for _, c := range p.inits {
		st.InitContainers = append(st.InitContainers, c.status())
	}
	for _, c := range p.ctrs {
		st.Containers = append(st.Containers, c.status())
	}
	p.ctl.PodStatus(p.name, st)
}

func (p *pod) report() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reportLocked()
}

// allRunning reports whether every container's app runs (the kubelet's
// ContainersReady needs that before any probe counts). p.mu is held.
func (p *pod) allRunningLocked() bool {
	for _, c := range p.ctrs {
		if c.app == nil {
			return false
		}
	}
	return true
}

// kubelet runs the pod's init containers in order, then starts its
// containers (if StartPod has not), then its readiness probe, until the
// pod stops (ctx). It closes p.done when it returns.
func (p *pod) kubelet(ctx context.Context, started bool) {
	defer close(p.done)
	for _, c := range p.inits {
		if !p.runInit(ctx, c) {
			return
		}
	}
	if !started {
		p.startContainers(ctx)
	}
	if p.probe == nil {
		return
	}
	p.runProbe(ctx)
}

// runInit runs one init container to success: a failed run is retried
// after the back-off unless restartPolicy is Never, which fails the pod.
// It returns false when the pod will not go on (failed for good, or
// stopped).
func (p *pod) runInit(ctx context.Context, c *ctr) bool {
	for {
		p.mu.Lock()
		c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
		c.prev, c.log = c.log, apps.NewLog()
		p.reportLocked()
		p.mu.Unlock()
		if !sleepCtx(ctx, p.scaledDur(c.run.Duration)) {
			return false
		}
		p.mu.Lock()
		code := c.run.Code
		if c.run.Message != "" {
			c.log.Print(c.run.Message)
		}
		term := &corev1.ContainerStateTerminated{ExitCode: code, Reason: exitReason(code), Message: c.run.Message,
			StartedAt: c.state.Running.StartedAt, FinishedAt: metav1.Now()}
		c.state = corev1.ContainerState{Terminated: term}
		if code == 0 {
			p.reportLocked()
			p.mu.Unlock()
			return true
		}
		if p.obj.Spec.RestartPolicy == corev1.RestartPolicyNever || p.terminating {
			p.reportLocked()
			p.mu.Unlock()
			return false
		}
		wait := p.crashLocked(c, term)
		p.mu.Unlock()
		if !sleepCtx(ctx, p.scaledDur(wait)) {
			return false
		}
		p.mu.Lock()
		if wait > 0 {
			c.backoff.restarted(time.Now())
		}
		c.restarts++
		p.mu.Unlock()
	}
}

// crashLocked records that container c terminated (term) and is to be
// restarted: its state becomes the termination, or, when the back-off
// makes it wait, Waiting in CrashLoopBackOff with the kubelet's message;
// it reports and returns the back-off (the kubelet's unscaled time). p.mu
// is held.
func (p *pod) crashLocked(c *ctr, term *corev1.ContainerStateTerminated) time.Duration {
	wait := c.backoff.exited(term.FinishedAt.Time)
	c.last = corev1.ContainerState{Terminated: term}
	if wait == 0 {
		c.state = corev1.ContainerState{Terminated: term}
	} else {
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
			Message: crashLoopMessage(wait, c.name, p.name, p.obj.Namespace, string(p.obj.UID))}}
	}
	p.reportLocked()
	return wait
}

func exitReason(code int32) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// startContainers starts every container's app. A container whose app
// cannot start (its program refuses its arguments, a port is taken)
// terminates at once and is restarted as restartPolicy says.
func (p *pod) startContainers(ctx context.Context) {
	p.appMu.Lock()
	for _, c := range p.ctrs {
		p.startLocked(ctx, c)
	}
	p.appMu.Unlock()
	p.mu.Lock()
	if p.probe == nil {
		// No readiness probe: ready as soon as the apps listen.
		p.probeOK = true
	}
	p.mu.Unlock()
	p.update()
}

// startLocked starts container c's app, or makes it terminate as the
// program would. p.appMu is held.
func (p *pod) startLocked(ctx context.Context, c *ctr) {
	p.mu.Lock()
	if p.stopped || p.terminating {
		p.mu.Unlock()
		return
	}
	c.gen++
	gen := c.gen
	p.mu.Unlock()
	started := metav1.Now()
	var code int32
	var msg string
	var app *apps.App
	if x := c.spec.Exit; x != nil {
		code, msg = x.Code, x.Message
	} else {
		var err error
		app, err = apps.Start(ctx, p.host, p.appHostname(), []apps.Spec{c.spec})
		if err != nil {
			code, msg = 1, planeErr(err).Error()
		}
	}
	p.mu.Lock()
	c.prev = c.log
	if app != nil {
		c.log = app.Log()
	} else {
		c.log = apps.NewLog()
		if msg != "" {
			c.log.Print(msg)
		}
	}
	if app != nil {
		c.app = app
		c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
		p.reportLocked()
		p.mu.Unlock()
		go p.watchExit(c, app)
		return
	}
	term := &corev1.ContainerStateTerminated{ExitCode: code, Reason: exitReason(code), Message: msg, StartedAt: started, FinishedAt: metav1.Now()}
	p.exitedLocked(c, gen, term)
	p.mu.Unlock()
}

// exitedLocked is the kubelet's answer to container c terminating (term):
// restart it as restartPolicy says (Always; OnFailure after a non-zero
// code; Never not), at once or after the back-off, in a goroutine. p.mu
// is held.
func (p *pod) exitedLocked(c *ctr, gen int, term *corev1.ContainerStateTerminated) {
	c.app = nil
	policy := p.obj.Spec.RestartPolicy
	restart := policy == "" || policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && term.ExitCode != 0)
	if !restart || p.terminating || p.stopped {
		c.state = corev1.ContainerState{Terminated: term}
		p.reportLocked()
		if !restart {
			p.ctl.PodNotice(p.name, fmt.Sprintf("container %s of pod %s exited with code %d; restartPolicy %s does not restart it", c.name, p.name, term.ExitCode, policy))
		}
		return
	}
	wait := p.crashLocked(c, term)
	p.ctl.PodNotice(p.name, fmt.Sprintf("container %s of pod %s exited with code %d; the kubelet restarts it in %v (restart %d)", c.name, p.name, term.ExitCode, wait, c.restarts+1))
	go p.restartAfter(c, gen, wait)
}

// restartAfter starts container c again after wait (the kubelet's time),
// unless the pod stops, the app was started in between, or a fault stopped
// the pod's apps (SetAppRunning(true) starts them).
func (p *pod) restartAfter(c *ctr, gen int, wait time.Duration) {
	if !sleepCtx(p.runCtx, p.scaledDur(wait)) {
		return
	}
	p.appMu.Lock()
	defer p.appMu.Unlock()
	p.mu.Lock()
	if p.stopped || p.terminating || p.appStopped || c.gen != gen || c.app != nil {
		p.mu.Unlock()
		return
	}
	if wait > 0 {
		c.backoff.restarted(time.Now())
	}
	c.restarts++
	p.mu.Unlock()
	p.startLocked(p.runCtx, c)
	p.update()
}

// watchExit waits for app to exit by itself (netexec's /exit, /shutdown)
// and does what the kubelet does with an exited container: the pod turns
// unready, and the container is restarted as restartPolicy says. It
// returns when the pod stops.
func (p *pod) watchExit(c *ctr, app *apps.App) {
	select {
	case <-app.Exited():
	case <-p.runCtx.Done():
		return
	}
	code := app.ExitCode()
	p.appMu.Lock()
	p.mu.Lock()
	if p.stopped || c.app != app || p.appStopped {
		p.mu.Unlock()
		p.appMu.Unlock()
		return
	}
	var started metav1.Time
	if c.state.Running != nil {
		started = c.state.Running.StartedAt
	}
	term := &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: exitReason(int32(code)), StartedAt: started, FinishedAt: metav1.Now()}
	p.exitedLocked(c, c.gen, term)
	p.mu.Unlock()
	p.appMu.Unlock()
	p.update()
}

// appHostname is what the pod's apps answer as their hostname: the pod's
// name (its own UTS namespace), or for a hostNetwork pod its node's (the
// kubelet shares the host's UTS namespace with it).
func (p *pod) appHostname() string {
	if p.hostNet {
		return p.node.spec.Name
	}
	return p.name
}

func (p *pod) scaledDur(d time.Duration) time.Duration {
	return time.Duration(float64(d) * p.scale)
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// podHost gives the pod its network: its own namespace linked to the node
// (eth0 = its IP, a veth with the node side 10.244.N.1/32, a /32 route on
// the node), or, for a hostNetwork pod, the node's own namespace, where
// its apps listen on the node's addresses.
func (c *Cluster) podHost(p *pod) (netsim.Host, error) {
	n := p.node
	if p.hostNet {
		for i := range p.ctrs {
			p.ctrs[i].spec.Addrs = []netip.Addr{n.spec.IP, netip.AddrFrom4([4]byte{127, 0, 0, 1})}
		}
		for i := range p.specs {
			p.specs[i].Addrs = []netip.Addr{n.spec.IP, netip.AddrFrom4([4]byte{127, 0, 0, 1})}
		}
		c.ctl.PodNotice(p.name, fmt.Sprintf("pod %s uses the host's network: it shares %s's network namespace and IP %s, its apps listen on %s:<port> and answer with the node's hostname, %s",
			p.name, n.spec.Name, n.spec.IP, n.spec.IP, n.spec.Name))
		return n.host, nil
	}
	gw := n.spec.Gateway()
	h, err := c.netw.AddHost(p.hname)
	if err != nil {
		return nil, err
	}
	if _, err := c.netw.AddLink(netsim.LinkSpec{Name: "pod/" + p.name,
		A: netsim.LinkEnd{Host: h, Dev: "eth0", Addrs: []netip.Prefix{netip.PrefixFrom(p.ip, n.spec.PodCIDR.Bits())}},
		B: netsim.LinkEnd{Host: n.host, Dev: p.veth, Addrs: []netip.Prefix{netip.PrefixFrom(gw, 32)}},
	}); err != nil {
		return nil, err
	}
	if err := h.AddRoute(netsim.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: gw}); err != nil {
		return nil, err
	}
	if err := n.host.AddRoute(netsim.Route{Dst: netip.PrefixFrom(p.ip, 32), Dev: p.veth}); err != nil {
		return nil, err
	}
	return h, nil
}

// Logs returns a container's log as the kubelet serves it to `kubectl
// logs`: the latest start's, or with previous the one before (an error
// when there is none, or when the container has not started yet, in the
// kubelet's words).
func (c *Cluster) Logs(pod, container string, previous bool) ([]plane.LogLine, error) {
	c.mu.Lock()
	p := c.pods[pod]
	if p == nil {
		p = c.stopping[pod]
	}
	c.mu.Unlock()
	if p == nil {
		return nil, &plane.NotFoundError{Kind: "pod", Name: pod, Lab: c.topo.Lab}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ct := range append(append([]*ctr(nil), p.inits...), p.ctrs...) {
		if ct.name != container {
			continue
		}
		l := ct.log
		if previous {
			if ct.prev == nil {
				return nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, pod)
			}
			l = ct.prev
		}
		if l == nil {
			reason := "ContainerCreating"
			if ct.state.Waiting != nil && ct.state.Waiting.Reason != "" {
				reason = ct.state.Waiting.Reason
			}
			return nil, fmt.Errorf("container %q in pod %q is waiting to start: %s", container, pod, reason)
		}
		var out []plane.LogLine
		for _, ln := range l.Lines() {
			out = append(out, plane.LogLine{Seq: ln.Seq, Time: ln.Time, Text: ln.Text})
		}
		return out, nil
	}
	return nil, fmt.Errorf("container %s is not valid for pod %s", container, pod)
}
