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

	"github.com/nplab/nplab/netsim"
	"github.com/nplab/nplab/nodes/apps"
)

// pod is one running pod: its host (namespace), apps and readiness.
type pod struct {
	name  string
	node  *node
	obj   *corev1.Pod
	ip    netip.Addr
	host  netsim.Host
	hname string
	veth  string
	app   *apps.App
	probe *corev1.Probe // the readiness probe, or nil
	specs []apps.Spec   // what the containers' apps listen on (the catalog)
	scale float64

	cancel context.CancelFunc
	done   chan struct{}

	mu            sync.Mutex
	published     bool // last readiness sent as an event
	probeOK       bool // the prober's verdict (no probe: the app listens)
	forcedUnready bool
	appStopped    bool
}

// StartPod creates the pod's host on node with ip, links it to the node
// (eth0 = ip/24 in the pod, a veth with the node side 10.244.N.1/32 and a
// /32 route in the node), starts its containers' apps and its readiness
// probe. Events: PodNotice (per catalog remark), PodStarted, and PodReady
// once ready.
func (c *Cluster) StartPod(ctx context.Context, nodeName string, obj *corev1.Pod, ip netip.Addr) error {
	if obj == nil {
		return fmt.Errorf("start pod on node %q: nil pod", nodeName)
	}
	name := obj.Name
	n := c.nodes[nodeName]
	if n == nil {
		return fmt.Errorf("start pod %q: node %q not found in lab %q", name, nodeName, c.cfg.Topology.Lab)
	}
	gw := gatewayOf(n.spec.PodCIDR)
	if !n.spec.PodCIDR.Contains(ip) || ip == gw || ip == n.spec.PodCIDR.Masked().Addr() {
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
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("start pod %q: lab %q is closed", name, c.cfg.Topology.Lab)
	}
	if _, dup := c.pods[name]; dup {
		c.mu.Unlock()
		return fmt.Errorf("start pod %q: a pod of that name already runs", name)
	}
	for _, other := range c.pods {
		if other.ip == ip {
			c.mu.Unlock()
			return fmt.Errorf("start pod %q: IP %v is already pod %q's", name, ip, other.name)
		}
	}
	veth := "veth" + shortHash(name)
	for i := 0; c.veths[veth]; i++ {
		veth = "veth" + shortHash(fmt.Sprintf("%s#%d", name, i))
	}
	// The fields set here never change; host, app and cancel are set
	// under c.mu once the pod runs (a pod without app is still building
	// and invisible to Ready, StopPod, Send...).
	p := &pod{name: name, node: n, obj: obj, ip: ip, hname: podHostName(name), veth: veth,
		probe: probe, specs: specs, scale: c.cfg.ProbeScale, done: make(chan struct{})}
	c.pods[name] = p // reserve the name and IP while building
	c.veths[veth] = true
	c.starting.Add(1) // Close waits for this call
	c.mu.Unlock()
	defer c.starting.Done()

	if err := c.buildPod(ctx, p, notices); err != nil {
		_ = c.netw.RemoveHost(p.hname)
		c.mu.Lock()
		if c.pods[name] == p {
			delete(c.pods, name)
		}
		delete(c.veths, veth)
		c.mu.Unlock()
		return fmt.Errorf("start pod %q on node %q: %w", name, nodeName, err)
	}
	return nil
}

func (c *Cluster) buildPod(ctx context.Context, p *pod, notices []string) error {
	n := p.node
	gw := gatewayOf(n.spec.PodCIDR)
	h, err := c.netw.AddHost(p.hname)
	if err != nil {
		return err
	}
	if _, err := c.netw.AddLink(netsim.LinkSpec{Name: "pod/" + p.name,
		A: netsim.LinkEnd{Host: h, Dev: "eth0", Addrs: []netip.Prefix{netip.PrefixFrom(p.ip, n.spec.PodCIDR.Bits())}},
		B: netsim.LinkEnd{Host: n.host, Dev: p.veth, Addrs: []netip.Prefix{netip.PrefixFrom(gw, 32)}},
	}); err != nil {
		return err
	}
	if err := h.AddRoute(netsim.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: gw}); err != nil {
		return err
	}
	if err := n.host.AddRoute(netsim.Route{Dst: netip.PrefixFrom(p.ip, 32), Dev: p.veth}); err != nil {
		return err
	}
	for _, msg := range notices {
		p.event(EventPodNotice, msg)
	}
	app, err := apps.Start(ctx, h, p.name, p.specs)
	if err != nil {
		return err
	}
	if p.probe == nil {
		// No readiness probe: ready as soon as the app listens, which
		// apps.Start has just made true.
		p.mu.Lock()
		p.probeOK = true
		p.mu.Unlock()
	}
	pctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	if c.closed || c.pods[p.name] != p {
		// Closed while building: Close has already taken the pod list
		// or is waiting for this call. Tear down what runs; the caller
		// removes the host.
		c.mu.Unlock()
		cancel()
		app.Stop()
		return fmt.Errorf("lab %q was closed while the pod started", c.cfg.Topology.Lab)
	}
	p.host, p.app, p.cancel = h, app, cancel
	c.mu.Unlock()
	var descs []string
	for _, s := range p.specs {
		descs = append(descs, s.Describe())
	}
	p.event(EventPodStarted, fmt.Sprintf("pod %s started on %s at %s (%v)", p.name, n.spec.Name, p.ip, descs))
	// A StopPod from here on cancels pctx and waits for p.done, which
	// the prober closes at once when pctx is already cancelled.
	if p.probe == nil {
		p.update()
		close(p.done)
		return nil
	}
	go func() {
		defer close(p.done)
		p.runProbe(pctx)
	}()
	return nil
}

