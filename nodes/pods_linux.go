//go:build linux

package nodes

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nplab/nplab/lab/plane"
	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/apps"
)

// pod is one running pod: its host (namespace), apps and readiness.
type pod struct {
	name  string
	node  *node
	ctl   plane.Control
	obj   *corev1.Pod
	ip    netip.Addr
	hname string
	veth  string
	probe *corev1.Probe // the readiness probe, or nil
	specs []apps.Spec   // what the containers' apps listen on (the catalog)
	scale float64
	// grace is the kubelet's grace period after SIGTERM (unscaled, at
	// least 2 s): terminationGracePeriodSeconds until StopPod sets the
	// deletion's; a later StopPod may shorten it (under mu), and kick
	// wakes the stop waiting on it.
	grace time.Duration
	kick  chan struct{}
	// hostNet: spec.hostNetwork, the pod shares its node's namespace and
	// IP (kubelet_linux.go).
	hostNet bool

	// Set under Cluster.mu when the pod runs (started); then fixed.
	host    netsim.Host
	started bool
	runCtx  context.Context // ends when the pod stops running (cancel)
	cancel  context.CancelFunc
	done    chan struct{} // the prober has returned
	gone    chan struct{} // StopPod is done with it

	// appMu serializes stopping and starting the apps.
	appMu sync.Mutex

	// inits and ctrs are the pod's init containers and containers, as
	// the kubelet runs them (kubelet_linux.go).
	inits, ctrs []*ctr

	mu            sync.Mutex
	published     bool // last readiness reported to the control plane
	probeOK       bool // the prober's verdict (no probe: the app listens)
	forcedUnready bool
	appStopped    bool // SetAppRunning(false): a fault stopped the apps
	stopped       bool // stopRunning ran: the app never starts again
	terminating   bool // StopPod has sent SIGTERM: an exit is not restarted
}

// minGracePeriod is the kubelet's floor on a container's grace period
// (minimumGracePeriodInSeconds): even terminationGracePeriodSeconds: 0 or
// 1 gives the app 2 s after SIGTERM before SIGKILL.
const minGracePeriod = 2 * time.Second

