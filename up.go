package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/kubectl"
	"github.com/nplab/nplab/lab/plane"
)

func init() { subcommands = append(subcommands, newUpCmd) }

// upOptions are nplab up's flags; plain `nplab` runs up with their defaults.
type upOptions struct {
	files       []string
	nodes       int
	name        string
	portRange   string
	proxyMode   string
	seed        uint64
	readyWithin time.Duration
	detach      bool // --detach: see runDetached (labs.go)
	resume      bool // --resume: bring back the stored lab (resume.go)
	fresh       bool // --fresh: delete the stored lab and start clean
}

func (o *upOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringSliceVarP(&o.files, "filename", "f", nil, filenameUsage+"; none means the default lab")
	f.IntVar(&o.nodes, "nodes", 3, fmt.Sprintf("number of nodes (1 to %d)", plane.MaxNodes))
	f.StringVar(&o.name, "name", "demo", "lab name, up to 12 of a-z, 0-9 and '-' (namespaces are nplab-<name>-<host>)")
	f.StringVar(&o.portRange, "service-node-port-range", "30000-32767", "the NodePort range, as kube-apiserver's flag")
	f.StringVar(&o.proxyMode, "proxy-mode", "random", `endpoint choice per connection: "random" (iptables/nftables) or "roundrobin" (IPVS rr)`)
	f.Uint64Var(&o.seed, "seed", 0, "seed the random allocations (clusterIPs, nodePorts, pod names), as validate's --seed; 0 means random")
	f.DurationVar(&o.readyWithin, "ready-timeout", 30*time.Second, "how long to wait for pods to become ready before printing the tables")
	f.BoolVarP(&o.detach, "detach", "d", false, "run the lab in the background: return once it is ready (nplab ls, nplab down)")
	f.BoolVar(&o.resume, "resume", false, "resume the lab stopped (or killed, or lost to a reboot) under this --name: the same objects, nodePorts, ClusterIPs and pod IPs")
	f.BoolVar(&o.fresh, "fresh", false, "start clean, deleting the objects a stopped lab of this --name kept")
}

// upExamples is the Example of up (and of plain nplab).
const upExamples = `  nplab up                                  # the default lab "demo": 3 nodes, a web Deployment, a NodePort Service
  nplab up -f my-lab.yaml --name mine       # your manifests instead, in a lab that can run beside "demo"
  cat my-lab.yaml | nplab up -f -           # manifests from stdin
  nplab up -f manifests/ --nodes 5          # every .yaml, .yml and .json file of a directory
  nplab up --name mine --resume             # lab "mine" again after a stop, a crash or a reboot: same nodePorts, ClusterIPs, pods
  nplab validate -f my-lab.yaml --seed 7 && nplab up -f my-lab.yaml --seed 7   # the same nodePorts, ClusterIPs and pod names
  go run . up                               # from a clone, without installing nplab`

func newUpCmd() *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up [-f FILE...] [--nodes N] [--name LAB]",
		Short: "Run a lab in the foreground (Ctrl-C removes it)",
		Long: `Run a lab in the foreground: nodes, pods and an outside client as real
network namespaces, the manifests applied (the default lab without -f), and a
NodePort proxy on every node. It prints how to reach the services, logs every
event, and removes everything it created on Ctrl-C or SIGTERM.

Without root it runs in a user namespace of its own (rootless: enter its
hosts with nplab exec); as root (sudo), its namespaces are also in the host's
ip netns list. It never touches the machine's own network namespace.

A lab keeps its objects on disk, as a cluster keeps them in etcd: in
/var/lib/nplab/<name> as root, else ~/.local/state/nplab/<name>. Started
again under the same --name after a stop, a crash or a reboot, it offers to
resume: the same Services, nodePorts, ClusterIPs, pods and pod IPs. --resume resumes without asking, --fresh
starts clean; without a terminal to ask on, one of them is needed.`,
		Example: upExamples,
		Args:    noFileArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runUp(cmd, o) },
	}
	o.addFlags(cmd)
	return cmd
}

// check validates the flags, before anything is printed or built.
func (o *upOptions) check() (plane.ProxyMode, error) {
	if err := checkNodes(o.nodes); err != nil {
		return "", err
	}
	if err := checkLabName(o.name); err != nil {
		return "", err
	}
	if o.resume && o.fresh {
		return "", errors.New("--resume and --fresh cannot be used together: --resume brings the stored lab back, --fresh deletes it")
	}
	mode, err := plane.ParseProxyMode(o.proxyMode)
	if err != nil {
		return "", flagError{fmt.Errorf(`invalid argument %q for "--proxy-mode" flag: must be "random" or "roundrobin"`, o.proxyMode)}
	}
	// The range, in the control plane's own words: a lab without a data
	// plane checks it and is gone at once.
	l, err := lab.New(lab.Config{Name: o.name, Nodes: o.nodes, NodePortRange: o.portRange})
	if err != nil {
		return "", flagError{err}
	}
	_ = l.Close()
	return mode, nil
}

