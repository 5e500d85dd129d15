//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` looks for named namespaces. Every path of a
// namespace file is made here, by namespacePath.
var netnsDir = "/run/netns"

// namespacePath is the file that names namespace nsName: /run/netns/<nsName>.
func namespacePath(nsName string) string { return filepath.Join(netnsDir, nsName) }

// nsHandles are what a host holds on its namespace: the namespace itself
// (its file descriptor keeps it alive), a netlink handle and a raw
// netlink socket in it.
type nsHandles struct {
	ns  ns.NetNS
	nl  netlinksafe.Handle
	raw *nl.NetlinkSocket
}

func (hs nsHandles) close() {
	if hs.raw != nil {
		hs.raw.Close()
	}
	if hs.nl.Handle != nil {
		hs.nl.Close()
	}
	if hs.ns != nil {
		hs.ns.Close()
	}
}

// createNamespace makes a new network namespace with lo up and names it
// nsName, without switching the caller's thread: it is unshared on a
// throw-away locked thread that is never unlocked (so the Go runtime
// discards it), which opens the handles on it from the inside (netlink
// sockets belong to the namespace they are made in: no setns needed).
// The returned handles keep it alive.
//
// The name is a symbolic link, /run/netns/<nsName> → /proc/<pid>/fd/<fd>,
// to the handle's file descriptor, not the bind mount `ip netns add` makes:
// `ip netns list`, `ip netns exec` and `ip -n` open the name and get the
// namespace all the same, but a symlink costs one file where a mount grows
// the machine's mount table (every later mount and unmount, and every read
// of /proc/*/mountinfo, got slower with each namespace of a lab). The
// namespace lives exactly as long as the handles (and sockets made in it):
// when the lab's process ends, however it ends, the kernel frees its
// namespaces and their links, and only dangling names are left for Clean.
//
// Equivalent to: ip netns add <nsName>; ip -n <nsName> link set lo up (without the bind mount)
func createNamespace(nsName string) (nsHandles, error) {
	path := namespacePath(nsName)
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return nsHandles{}, err
	}
	type result struct {
		hs  nsHandles
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		var hs nsHandles
		err := func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare network namespace: %w", err)
			}
			var err error
			if hs.ns, err = ns.GetNS(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())); err != nil {
				return err
			}
			if hs.nl, err = netlinksafe.NewHandle(unix.NETLINK_ROUTE); err != nil {
				return fmt.Errorf("open netlink in namespace %q: %w", nsName, err)
			}
			if hs.raw, err = nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE); err != nil {
				return fmt.Errorf("open netlink in namespace %q: %w", nsName, err)
			}
			// A new namespace has lo, down, at index 1: no need to look it up.
			lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}
			if err := hs.nl.LinkSetUp(lo); err != nil {
				return fmt.Errorf("set lo up: %w", err)
			}
			return nil
		}()
		if err != nil {
			hs.close()
		}
		done <- result{hs, err}
	}()
	r := <-done
	if r.err != nil {
		return nsHandles{}, r.err
	}
	target := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(r.hs.ns.Fd()))
	if err := os.Symlink(target, path); err != nil {
		r.hs.close()
		if errors.Is(err, os.ErrExist) {
			return nsHandles{}, fmt.Errorf("name the namespace: %s already exists", path)
		}
		return nsHandles{}, fmt.Errorf("name the namespace: %w", err)
	}
	return r.hs, nil
}

// removeNamespace removes the name of a namespace; a name that is already
// gone is success. The namespace itself goes when the last handle on it is
// closed (the kernel then frees its links in the background, in one
// batch). A name made by `ip netns add` (or an older nplab), a bind mount,
// is unmounted first, as `ip netns del` does.
func removeNamespace(nsName string) error {
	path := namespacePath(nsName)
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// namespaceExists reports whether nsName has a name under /run/netns
// (a dangling one left by a killed lab counts: Clean removes it).
func namespaceExists(nsName string) bool {
	_, err := os.Lstat(namespacePath(nsName))
	return err == nil
}