func (p *pod) event(kind EventKind, msg string) {
	p.node.events.emit(Event{Time: time.Now(), Kind: kind, Node: p.node.spec.Name, Pod: p.name, Message: msg})
}

// update publishes a readiness change as PodReady / PodUnready.
func (p *pod) update() {
	p.mu.Lock()
	ready := p.probeOK && !p.forcedUnready && !(p.appStopped && p.probe == nil)
	changed := ready != p.published
	p.published = ready
	why := "readiness probe failed"
	switch {
	case p.forcedUnready:
		why = "forced unready"
	case p.appStopped && p.probe == nil:
		why = "its app stopped"
	}
	p.mu.Unlock()
	if !changed {
		return
	}
	if ready {
		p.event(EventPodReady, fmt.Sprintf("pod %s is ready", p.name))
	} else {
		p.event(EventPodUnready, fmt.Sprintf("pod %s is not ready: %s", p.name, why))
	}
}

// Ready reports whether pod name is ready now.
func (c *Cluster) Ready(name string) (bool, error) {
	p, err := c.pod(name)
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published, nil
}

func (c *Cluster) pod(name string) (*pod, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pods[name]
	if p == nil || p.app == nil {
		return nil, fmt.Errorf("pod %q not found in lab %q", name, c.cfg.Topology.Lab)
	}
	return p, nil
}

// SetPodUnready is a fault: the pod's readiness is forced false (true) or
// left to its probe again (false).
func (c *Cluster) SetPodUnready(name string, unready bool) error {
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

// StopApp is a fault: the pod's servers stop (connections are then
// refused by the pod's kernel); a readiness probe then fails, and a pod
// without one turns unready as its container has exited.
func (c *Cluster) StopApp(name string) error {
	p, err := c.pod(name)
	if err != nil {
		return err
	}
	p.app.Stop()
	p.mu.Lock()
	p.appStopped = true
	p.mu.Unlock()
	p.update()
	p.event(EventPodNotice, fmt.Sprintf("the app of pod %s stopped", p.name))
	return nil
}

// StopPod is the kubelet's SIGTERM: the apps' /readyz fails at once, the
// servers keep running for --delay-shutdown (scaled by ProbeScale), then
// stop; the pod's host is removed and PodStopped is emitted. It blocks
// until then.
func (c *Cluster) StopPod(name string) error {
	p, err := c.pod(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.pods[name] != p {
		c.mu.Unlock()
		return fmt.Errorf("pod %q not found in lab %q", name, c.cfg.Topology.Lab)
	}
	delete(c.pods, name)
	c.mu.Unlock()
	if d := p.app.Terminate(); d > 0 {
		time.Sleep(time.Duration(float64(d) * p.scale))
	}
	p.stopRunning()
	err = c.netw.RemoveHost(p.hname)
	c.mu.Lock()
	delete(c.veths, p.veth)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("stop pod %q: %w", name, err)
	}
	p.event(EventPodStopped, fmt.Sprintf("pod %s stopped and its namespace %s was removed", name, p.host.Namespace()))
	return nil
}

// stopRunning stops the prober and the apps.
func (p *pod) stopRunning() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
	if p.app != nil {
		p.app.Stop()
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
		p.event(EventPodNotice, fmt.Sprintf("pod %s: nplab cannot run exec or grpc readiness probes; it treats them as passing", p.name))
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
				p.event(EventPodNotice, fmt.Sprintf("pod %s: readiness probe failed %d times: %v", p.name, fail, err))
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