func runUp(cmd *cobra.Command, o *upOptions) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	mode, err := o.check()
	if err != nil {
		return err
	}
	// Read every manifest before anything is built: a missing file costs
	// nothing.
	files, err := readManifests(o.files, cmd.InOrStdin())
	if err != nil {
		return err
	}
	// A lab of that name that still runs is not left over, nor stopped:
	// say so before asking whether to resume it (its objects are stored
	// as it runs).
	if pid, ok := runningLab(o.name); ok { // resume.go
		return fmt.Errorf("lab %q is already running (pid %d): stop it first, or start this one with another --name", o.name, pid)
	}
	// Resume or not: asked here, before the lab goes to the background.
	resume, stateDir, err := o.chooseResume(cmd)
	if err != nil {
		return err
	}
	// Before the root check: without root, the background child runs in
	// a user namespace (rootless.go).
	if o.detach && os.Getenv(detachedEnv) == "" {
		// The background process cannot ask: it is told.
		os.Setenv(resumeEnv, strconv.FormatBool(resume))
		return runDetached(cmd, o) // labs.go
	}
	if os.Geteuid() != 0 {
		return errors.New("nplab up creates network namespaces and needs root: run it with sudo")
	}
	if len(files) == 0 && !resume {
		files = []lab.File{{Name: "default.yaml", Data: lab.DefaultManifest}}
	}

	// Ctrl-C, kill, a closed terminal or ssh session, Ctrl-\: every way a
	// foreground lab is told to stop removes what it built.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	// Output to a pipe whose reader is gone (the parent that ran nplab
	// died) is an error to ignore, not SIGPIPE: that would kill nplab
	// before it removed the lab.
	signal.Ignore(syscall.SIGPIPE)

	cfg := lab.Config{Name: o.name, Nodes: o.nodes, NodePortRange: o.portRange, ProxyMode: mode, StateDir: stateDir, Resume: resume}
	if o.seed != 0 {
		cfg.Rand = seededRand(o.seed)
	}
	nodes := nodesPhrase(o.nodes)
	if resume {
		// After a crash (kill -9) the killed lab's namespaces are still
		// there: remove them first, as nplab clean would.
		if err := cleanKilled(out, o.name); err != nil {
			return err
		}
		// The stored lab's shape, unless a flag says otherwise (and then
		// it must match).
		cfg.Nodes, cfg.NodePortRange, cfg.ProxyMode, nodes = o.changedShape(cmd, mode)
		fmt.Fprintf(out, "Resuming lab %q from %s: its nodes, an outside client, the cluster bridge...\n", o.name, stateDir)
	} else {
		fmt.Fprintf(out, "Starting lab %q: %s, an outside client, the cluster bridge...\n", o.name, nodes)
	}
	prog := newProgress(out)
	built := prog.phase(fmt.Sprintf("Building namespaces: %s, the client and the bridge", nodes))
	r, err := lab.Start(ctx, cfg)
	if err == nil {
		nodes = nodesPhrase(len(r.Nodes()))
	}
	built(err == nil, fmt.Sprintf("Namespaces ready: %s, the client and the bridge", nodes))
	if err != nil {
		return err
	}
	if resume {
		fmt.Fprintf(out, "Resumed lab %q: %d Services, %d Deployments and %d pods restored from %s\n",
			o.name, len(r.Services()), len(r.Deployments()), len(r.Pods()), stateDir)
	}
	defer func() {
		fmt.Fprintf(out, "\nRemoving lab %q...\n", o.name)
		if err := r.Close(); err != nil {
			fmt.Fprintf(errOut, "error: removing lab %q: %v (run: nplab clean --name %s)\n", o.name, err, o.name)
			return
		}
		fmt.Fprintf(out, "Lab %q removed.\n", o.name)
	}()

	// The lab's Kubernetes API endpoint and kubeconfig (labs.go), stopped
	// before the lab is removed.
	api, stopAPI, err := serveAPI(r)
	if err != nil {
		return err
	}
	defer stopAPI()

	// Watch before applying, so every event from the first one on is
	// printed, and readiness is read from the stream, not polled.
	w := r.Watch()
	defer func() { w.Stop() }()

	for _, res := range r.ApplyFiles(files...) {
		if res.Err != nil {
			fmt.Fprintln(errOut, res.String())
		} else {
			fmt.Fprintln(out, res.String())
		}
	}
	backlog := waitReady(ctx, &w, r, o.readyWithin, prog)
	if ctx.Err() != nil {
		return nil
	}
	printLab(out, r)
	printKubeconfigHint(out, api, true)
	if err := writeRecord(upRecord{Name: o.name, PID: os.Getpid(), Nodes: len(r.Nodes()), Started: time.Now(),
		Kubeconfig: api.Kubeconfig, Server: api.URL}); err != nil {
		fmt.Fprintf(errOut, "warning: recording lab %q for nplab ls: %v\n", o.name, err)
	}
	fmt.Fprintln(out, "\nEvents (Ctrl-C to stop the lab and remove it):")
	for _, ev := range backlog {
		fmt.Fprintln(out, ev.String())
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				if !errors.Is(w.Err(), lab.ErrFellBehind) {
					return nil
				}
				fmt.Fprintln(errOut, "(events came faster than they could be printed; some were skipped)")
				w = r.Watch()
				continue
			}
			fmt.Fprintln(out, ev.String())
		}
	}
}

