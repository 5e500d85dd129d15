//go:build unix

package tui

import (
	"strings"
	"syscall"
	"testing"
)

func TestRunSignalsRemoveTheLab(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			l, _, done, out := runUI(t, freeLesson{"free", "free lab", ""})
			waitFor(t, out, "Fan-out")
			if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			err := wait(t, done)
			if err == nil || !strings.Contains(err.Error(), "signal") {
				t.Errorf("%v: Run = %v, want a stopped-by-a-signal error", sig, err)
			}
			if !labClosed(l) {
				t.Errorf("%v left the lab running", sig)
			}
		})
	}
}
