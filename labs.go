package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/nplab/nplab/internal/userns"
	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/apiserver"
)

// A running lab's record, /run/nplab/<lab>.up.json, is written by `nplab
// up` once the lab is ready and removed when it stops: `nplab ls` lists
// them, `nplab down` signals their process, `nplab up -d` waits for its
// child's. A rootless lab's records are in the user's run directory,
// $XDG_RUNTIME_DIR/nplab (see runDir).

// runDir is where the running labs' records, kubeconfigs and logs are:
// /run/nplab as root; a rootless user's own directory otherwise (outside
// the lab's private /run, so the user's shell sees them).
// (A variable, so a test can point it at a directory of its own: other
// labs may run on the machine.)
var runDir = userns.RunDir

func init() { subcommands = append(subcommands, newLsCmd, newDownCmd) }

type upRecord struct {
	Name       string    `json:"name"`
	PID        int       `json:"pid"`
	Nodes      int       `json:"nodes"`
	Started    time.Time `json:"started"`
	Kubeconfig string    `json:"kubeconfig"`
	Server     string    `json:"server"`
	// Rootless: the lab runs in a user namespace (its namespaces are
	// not in the host's `ip netns list`; `nplab exec` enters them).
	Rootless bool `json:"rootless,omitempty"`
	// Launcher is the process that started a rootless lab's process in
	// its user namespace (the one `nplab up -d` started).
	Launcher int `json:"launcher,omitempty"`
}

// mode is how the lab runs, for `nplab ls`.
func (r upRecord) mode() string {
	if r.Rootless {
		return "rootless"
	}
	return "root"
}

func recordPath(name string) string { return filepath.Join(runDir(), name+".up.json") }

func writeRecord(rec upRecord) error {
	if userns.Inside() {
		rec.Rootless, rec.Launcher = true, os.Getppid()
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := recordPath(rec.Name) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, recordPath(rec.Name))
}

func readRecord(name string) (upRecord, error) {
	var rec upRecord
	b, err := os.ReadFile(recordPath(name))
	if err != nil {
		return rec, err
	}
	return rec, json.Unmarshal(b, &rec)
}

// runningLabs are the labs with a record whose process is alive, by name.
func runningLabs() ([]upRecord, error) {
	paths, err := filepath.Glob(filepath.Join(runDir(), "*.up.json"))
	if err != nil {
		return nil, err
	}
	var out []upRecord
	for _, p := range paths {
		rec, err := readRecord(strings.TrimSuffix(filepath.Base(p), ".up.json"))
		if err != nil || !alive(rec.PID) {
			continue
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func newLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the running labs, and the stopped ones whose objects are kept for up --resume",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			labs, err := runningLabs()
			if err != nil {
				return err
			}
			printLabs(cmd.OutOrStdout(), labs, time.Now())
			// Labs stopped with their objects kept (up's persistence):
			// nothing else would tell a student they can come back.
			stored, err := lab.StoredLabs()
			if err != nil {
				return err
			}
			printStopped(cmd.OutOrStdout(), labs, stored)
			return nil
		},
	}
}

// printStopped names the stored labs that are not running, and how to
// resume or forget one.
func printStopped(w io.Writer, running []upRecord, stored []string) {
	var stopped []string
	for _, name := range stored {
		if !slices.ContainsFunc(running, func(r upRecord) bool { return r.Name == name }) {
			stopped = append(stopped, name)
		}
	}
	if len(stopped) == 0 {
		return
	}
	fmt.Fprintf(w, "\nStopped, objects kept: %s\n", strings.Join(stopped, ", "))
	fmt.Fprintln(w, "(nplab up --name NAME --resume brings one back; nplab clean --name NAME --forget deletes its objects)")
}