// gracePeriod is the pod's terminationGracePeriodSeconds (default 30),
// floored as the kubelet does.
func gracePeriod(obj *corev1.Pod) time.Duration {
	g := 30 * time.Second
	if obj.Spec.TerminationGracePeriodSeconds != nil {
		g = time.Duration(*obj.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return max(g, minGracePeriod)
}

// setGrace takes a deletion's grace period, floored as the kubelet does;
// a pod already stopping only ever gets a shorter one. It says whether it
// changed.
func (p *pod) setGrace(g time.Duration, stopping bool) bool {
	g = max(g, minGracePeriod)
	p.mu.Lock()
	defer p.mu.Unlock()
	if g == p.grace || (stopping && g > p.grace) {
		return false
	}
	p.grace = g
	return true
}

// StartPod creates the pod's host on node with ip, links it to the node
// (eth0 = ip/24 in the pod, a veth with the node side 10.244.N.1/32 and a
// /32 route in the node), starts its containers' apps and its readiness
// probe. It reports PodNotice (per catalog remark), PodStarted, and
// PodReady once ready. A pod of the same name or IP that StopPod is still
// removing is waited for (until ctx ends), as the kubelet does.
//
// StartPod checks the pod and reserves its name, IP and veth, then builds
// it in the background, up to buildParallelism pods at once (it waits for
// a free slot), so that a Deployment's pods come up in parallel although
// the control plane starts them one after another. What fails while
// building is reported as a Warning about the pod, as a kubelet reports a
// pod sandbox it could not create. Every other method that concerns pods
// or traffic (Send, SyncServices, StopPod, Ready, SetPodUnready,
// SetAppRunning) first waits for the builds in flight (settle), so to a
// caller a started pod is there, as if StartPod had built it itself.
func (c *Cluster) StartPod(ctx context.Context, nodeName string, obj *corev1.Pod, ip netip.Addr) error {
	if obj == nil {
		return fmt.Errorf("start pod on node %q: nil pod", nodeName)
	}
	name := obj.Name
	n, err := c.node(nodeName)
	if err != nil {
		return fmt.Errorf("start pod %q: %w", name, err)
	}
	gw := n.spec.Gateway()
	hostNet := obj.Spec.HostNetwork
	if hostNet && ip != n.spec.IP {
		return fmt.Errorf("start pod %q on node %q: a hostNetwork pod's IP is its node's, %v, not %v", name, nodeName, n.spec.IP, ip)
	}
	if !hostNet && (!n.spec.PodCIDR.Contains(ip) || ip == gw || ip == n.spec.PodCIDR.Masked().Addr()) {
		return fmt.Errorf("start pod %q on node %q: IP %v is not a pod address in %v", name, nodeName, ip, n.spec.PodCIDR)
	}
	obj = obj.DeepCopy()
	specs, notices := specsOf(obj)
	var probe *corev1.Probe
	for _, ctr := range obj.Spec.Containers {
		if ctr.ReadinessProbe != nil {
			probe = ctr.ReadinessProbe
			break
		}
	}
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return fmt.Errorf("start pod %q: lab %q is closed", name, c.topo.Lab)
		}
		var wait chan struct{}
		for _, old := range c.stopping {
			if old.name == name || (old.ip == ip && !hostNet) {
				wait = old.gone
			}
		}
		if wait == nil {
			break
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("start pod %q: waiting for the old pod of that name or IP to stop: %w", name, ctx.Err())
		}
		c.mu.Lock()
	}
	if _, dup := c.pods[name]; dup {
		c.mu.Unlock()
		return fmt.Errorf("start pod %q: a pod of that name already runs", name)
	}
	for _, other := range c.pods {
		if other.ip == ip && !hostNet {
			c.mu.Unlock()
			return fmt.Errorf("start pod %q: IP %v is already pod %q's", name, ip, other.name)
		}
	}
	veth := "veth" + shortHash(name)
	for i := 0; c.veths[veth]; i++ {
		veth = "veth" + shortHash(fmt.Sprintf("%s#%d", name, i))
	}
	// A pod that has not started is invisible to Ready, StopPod, Send...
	p := &pod{name: name, node: n, ctl: c.ctl, obj: obj, ip: ip, hname: podHostName(name), veth: veth,
		probe: probe, specs: specs, scale: c.opts.ProbeScale, grace: gracePeriod(obj), kick: make(chan struct{}, 1), done: make(chan struct{}), gone: make(chan struct{})}
	p.hostNet = hostNet
	p.inits, p.ctrs = newContainers(obj, specs, c.opts.ProbeScale)
	c.pods[name] = p // reserve the name and IP while building
	c.checkNeighbours(nodeName)
	c.veths[veth] = true
	c.starting.Add(1) // Close waits for the build
	c.buildStarted()
	c.mu.Unlock()

	done := func() {
		c.mu.Lock()
		c.buildDone()
		c.mu.Unlock()
		c.starting.Done()
	}
	fail := func() {
		_ = c.unmapHostPorts(p)
		_ = c.netw.RemoveHost(p.hname) // none for a hostNetwork pod
		c.mu.Lock()
		if c.pods[name] == p {
			delete(c.pods, name)
		}
		delete(c.veths, veth)
		c.mu.Unlock()
	}
	select {
	case c.buildSlots <- struct{}{}:
	case <-ctx.Done():
		err := fmt.Errorf("start pod %q on node %q: %w", name, nodeName, ctx.Err())
		fail()
		done()
		return err
	}
	go func() {
		defer done()
		defer func() { <-c.buildSlots }()
		if err := c.buildPod(ctx, p, notices); err != nil {
			fail()
			// As kubelet when a pod's sandbox cannot be made: a
			// FailedCreatePodSandBox warning, and the pod stays
			// ContainerCreating (not 0/1 Running).
			c.ctl.Warning(nodeName, name, fmt.Sprintf("Failed to create pod sandbox: start pod %s on %s: %v", name, nodeName, planeErr(err)))
			p.mu.Lock()
			p.reportLocked()
			p.mu.Unlock()
		}
	}()
	return nil
}

// buildStarted and buildDone count the pod builds in flight; c.mu is held.
func (c *Cluster) buildStarted() {
	if c.building == 0 {
		c.built = make(chan struct{})
	}
	c.building++
}

func (c *Cluster) buildDone() {
	c.building--
	if c.building == 0 {
		close(c.built)
		c.built = nil
	}
}