// waitReady follows the lab's events until every pod is ready, or within
// has passed, and returns the events it read (to print after the tables).
// Progress shows the pods ready so far, as the events say.
func waitReady(ctx context.Context, w **lab.Watcher, r *lab.Lab, within time.Duration, prog *progress) []lab.Event {
	var backlog []lab.Event
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	// A Deployment's pods come from the controllers after Apply returned:
	// first wait for them to exist, then for them to be ready.
	idleCtx, cancel := context.WithTimeout(ctx, within)
	_ = r.WaitIdle(idleCtx)
	cancel()
	target := r.State().Seq // the pods exist by this event
	state := (*w).State.Clone()
	pods := func() string {
		ready := 0
		for _, p := range state.Pods {
			if p.Ready {
				ready++
			}
		}
		if len(state.Pods) == 0 {
			return "Creating pods"
		}
		return fmt.Sprintf("Pods ready: %d/%d", ready, len(state.Pods))
	}
	done := prog.phase(pods())
	for {
		if state.Seq >= target && allReady(state) {
			if len(state.Pods) == 0 {
				done(true, "") // no pods: nothing to report
			} else {
				done(true, pods())
			}
			return backlog
		}
		select {
		case <-ctx.Done():
			done(false, "")
			return backlog
		case <-timeout.C:
			done(false, "")
			fmt.Fprintf(prog.out, "%s after %s; the table below shows which are not\n", pods(), within)
			return backlog
		case ev, ok := <-(*w).Events:
			if !ok {
				*w = r.Watch()
				state = (*w).State.Clone()
				continue
			}
			state.Apply(ev)
			backlog = append(backlog, ev)
			prog.update(pods())
		}
	}
}

func allReady(s lab.State) bool {
	for _, p := range s.Pods {
		if !p.Ready {
			return false
		}
	}
	return true
}

// printLab prints the nodes, the objects as kubectl would, and how to reach
// every NodePort.
func printLab(w io.Writer, r *lab.Lab) {
	topo := r.Topology()
	fmt.Fprintf(w, "\nNodes (namespaces nplab-%s-<node>):\n", topo.Lab)
	for _, n := range topo.Nodes {
		fmt.Fprintf(w, "  %-8s %-12s pods %s\n", n.Name, n.IP, n.PodCIDR)
	}
	fmt.Fprintf(w, "  %-8s %-12s outside the cluster: reaches node IPs, never pod IPs\n", plane.ClientHost, topo.Client)
	fmt.Fprintln(w, "\n$ kubectl get svc,pods -o wide")
	_, _ = kubectl.GetServicesAndPods(w, r.Services(), r.Pods(), r.Now(), true)

	var lines []string
	for _, svc := range r.Services() {
		for _, p := range svc.Spec.Ports {
			if p.NodePort == 0 {
				continue
			}
			for _, n := range topo.Nodes {
				req := plane.Request{From: plane.ClientHost, Protocol: string(p.Protocol),
					Target: netip.AddrPortFrom(n.IP, uint16(p.NodePort)), Message: "/hostname"}
				if p.Protocol != "TCP" {
					req.Message = "hostname"
				}
				lines = append(lines, "  "+r.Command(req))
			}
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "\nReach the NodePorts from the outside client (in another terminal):")
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	}
}
