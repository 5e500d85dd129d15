package main

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/lab/kubectl"
	"github.com/nplab/nplab/lab/plane"
)

func init() { subcommands = append(subcommands, newValidateCmd) }

// validateOptions are the flags of `nplab validate`.
type validateOptions struct {
	files     []string
	portRange string
	nodes     int
	seed      uint64
}

func newValidateCmd() *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate -f FILE [-f FILE...]",
		Short: "Apply manifests to an empty control plane and print what kubectl would",
		Long: `validate applies the files, in order, to an empty emulated cluster (no root
needed, nothing is started) and prints for each object what
"kubectl apply -f FILE" would print: "service/web created", "service/web
configured" when a later file changes an earlier object, or the error exactly
as a real cluster reports it. It goes on past a rejected object, as kubectl
does, then prints "kubectl get services,pods -o wide".

The tables are what a real cluster shows right after the apply: the
Deployment controller has synced each Deployment once. As kube's ReplicaSet
controller does, one sync creates at most 500 pods (its burstReplicas), in
slow-start batches of 1, 2, 4, ... pods; those that fit on the nodes (110
pods each, the kubelet's default maxPods) are Running, the rest Pending. So
"replicas: 30080" (a nodePort typed into replicas) prints 500 pods, not
30080, and answers at once; the lab's controllers would go on creating the
others 500 at a time.

Exit status 1 if anything was rejected.`,
		Example: `  nplab validate -f web.yaml
  nplab validate -f frontend.yaml -f backend.yaml --service-node-port-range 30000-30100
  nplab validate -f frontend.yaml,backend.yaml --seed 7    # the nodePorts and ClusterIPs "up --seed 7" gives
  nplab validate -f manifests/                              # a directory's .yaml, .yml and .json files
  cat web.yaml | nplab validate -f -`,
		Args: noFileArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkNodes(o.nodes); err != nil {
				return err
			}
			return runValidate(cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.InOrStdin(), o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.files, "filename", "f", nil, filenameUsage+"; applied in order")
	f.StringVar(&o.portRange, "service-node-port-range", "30000-32767", "the API server's NodePort range")
	f.IntVar(&o.nodes, "nodes", 3, fmt.Sprintf("number of nodes (1 to %d)", plane.MaxNodes))
	f.Uint64Var(&o.seed, "seed", 0, "seed the random allocations (clusterIPs, nodePorts, pod names), as up's --seed; 0 means random")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func runValidate(stdout, stderr io.Writer, stdin io.Reader, o *validateOptions) error {
	// One instant for the whole run: validate applies and prints at once,
	// so every AGE is 0s however slow the machine (a fresh cluster's
	// kubernetes Service included).
	start := time.Now()
	cfg := lab.Config{Name: "validate", Nodes: o.nodes, NodePortRange: o.portRange,
		Now: func() time.Time { return start }}
	if o.seed != 0 {
		cfg.Rand = seededRand(o.seed)
	}
	l, err := lab.New(cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	// The controllers run by hand: one sync per Deployment after the
	// apply, whatever the machine's speed (see the help text).
	l.PauseControllers()

	// kubectl reads every file before it sends anything; a missing one
	// stops it.
	files, err := readManifests(o.files, stdin)
	if err != nil {
		return err
	}

	var errs []kubectl.Sourced
	applied := 0
	// One kubectl run over all the files: what kubectl finds reading them
	// (syntax errors, unknown kinds) comes before anything the server says.
	for _, r := range l.ApplyFiles(files...) {
		if r.Err != nil {
			errs = append(errs, r.Sourced())
			continue
		}
		fmt.Fprintln(stdout, r.String())
		applied++
	}
	// What `kubectl get pods` shows right after the apply: each
	// Deployment's first burst of pods.
	l.SyncOnce()
	// The errors at the end, one alone in kubectl's short form, several
	// each on its own line.
	if len(errs) > 0 {
		fmt.Fprintln(stderr, kubectl.FormatErrors(errs))
	}

	var tables bytes.Buffer
	printed, err := kubectl.GetServicesAndPods(&tables, l.Services(), l.Pods(), start, true)
	if err != nil {
		return err
	}
	if printed {
		if applied > 0 {
			fmt.Fprintln(stdout)
		}
		if _, err := tables.WriteTo(stdout); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stderr, "No resources found in %s namespace.\n", lab.Namespace)
	}
	if len(errs) > 0 {
		return exitError{1}
	}
	return nil
}
