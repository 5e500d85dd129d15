//go:build linux

package netsim

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// threadNS is the inode of the calling thread's network namespace.
func threadNS(t *testing.T) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestDoInSwitchesBack checks doIn, which every socket opened inside a
// host goes through: f runs in the host's namespace, and afterwards no
// thread of the process is left in it (checked on many threads, by many
// goroutines at once, each locking a thread after the calls).
func TestDoInSwitchesBack(t *testing.T) {
	n := newLab(t)
	h, err := n.AddHost("a")
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	origin := threadNS(t)
	runtime.UnlockOSThread()

	var inside uint64
	if err := h.(*host).do(func() error { inside = threadNS(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside == origin {
		t.Fatalf("f ran in the process's own namespace (inode %d)", origin)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				_ = h.(*host).do(func() error { return nil })
			}
		})
	}
	wg.Wait()
	var mu sync.Mutex
	seen := map[uint64]int{}
	for range 32 {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ino := threadNS(t)
			mu.Lock()
			seen[ino]++
			mu.Unlock()
			runtime.Gosched()
		})
	}
	wg.Wait()
	if len(seen) != 1 || seen[origin] == 0 {
		t.Errorf("after 400 calls, threads are in namespaces %v; want all in the origin %d (the host's is %d)", seen, origin, inside)
	}

	// A host that is gone: an error, and nothing switched.
	if err := n.RemoveHost("a"); err != nil {
		t.Fatal(err)
	}
	if err := h.(*host).do(func() error { return nil }); err == nil {
		t.Errorf("do in a removed host: no error")
	}
}
