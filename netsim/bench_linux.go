//go:build linux

package netsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"golang.org/x/sys/unix"
)

// This file holds the namespace-level primitives `nplab bench` needs
// beyond a lab's own: running code or a program inside a host, and
// deleting a route it added for the bench.

// Run runs f on a fresh OS thread locked inside h's namespace (CNI's
// ns.Do): every socket f creates, with the net package or with plain
// system calls, belongs to h, and f may block that thread as long as it
// runs. The caller's thread never changes namespace. f must not start
// goroutines that create sockets: they run on other threads.
// Equivalent to: ip netns exec <ns> <f>
func Run(h Host, f func() error) error {
	lh, ok := h.(*host)
	if !ok || lh == nil {
		return fmt.Errorf("run in host %v: %w (a %T has no namespace)", h, ErrNotSupported, h)
	}
	return lh.do(f)
}

// Command returns a command that runs program name with args inside h's
// namespace, as `ip netns exec <ns> name args...`. The program dies with
// this process (PR_SET_PDEATHSIG), so a killed lab leaves no program
// behind that would keep its namespace alive, and it leads a process group
// of its own, so that the caller can end it with every process it forked
// (socat's fork option):
//
//	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
func Command(ctx context.Context, h Host, name string, args ...string) (*exec.Cmd, error) {
	if h == nil {
		return nil, errors.New("command: no host")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("ip netns exec %s %s: %w (apt-get install iproute2)", h.Namespace(), name, err)
	}
	cmd := exec.CommandContext(ctx, ip, append([]string{"netns", "exec", h.Namespace(), name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.WaitDelay = time.Second // a forked child holding stdout must not hang Wait
	return cmd, nil
}

// DelRoute deletes the route to r.Dst in r.Table that AddRoute added; a
// route that is not there is success.
// Equivalent to: ip -n <ns> route del <Dst> [table <Table>]
func DelRoute(h Host, r Route) error {
	lh, ok := h.(*host)
	if !ok || lh == nil {
		return fmt.Errorf("delete route in host %v: %w", h, ErrNotSupported)
	}
	err := lh.withNetlink(func(nlh netlinksafe.Handle) error {
		nr, err := lh.netlinkRoute(nlh, r)
		if err != nil {
			return err
		}
		if err := nlh.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			return err
		}
		lh.routes = slices.DeleteFunc(lh.routes, func(o Route) bool { return o.Dst == r.Dst && o.Table == r.Table })
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete route %s in host %q: %w", describeRoute(r), lh.name, err)
	}
	return nil
}

// Namespaces lists the named namespaces of lab that exist now: the
// entries "nplab-<lab>-*" of /run/netns, as a fresh `ip netns list` shows
// them (not the lab's state file). Empty once the lab is removed.
// Equivalent to: ip netns list | grep '^nplab-<lab>-'
func Namespaces(lab string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	prefix := NamespaceName(lab, "")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, filepath.Base(e.Name()))
		}
	}
	return out, nil
}
