//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Hosts lists the hosts of lab (nodes, pods, the client, the bridge's
// host) whose namespaces its state file records and that still exist,
// sorted by name. A lab with no state file is an error wrapping
// os.ErrNotExist.
// Equivalent to: ip netns list | grep ^nplab-<lab>-
func Hosts(lab string) ([]string, error) {
	if err := ValidateLabName(lab); err != nil {
		return nil, err
	}
	st, err := readState(lab)
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", lab, err)
	}
	var hosts []string
	for _, ns := range st.Namespaces {
		host, ok := strings.CutPrefix(ns, NamespaceName(lab, ""))
		if !ok {
			continue
		}
		if _, err := os.Lstat(filepath.Join(netnsDir, ns)); err == nil {
			hosts = append(hosts, host)
		}
	}
	sort.Strings(hosts)
	return hosts, nil
}

// Exec replaces this process with argv run in the network namespace of
// host in lab, as `ip netns exec` does: the program is looked up in PATH
// first, then the calling thread enters the namespace, gets a mount
// namespace of its own with /sys remounted (so /sys/class/net shows the
// host's interfaces; skipped where not allowed) and, when hostname is not
// "", a UTS namespace of its own named hostname (as a pod's container is
// named after its pod; skipped where not allowed), and executes it,
// keeping stdin, stdout, stderr, the terminal and the environment. On
// success it does not return. An unknown host is an error listing the
// lab's hosts.
//
// Equivalent to: ip netns exec nplab-<lab>-<host> unshare --uts sh -c 'hostname <hostname>; exec argv...'
func Exec(lab, host, hostname string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command to run")
	}
	hosts, err := Hosts(lab)
	if err != nil {
		return err
	}
	found := false
	for _, h := range hosts {
		found = found || h == host
	}
	if !found {
		return fmt.Errorf("lab %q has no host %q; its hosts are: %s", lab, host, strings.Join(hosts, ", "))
	}
	prog, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	path := filepath.Join(netnsDir, NamespaceName(lab, host))
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("host %q of lab %q: %w", host, lab, err)
	}
	// This thread switches and then becomes the new program: it never
	// runs Go code of this process in the namespace.
	runtime.LockOSThread()
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		unix.Close(fd)
		return fmt.Errorf("enter namespace %s: %w", path, err)
	}
	unix.Close(fd)
	if unix.Unshare(unix.CLONE_NEWNS) == nil &&
		unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, "") == nil {
		_ = unix.Unmount("/sys", unix.MNT_DETACH)
		_ = unix.Mount(NamespaceName(lab, host), "/sys", "sysfs", 0, "")
	}
	if hostname != "" && unix.Unshare(unix.CLONE_NEWUTS) == nil {
		_ = unix.Sethostname([]byte(hostname[:min(len(hostname), 64)]))
	}
	err = syscall.Exec(prog, argv, os.Environ())
	return fmt.Errorf("run %s in host %q of lab %q: %w", argv[0], host, lab, err)
}
