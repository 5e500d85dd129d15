package scenarios

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// UnsupportedError is a step (or a whole scenario) this machine cannot
// run: `nplab run` exits 3 with it.
type UnsupportedError struct {
	Need Need
	// Step is the 1-based step that needs it; 0 for the whole scenario.
	Step   int
	Reason string // "kernel lacks SCTP: protocol not supported (module sctp)"
}

func (e *UnsupportedError) Error() string {
	where := "this scenario"
	if e.Step > 0 {
		where = fmt.Sprintf("step %d", e.Step)
	}
	need := string(e.Need)
	if e.Need == NeedDataPlane {
		need = "a lab of real namespaces"
	}
	return fmt.Sprintf("this machine cannot run %s: it needs %s: %s", where, need, e.Reason)
}

// Probe reports why this machine lacks a need (nil: it has it). It is
// what Options.Probe defaults to:
//   - dataplane: root (network namespaces, veth, a bridge);
//   - sctp: the kernel can open an SCTP socket (module sctp);
//   - netem: the sch_netem qdisc module is loaded or can be loaded.
func Probe(n Need) error {
	switch n {
	case NeedDataPlane:
		if os.Geteuid() != 0 {
			return errors.New("real network namespaces need root (run it with sudo)")
		}
		return nil
	case NeedSCTP:
		return sctpError()
	case NeedNetem:
		return netemError()
	}
	return fmt.Errorf("unknown need %q", n)
}

// netemError finds the sch_netem module: loaded (/sys/module), built in
// or installed (/lib/modules/RELEASE/modules.builtin, modules.dep).
func netemError() error {
	if _, err := os.Stat("/sys/module/sch_netem"); err == nil {
		return nil
	}
	rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return fmt.Errorf("netem qdisc unavailable: cannot read the kernel release: %v (module sch_netem)", err)
	}
	dir := "/lib/modules/" + strings.TrimSpace(string(rel))
	for _, f := range []string{"modules.builtin", "modules.dep"} {
		if b, err := os.ReadFile(dir + "/" + f); err == nil && strings.Contains(string(b), "/sch_netem.ko") {
			return nil
		}
	}
	return fmt.Errorf("netem qdisc unavailable: kernel %s has no module sch_netem (not loaded, not in %s)", strings.TrimSpace(string(rel)), dir)
}
