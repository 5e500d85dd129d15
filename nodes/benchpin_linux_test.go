//go:build linux

package nodes

import (
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// pinTasks pins every thread of this process and of another one to one
// CPU, threads started meanwhile too, and puts each back.
func TestPinTasks(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		t.Skipf("this process may use %d CPU: pinning changes nothing", all.Count())
	}
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Skipf("no sleep program: %v", err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	cpu := benchCPU()
	restore, err := pinTasks(cpu, 0, sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// A thread started while pinned.
	started := make(chan struct{})
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		close(started)
		<-release
	}()
	<-started
	check := func(want func(unix.CPUSet) bool, what string) {
		t.Helper()
		for _, path := range []string{"/proc/self/task", "/proc/" + strconv.Itoa(sleep.Process.Pid) + "/task"} {
			tids, err := taskIDs(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, tid := range tids {
				var set unix.CPUSet
				if unix.SchedGetaffinity(tid, &set) != nil {
					continue // ended
				}
				if !want(set) {
					t.Errorf("thread %d of %s: %d CPUs allowed, want %s", tid, path, set.Count(), what)
				}
			}
		}
	}
	check(func(s unix.CPUSet) bool { return s.Count() == 1 && s.IsSet(cpu) }, "only the pinned one")
	restore()
	close(release)
	check(func(s unix.CPUSet) bool { return s == all }, "all of them again")
}