func printLabs(w io.Writer, labs []upRecord, now time.Time) {
	if len(labs) == 0 {
		fmt.Fprintln(w, "No labs are running.")
		return
	}
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNODES\tPID\tMODE\tAGE\tKUBECONFIG")
	for _, l := range labs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", l.Name, l.Nodes, l.PID, l.mode(), duration.HumanDuration(now.Sub(l.Started)), l.Kubeconfig)
	}
	_ = tw.Flush()
}

func newDownCmd() *cobra.Command {
	var name string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down --name LAB",
		Short: "Stop a running lab, as Ctrl-C does (its namespaces are removed; its objects are kept for up --resume)",
		Args:  nameArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("name the lab to stop with --name LAB (nplab ls lists them)")
			}
			rec, err := readRecord(name)
			if err != nil || !alive(rec.PID) {
				return fmt.Errorf("lab %q is not running (nplab ls lists the running labs; nplab clean --name %s removes what a killed one left)", name, name)
			}
			if err := interrupt(rec.PID); err != nil {
				return fmt.Errorf("stopping lab %q (process %d): %w", name, rec.PID, err)
			}
			deadline := time.Now().Add(timeout)
			for alive(rec.PID) {
				if time.Now().After(deadline) {
					return fmt.Errorf("lab %q (process %d) did not stop within %s", name, rec.PID, timeout)
				}
				time.Sleep(50 * time.Millisecond)
			}
			_ = os.Remove(filepath.Join(runDir(), name+".log")) // up -d's
			fmt.Fprintf(cmd.OutOrStdout(), "Lab %q removed.\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the lab to stop")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for it to stop")
	return cmd
}

// serveAPI starts lab r's Kubernetes API endpoint; stop it with the
// returned function, which removes the kubeconfig and the lab's record.
func serveAPI(r *lab.Lab) (*apiserver.Endpoint, func(), error) {
	e, err := apiserver.Serve(r, runDir())
	if err != nil {
		return nil, nil, err
	}
	record := recordPath(r.Name())
	return e, func() {
		_ = os.Remove(record)
		_ = e.Close()
	}, nil
}

// printKubeconfigHint prints how to use kubectl against the lab, and a
// first `nplab kubectl get svc`.
func printKubeconfigHint(w io.Writer, e *apiserver.Endpoint, getSvc bool) {
	who := " (as root)"
	if userns.Rootless() {
		who = ""
	}
	fmt.Fprintf(w, "\nThe lab serves the Kubernetes API (%s). kubectl, in another terminal%s:\n", e.URL, who)
	fmt.Fprintf(w, "  export KUBECONFIG=%s\n", e.Kubeconfig)
	fmt.Fprintln(w, "  nplab kubectl get svc")
	if getSvc {
		fmt.Fprintln(w, "\n$ nplab kubectl get svc")
		runKubectl(w, e.Kubeconfig, "get", "svc")
	}
}

// detachedEnv marks the background process of `nplab up -d`.
const detachedEnv = "NPLAB_DETACHED"

