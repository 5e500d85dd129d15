package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/nplab/nplab/internal/userns"
)

// profileEnv, set to a file name, makes nplab write a CPU profile of its
// run there (go tool pprof reads it): how `nplab bench` and a lab's
// start-up were profiled. Only the process that builds the lab writes it
// (in rootless mode, the one inside the user namespace).
const profileEnv = "NPLAB_CPUPROFILE"

// startProfile starts the CPU profile profileEnv asks for and returns how
// to stop it.
func startProfile() (stop func()) {
	name := os.Getenv(profileEnv)
	if name == "" || userns.Needed() {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", profileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", profileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
