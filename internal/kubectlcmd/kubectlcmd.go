// Package kubectlcmd is kubectl itself — the command of k8s.io/kubectl,
// as k3s ships `k3s kubectl` — for `nplab kubectl`. Only the nplab
// command imports it: kubectl adds minutes to a cold build and tens of
// megabytes to the binary, and lab, nodes, netsim and their tests must not
// pay for it.
//
// Nothing here is nplab's: what kubectl prints, errors included, is
// kubectl's own, byte for byte, from the API a running lab serves
// (package lab/apiserver).
//
// `nplab validate` does not run this kubectl against an in-process server
// (issue 10 asked to consider it): it keeps package lab/kubectl's
// printing. That package cannot go — `nplab up`'s tables, the terminal
// UI, the scenarios and the endpoint's server-side table cells use it,
// and lab, tui and scenarios must not link kubectl — so validate through
// kubectl would not leave one printing path, only add a second use of
// kubectl. The two paths print the same bytes for the docs' manifests and
// the default lab (the root package's TestValidateAgreesWithKubectl),
// except the same object twice in one file, which validate and up report
// as kubectl create's AlreadyExists on purpose (package lab's doc) where
// kubectl apply patches the first copy.
package kubectlcmd

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// Options are one kubectl run's.
type Options struct {
	// Args are kubectl's arguments ("get", "svc", "-o", "wide").
	Args []string
	// Kubeconfig is the default --kubeconfig; a --kubeconfig in Args wins.
	Kubeconfig string
	In         io.Reader
	Out        io.Writer
	ErrOut     io.Writer
}

// fatal is kubectl's fatal-error path (cmdutil.CheckErr) turned into a
// panic that Run recovers, so kubectl can run inside a program (and a
// test) without os.Exit.
type fatal struct {
	msg  string
	code int
}

// mu serialises runs: kubectl's fatal-error handler is a global.
var mu sync.Mutex

// Run runs kubectl with opts and returns its exit status, as the kubectl
// binary would exit with it.
func Run(opts Options) (code int) {
	mu.Lock()
	defer mu.Unlock()
	cmdutil.BehaviorOnFatal(func(msg string, code int) { panic(fatal{msg, code}) })
	defer cmdutil.DefaultBehaviorOnFatal()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			if f.msg != "" {
				if !strings.HasSuffix(f.msg, "\n") {
					f.msg += "\n"
				}
				fmt.Fprint(opts.ErrOut, f.msg)
			}
			code = f.code
		}
	}()
	flags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50.0)
	if opts.Kubeconfig != "" {
		flags.KubeConfig = &opts.Kubeconfig
	}
	c := cmd.NewKubectlCommand(cmd.KubectlOptions{
		Arguments:   append([]string{"kubectl"}, opts.Args...),
		ConfigFlags: flags,
		IOStreams:   genericiooptions.IOStreams{In: opts.In, Out: opts.Out, ErrOut: opts.ErrOut},
	})
	c.SetArgs(opts.Args)
	c.SetIn(opts.In)
	c.SetOut(opts.Out)
	c.SetErr(opts.ErrOut)
	if err := cli.RunNoErrOutput(c); err != nil {
		cmdutil.CheckErr(err)
		return 1
	}
	return 0
}
