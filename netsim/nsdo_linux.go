//go:build linux

package netsim

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// originNS is the network namespace the process started in, opened once:
// doIn switches each thread back to it. CNI's ns.Do opens the thread's
// current namespace twice per call (/proc/<pid>/task/<tid>/ns/net, then
// a statfs to check it, then a close, for the caller's thread and for the
// locked one), about eight syscalls that a proxy pays for every
// connection it dials: a quarter of the CPU of BenchmarkForward/newconn.
//
// It is opened during package initialization, on the main thread, before
// any code can have switched a thread: every switch in this package
// (doIn, ns.Do) puts its thread back, or lets it die.
var originNS, originErr = openOriginNS()

func openOriginNS() (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// doIn runs f on a fresh goroutine locked to its OS thread and switched
// into target's namespace, as CNI's ns.Do does, and switches the thread
// back to originNS afterwards. If it cannot switch back, the thread stays
// locked and the runtime ends it with the goroutine, so no goroutine ever
// runs in a namespace it did not ask for. Where originNS cannot be opened
// it is ns.Do.
// Equivalent to: setns(<target>, CLONE_NEWNET); f(); setns(<origin>, CLONE_NEWNET)
func doIn(target ns.NetNS, f func() error) error {
	if originErr != nil {
		return target.Do(func(ns.NetNS) error { return f() })
	}
	var wg sync.WaitGroup
	var ferr error
	wg.Go(func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			// Not switched: the thread is as it was.
			runtime.UnlockOSThread()
			ferr = fmt.Errorf("error switching to ns %v: %w", target.Path(), err)
			return
		}
		ferr = f()
		if err := unix.Setns(originNS, unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
	})
	wg.Wait()
	return ferr
}