// runDetached is `nplab up -d`: the same command without -d, in a new
// session in the background, its output in /run/nplab/<lab>.log; it
// returns once the child has recorded the lab as ready (or has failed).
func runDetached(cmd *cobra.Command, o *upOptions) error {
	out := cmd.OutOrStdout()
	if rec, err := readRecord(o.name); err == nil && alive(rec.PID) {
		return fmt.Errorf("lab %q is already running (process %d); stop it with: nplab down --name %s", o.name, rec.PID, o.name)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var args []string
	for _, a := range os.Args[1:] {
		if a == "-d" || a == "--detach" || a == "--detach=true" {
			continue
		}
		args = append(args, a)
	}
	if len(args) == 0 || args[0] != "up" {
		args = append([]string{"up"}, args...)
	}
	if userns.Rootless() {
		if _, err := userns.MakeRunDir(); err != nil {
			return err
		}
	} else if err := os.MkdirAll(runDir(), 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(runDir(), o.name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	child := exec.Command(exe, args...)
	child.Env = append(os.Environ(), detachedEnv+"=1")
	child.Stdout, child.Stderr = logf, logf
	child.SysProcAttr = newSession()
	if err := child.Start(); err != nil {
		return err
	}
	fmt.Fprintf(out, "Starting lab %q in the background (process %d, log %s)...\n", o.name, child.Process.Pid, logPath)
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	deadline := time.After(o.readyWithin + 2*time.Minute)
	for {
		if rec, err := readRecord(o.name); err == nil && (rec.PID == child.Process.Pid || rec.Launcher == child.Process.Pid) {
			fmt.Fprintf(out, "Lab %q is ready: %d nodes. Stop it with: nplab down --name %s\n", o.name, rec.Nodes, o.name)
			fmt.Fprintf(out, "export KUBECONFIG=%s\n", rec.Kubeconfig)
			return nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("lab %q did not start (%v):\n%s", o.name, err, b)
		case <-deadline:
			_ = interrupt(child.Process.Pid)
			return fmt.Errorf("lab %q was not ready in time (see %s); stopping it", o.name, logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// removeLabFiles removes what a killed lab's API endpoint left under
// /run/nplab (kubeconfig, record, up -d's log): `nplab clean` calls it.
func removeLabFiles(name string) {
	for _, ext := range []string{".kubeconfig", ".up.json", ".log"} {
		_ = os.Remove(filepath.Join(runDir(), name+ext))
	}
}

// startServed is lab.Start plus what `nplab up` adds for kubectl: the
// Kubernetes API endpoint, its kubeconfig and the record `nplab kubectl`
// and `nplab ls` find the lab by. The endpoint and the record go when the
// lab closes. The terminal UI and its lessons start their labs with it, so
// `nplab kubectl` in another terminal drives the lab on the screen.
func startServed(ctx context.Context, cfg lab.Config) (*lab.Lab, error) {
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The lab works without kubectl: the window's status line says why
	// kubectl cannot reach it (kubectlHint).
	e, stop, err := serveAPI(l)
	if err == nil {
		err = writeRecord(upRecord{Name: l.Name(), PID: os.Getpid(), Nodes: len(l.Nodes()), Started: time.Now(),
			Kubeconfig: e.Kubeconfig, Server: e.URL})
		if err != nil {
			stop()
			stop = nil
		}
	}
	if err != nil {
		apiErrs.Store(l, err)
	}
	w := l.Watch()
	servedLabs.Add(1)
	go func() {
		defer servedLabs.Done()
		for {
			for range w.Events {
			}
			if !errors.Is(w.Err(), lab.ErrFellBehind) {
				break
			}
			w = l.Watch()
		}
		if stop != nil {
			stop()
		}
		apiErrs.Delete(l)
	}()
	return l, nil
}

// servedLabs counts the labs startServed serves whose endpoint has not
// yet gone; after closing them, waitServed waits until it has, so the
// process does not exit with their kubeconfig and record left behind.
var servedLabs sync.WaitGroup

// waitServed waits (at most a few seconds) for the API endpoints of the
// labs startServed started, and since closed, to be removed.
func waitServed() {
	done := make(chan struct{})
	go func() { servedLabs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// apiErrs holds, for each lab startServed started without serving its
// API, why (dropped when the lab closes).
var apiErrs sync.Map // *lab.Lab → error

// kubectlHint is the first status line of a lab's window: how to use
// kubectl on it, or why kubectl cannot reach it.
func kubectlHint(l *lab.Lab) string {
	if err, ok := apiErrs.Load(l); ok {
		return fmt.Sprintf("kubectl cannot reach this lab (its API is not served: %v); the lab works without it", err)
	}
	return fmt.Sprintf("kubectl in another terminal: nplab kubectl get svc (or export KUBECONFIG=%s)", kubeconfigPath(l.Name()))
}

// kubeconfigPath is where a running lab's kubeconfig is.
func kubeconfigPath(name string) string { return apiserver.KubeconfigPath(runDir(), name) }
