package main

import (
	"io"
	"strings"

	"github.com/nplab/nplab/internal/kubectlcmd"
)

// runKubectl runs the embedded kubectl with kubeconfig, its output and
// errors to w.
func runKubectl(w io.Writer, kubeconfig string, args ...string) int {
	return kubectlcmd.Run(kubectlcmd.Options{Args: args, Kubeconfig: kubeconfig, In: strings.NewReader(""), Out: w, ErrOut: w})
}