// settle waits until no pod is being built (see StartPod).
func (c *Cluster) settle() {
	c.mu.Lock()
	ch := c.built
	c.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (c *Cluster) buildPod(ctx context.Context, p *pod, notices []string) error {
	n := p.node
	h, err := c.podHost(p)
	if err != nil {
		return err
	}
	if err := c.mapHostPorts(p); err != nil {
		return err
	}
	for _, msg := range notices {
		c.ctl.PodNotice(p.name, msg)
	}
	for _, s := range p.specs {
		for _, msg := range s.Warnings {
			c.ctl.Warning(n.spec.Name, p.name, msg)
		}
	}
	pctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	if c.closed || c.pods[p.name] != p {
		// Closed while building: Close has already taken the pod list
		// or is waiting for this call. The caller removes the host.
		c.mu.Unlock()
		cancel()
		return fmt.Errorf("lab %q was closed while the pod started", c.topo.Lab)
	}
	p.host, p.started, p.runCtx, p.cancel = h, true, pctx, cancel
	c.mu.Unlock()
	// The kubelet: init containers first (in the background, they take
	// their time), else the containers' apps at once, so a pod without
	// init containers listens when StartPod returns.
	started := len(p.inits) == 0
	if started {
		p.startContainers(pctx)
	} else {
		p.report()
		for _, ic := range p.inits {
			c.ctl.PodNotice(p.name, ic.run.Note)
		}
	}
	var descs []string
	for _, s := range p.specs {
		descs = append(descs, s.Describe())
	}
	c.ctl.PodStarted(p.name, n.spec.Name, fmt.Sprintf("pod %s started on %s at %s (%v)", p.name, n.spec.Name, p.ip, descs))
	// A StopPod from here on cancels pctx and waits for p.done, which
	// the kubelet goroutine closes when it returns.
	go p.kubelet(pctx, started)
	return nil
}

// update reports a readiness change with PodReady. It reports while
// holding p.mu, so the control plane hears the changes in the order they
// happened, whichever goroutine made them.
func (p *pod) update() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ready := p.probeOK && !p.forcedUnready && !(p.appStopped && p.probe == nil) && p.allRunningLocked()
	if ready == p.published {
		return
	}
	p.published = ready
	p.ctl.PodReady(p.name, ready)
}

// isAppStopped: a fault stopped the pod's apps, or one of its containers
// does not run (it exited, waits in back-off, or init containers run).
func (p *pod) isAppStopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.appStopped || !p.allRunningLocked()
}

// Ready reports whether pod name is ready now.
func (c *Cluster) Ready(name string) (bool, error) {
	c.settle()
	p, err := c.pod(name)
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published, nil
}

// pod returns a running pod, or a *plane.NotFoundError.
func (c *Cluster) pod(name string) (*pod, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pods[name]
	if p == nil || !p.started {
		return nil, &plane.NotFoundError{Kind: "pod", Name: name, Lab: c.topo.Lab}
	}
	return p, nil
}

