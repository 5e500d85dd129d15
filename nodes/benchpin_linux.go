//go:build linux

package nodes

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinTasks restricts every thread of each process in pids (0: this one)
// to cpu, and returns how to put each back. It is the latency figure's
// pinning applied to the forwarder: the client's and the server's threads
// share one CPU so that a round trip hands that CPU from one to the other;
// a userspace forwarder (nplab's proxy threads, haproxy, socat) on the
// other CPU would instead wake an idle CPU twice per round trip, where the
// kernel's DNAT runs on the CPU that sends. So every thread of the path
// shares the CPU: all of this process's (client, pod server and proxy run
// in it) and a peer's.
//
// Threads started while pinned inherit the pin (clone keeps the
// affinity); restore gives them the mask their process's first thread
// had. A thread that ends meanwhile is skipped.
// Equivalent to: taskset -a -p -c <cpu> <pid>
func pinTasks(cpu int, pids ...int) (restore func(), err error) {
	var all []pinnedTask
	orig := map[string]unix.CPUSet{} // the first thread's mask, per process
	var one unix.CPUSet
	one.Set(cpu)
	restore = func() {
		for _, s := range all {
			unix.SchedSetaffinity(s.tid, &s.mask)
		}
		// Threads started while pinned get their process's mask.
		for path, mask := range orig {
			tids, _ := taskIDs(path)
			for _, tid := range tids {
				if !knownTask(all, tid) {
					unix.SchedSetaffinity(tid, &mask)
				}
			}
		}
	}
	for _, pid := range pids {
		path := "/proc/self/task"
		if pid != 0 {
			path = "/proc/" + strconv.Itoa(pid) + "/task"
		}
		// Again until no new thread shows up: one may start while the
		// others are being pinned, from a thread not yet pinned.
		for round := 0; ; round++ {
			tids, err := taskIDs(path)
			if err != nil {
				restore()
				return nil, err
			}
			added := false
			for _, tid := range tids {
				if knownTask(all, tid) {
					continue
				}
				var mask unix.CPUSet
				if err := unix.SchedGetaffinity(tid, &mask); err != nil {
					continue // ended meanwhile
				}
				if err := unix.SchedSetaffinity(tid, &one); err != nil {
					if errors.Is(err, unix.ESRCH) {
						continue
					}
					restore()
					return nil, fmt.Errorf("pin thread %d of %s to CPU %d: %w", tid, path, cpu, err)
				}
				if _, ok := orig[path]; !ok {
					orig[path] = mask
				}
				all = append(all, pinnedTask{tid, mask})
				added = true
			}
			if !added || round == 10 {
				break
			}
		}
	}
	return restore, nil
}

// pinnedTask is a thread pinTasks pinned, and its mask before.
type pinnedTask struct {
	tid  int
	mask unix.CPUSet
}

func knownTask(all []pinnedTask, tid int) bool {
	for _, s := range all {
		if s.tid == tid {
			return true
		}
	}
	return false
}

// taskIDs lists the thread ids in a /proc/<pid>/task directory.
func taskIDs(path string) ([]int, error) {
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
