package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
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
	readyWithin time.Duration
	detach      bool // --detach: see runDetached (labs.go)
}

func (o *upOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "manifest to apply (repeatable); none means the default lab")
	f.IntVar(&o.nodes, "nodes", 3, "number of nodes")
	f.StringVar(&o.name, "name", "demo", "lab name (namespaces are nplab-<name>-<host>)")
	f.StringVar(&o.portRange, "service-node-port-range", "30000-32767", "the NodePort range, as kube-apiserver's flag")
	f.StringVar(&o.proxyMode, "proxy-mode", "random", `endpoint choice per connection: "random" (iptables/nftables) or "roundrobin" (IPVS rr)`)
	f.DurationVar(&o.readyWithin, "ready-timeout", 30*time.Second, "how long to wait for pods to become ready before printing the tables")
	f.BoolVarP(&o.detach, "detach", "d", false, "run the lab in the background: return once it is ready (nplab ls, nplab down)")
}

func newUpCmd() *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up [-f FILE...] [--nodes N] [--name LAB]",
		Short: "Run a lab in the foreground (Ctrl-C removes it)",
		Long: `Run a lab in the foreground: nodes, pods and an outside client as real
network namespaces, the manifests applied (the default lab without -f), and a
NodePort proxy on every node. It prints how to reach the services, logs every
event, and removes everything it created on Ctrl-C or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd, o) },
	}
	o.addFlags(cmd)
	return cmd
}

func runUp(cmd *cobra.Command, o *upOptions) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if os.Geteuid() != 0 {
		return errors.New("nplab up creates network namespaces and needs root: run it with sudo")
	}
	if o.detach && os.Getenv(detachedEnv) == "" {
		return runDetached(cmd, o) // labs.go
	}
	mode, err := plane.ParseProxyMode(o.proxyMode)
	if err != nil {
		return fmt.Errorf(`invalid argument %q for "--proxy-mode" flag: must be "random" or "roundrobin"`, o.proxyMode)
	}
	// Read every manifest before anything is built: a missing file costs
	// nothing.
	type manifestFile struct {
		name string
		data []byte
	}
	var files []manifestFile
	for _, f := range o.files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("the path %q does not exist or cannot be read: %w", f, err)
		}
		files = append(files, manifestFile{f, b})
	}
	if len(files) == 0 {
		files = []manifestFile{{"default.yaml", lab.DefaultManifest}}
	}

	// Ctrl-C, kill, a closed terminal or ssh session, Ctrl-\: every way a
	// foreground lab is told to stop removes what it built.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()

	fmt.Fprintf(out, "Starting lab %q: %d nodes, an outside client, the cluster bridge...\n", o.name, o.nodes)
	r, err := lab.Start(ctx, lab.Config{Name: o.name, Nodes: o.nodes, NodePortRange: o.portRange, ProxyMode: mode})
	if err != nil {
		return err
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

	for _, f := range files {
		for _, res := range r.Apply(f.name, f.data) {
			if res.Err != nil {
				fmt.Fprintln(errOut, res.String())
			} else {
				fmt.Fprintln(out, res.String())
			}
		}
	}
	backlog := waitReady(ctx, &w, r, o.readyWithin)
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
func waitReady(ctx context.Context, w **lab.Watcher, r *lab.Lab, within time.Duration) []lab.Event {
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
	for {
		if state.Seq >= target && allReady(state) {
			return backlog
		}
		select {
		case <-ctx.Done():
			return backlog
		case <-timeout.C:
			return backlog
		case ev, ok := <-(*w).Events:
			if !ok {
				*w = r.Watch()
				state = (*w).State.Clone()
				continue
			}
			state.Apply(ev)
			backlog = append(backlog, ev)
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
		fmt.Fprintln(w, "\nReach the NodePorts from the outside client (in another terminal, as root):")
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	}
}