// SetPodUnready is a fault: the pod's readiness is forced false (true) or
// left to its probe again (false).
func (c *Cluster) SetPodUnready(name string, unready bool) error {
	c.settle()
	p, err := c.pod(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.forcedUnready = unready
	p.mu.Unlock()
	p.update()
	return nil
}

// SetAppRunning is a fault: running=false stops the pod's servers
// (connections are then refused by the pod's kernel, and flows to it say
// plane.ReasonAppStopped); a readiness probe then fails, and a pod without
// one turns unready as its container has exited. running=true starts them
// again, like the kubelet restarting the container: the servers listen
// again, a probe passes again, and a pod without one is ready at once.
func (c *Cluster) SetAppRunning(name string, running bool) error {
	c.settle()
	p, err := c.pod(name)
	if err != nil {
		return err
	}
	p.appMu.Lock()
	defer p.appMu.Unlock()
	p.mu.Lock()
	gone, stopped := p.stopped, p.appStopped
	p.mu.Unlock()
	if gone {
		return &plane.NotFoundError{Kind: "pod", Name: name, Lab: c.topo.Lab}
	}
	if !running {
		if stopped {
			return nil
		}
		p.mu.Lock()
		p.appStopped = true
		var running []*apps.App
		for _, ct := range p.ctrs {
			if ct.app != nil {
				running = append(running, ct.app)
			}
		}
		p.mu.Unlock()
		for _, app := range running {
			app.Stop()
		}
		p.update()
		c.ctl.PodNotice(name, fmt.Sprintf("the app of pod %s stopped", name))
		return nil
	}
	if !stopped {
		return nil
	}
	// Start every container's app again, on fresh sockets. One that
	// cannot start terminates and backs off as a crash does.
	p.mu.Lock()
	p.appStopped = false
	for _, ct := range p.ctrs {
		ct.app = nil
	}
	p.mu.Unlock()
	for _, ct := range p.ctrs {
		p.startLocked(p.runCtx, ct)
	}
	p.update()
	c.ctl.PodNotice(name, fmt.Sprintf("the app of pod %s runs again", name))
	return nil
}

// StopPod is the kubelet's SIGTERM, in the background: the apps' /readyz
// fails at once, the servers keep running for --delay-shutdown (scaled by
// ProbeScale) but no longer than grace, then stop; the pod's host is
// removed and the control plane hears PodStopped (after a Warning, if
// removing failed or the pod was not running). StopPod again while the
// pod stops shortens its grace period, as a second delete with a shorter
// --grace-period does, and reports nothing more. Close waits for it,
// cutting the grace period short.
func (c *Cluster) StopPod(name string, grace time.Duration) {
	c.settle()
	c.mu.Lock()
	if c.closed {
		// Close stops every pod.
		c.mu.Unlock()
		c.ctl.PodStopped(name)
		return
	}
	if p := c.stopping[name]; p != nil {
		c.mu.Unlock()
		if p.setGrace(grace, true) {
			select {
			case p.kick <- struct{}{}:
			default:
			}
		}
		return
	}
	p := c.pods[name]
	if p == nil || !p.started {
		c.mu.Unlock()
		c.ctl.Warning("", name, fmt.Sprintf("stop pod: %v", &plane.NotFoundError{Kind: "pod", Name: name, Lab: c.topo.Lab}))
		c.ctl.PodStopped(name)
		return
	}
	delete(c.pods, name)
	c.stopping[name] = p
	c.stops.Add(1)
	c.mu.Unlock()
	p.setGrace(grace, false)
	go func() {
		defer c.stops.Done()
		err := c.stopPod(p)
		c.mu.Lock()
		delete(c.stopping, name)
		delete(c.veths, p.veth)
		c.mu.Unlock()
		close(p.gone)
		if err != nil {
			c.ctl.Warning(p.node.spec.Name, name, fmt.Sprintf("stop pod %s: %v", name, err))
		}
		c.ctl.PodStopped(name)
	}()
}

func (c *Cluster) stopPod(p *pod) error {
	p.mu.Lock()
	p.terminating = true
	var running []*apps.App
	for _, ct := range p.ctrs {
		if ct.app != nil {
			running = append(running, ct.app)
		}
	}
	p.mu.Unlock()
	// SIGTERM to every container; they run on for their --delay-shutdown,
	// and the kubelet kills them (SIGKILL) when the grace period ends
	// first.
	var d time.Duration
	for _, app := range running {
		d = max(d, app.Terminate())
	}
	if d > 0 {
		ctx, cancel := context.WithCancel(c.ctx)
		defer cancel() // ends allExited's goroutine
		exited := allExited(running, ctx)
		start := time.Now()
	wait:
		for {
			p.mu.Lock()
			grace := p.grace
			p.mu.Unlock()
			t := time.NewTimer(time.Duration(float64(min(d, grace))*p.scale) - time.Since(start))
			select {
			case <-t.C:
				if d > grace {
					c.ctl.PodNotice(p.name, fmt.Sprintf("pod %s: its grace period (%v) ended before its app's --delay-shutdown (%v); the kubelet killed it", p.name, grace, d))
				}
				break wait
			case <-p.kick: // a shorter grace period
				t.Stop()
			case <-exited:
				t.Stop()
				break wait
			case <-c.ctx.Done():
				t.Stop()
				break wait
			}
		}
	}
	p.stopRunning()
	if err := c.unmapHostPorts(p); err != nil {
		return fmt.Errorf("remove its hostPorts: %w", err)
	}
	if err := c.netw.RemoveHost(p.hname); err != nil {
		return fmt.Errorf("remove its namespace %s: %w", p.host.Namespace(), err)
	}
	return nil
}

// allExited is closed when every app has exited by itself (or ctx ends).
func allExited(as []*apps.App, ctx context.Context) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for _, a := range as {
			select {
			case <-a.Exited():
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// stopRunning stops the kubelet's goroutine (init containers, prober) and
// the apps for good.
func (p *pod) stopRunning() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
	p.appMu.Lock()
	defer p.appMu.Unlock()
	p.mu.Lock()
	p.stopped = true
	var running []*apps.App
	for _, ct := range p.ctrs {
		if ct.app != nil {
			running = append(running, ct.app)
		}
	}
	p.mu.Unlock()
	for _, app := range running {
		app.Stop()
	}
}

// scaled converts probe seconds to a duration under ProbeScale.
func (p *pod) scaled(seconds int32, def int32) time.Duration {
	if seconds <= 0 {
		seconds = def
	}
	return time.Duration(float64(seconds) * float64(time.Second) * p.scale)
}

// runProbe is the kubelet's readiness worker: wait initialDelaySeconds,
// then probe every periodSeconds with timeoutSeconds; successThreshold
// successes in a row make the pod ready, failureThreshold failures in a
// row make it unready. Readiness starts false.
func (p *pod) runProbe(ctx context.Context) {
	pr := p.probe
	delay := p.scaled(pr.InitialDelaySeconds, 0)
	if pr.InitialDelaySeconds <= 0 {
		delay = 0
	}
	period := p.scaled(pr.PeriodSeconds, 10)
	timeout := max(p.scaled(pr.TimeoutSeconds, 1), 100*time.Millisecond)
	succT, failT := int(max(pr.SuccessThreshold, 1)), int(max(pr.FailureThreshold, 1))
	if pr.FailureThreshold <= 0 {
		failT = 3
	}
	if pr.Exec != nil || pr.GRPC != nil {
		p.ctl.PodNotice(p.name, fmt.Sprintf("pod %s: nplab cannot run exec or grpc readiness probes; it treats them as passing", p.name))
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	succ, fail := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := p.probeOnce(ctx, pr, timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			succ, fail = succ+1, 0
		} else {
			succ, fail = 0, fail+1
		}
		p.mu.Lock()
		changed := false
		if err == nil && succ >= succT && !p.probeOK {
			p.probeOK, changed = true, true
		}
		if err != nil && fail >= failT && p.probeOK {
			p.probeOK, changed = false, true
		}
		p.mu.Unlock()
		if changed {
			if err != nil {
				p.ctl.PodNotice(p.name, fmt.Sprintf("pod %s: readiness probe failed %d times: %v", p.name, fail, err))
			}
			p.update()
		}
		t.Reset(period)
	}
}

// probeOnce runs one readiness check from the node's namespace against the
// pod IP, as the kubelet does.
func (p *pod) probeOnce(ctx context.Context, pr *corev1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case pr.HTTPGet != nil:
		port, err := p.resolvePort(pr.HTTPGet.Port)
		if err != nil {
			return err
		}
		if pr.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			return fmt.Errorf("HTTPS probes are not supported by nplab")
		}
		host := netip.AddrPortFrom(p.ip, port).String()
		path := pr.HTTPGet.Path
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
		if err != nil {
			return err
		}
		for _, h := range pr.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		req.Header.Set("User-Agent", "kube-probe/nplab")
		tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.node.host.Dial(ctx, "tcp", addr)
		}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		port, err := p.resolvePort(pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		conn, err := p.node.host.Dial(ctx, "tcp", netip.AddrPortFrom(p.ip, port).String())
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return nil
}

// resolvePort turns a probe port (number or containerPort name) into a number.
func (p *pod) resolvePort(v intstr.IntOrString) (uint16, error) {
	if v.Type == intstr.Int {
		if v.IntVal <= 0 || v.IntVal > 65535 {
			return 0, fmt.Errorf("invalid probe port %d", v.IntVal)
		}
		return uint16(v.IntVal), nil
	}
	if n, err := strconv.Atoi(v.StrVal); err == nil && n > 0 && n <= 65535 {
		return uint16(n), nil
	}
	for _, ctr := range p.obj.Spec.Containers {
		for _, cp := range ctr.Ports {
			if cp.Name == v.StrVal {
				return uint16(cp.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("probe port %q: no containerPort of that name", v.StrVal)
}
