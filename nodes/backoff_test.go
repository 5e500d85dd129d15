package nodes

import (
	"testing"
	"time"
)

// The kubelet's restart back-off: at once, then 10 s doubling to 5 min,
// and a fresh start after 10 minutes of running.
func TestBackOff(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b backOff
	now := t0
	var got []time.Duration
	for range 9 {
		wait := b.exited(now)
		got = append(got, wait)
		now = now.Add(wait)
		if wait > 0 {
			b.restarted(now)
		}
		now = now.Add(time.Second) // runs 1 s, crashes again
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second, 300 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("back-offs %v, want %v", got, want)
		}
	}
	// Ran for more than 10 minutes since its last restart: at once again,
	// and the next one is 10 s.
	now = now.Add(11 * time.Minute)
	if w := b.exited(now); w != 0 {
		t.Errorf("after 11 minutes running: wait %v, want 0", w)
	}
	if w := b.exited(now.Add(time.Second)); w != restartBackOff {
		t.Errorf("next crash: wait %v, want %v", w, restartBackOff)
	}
	// Scaled: the 10-minute window shrinks with the lab's time.
	s := backOff{scale: 0.01}
	s.exited(t0)
	if w := s.exited(t0.Add(7 * time.Second)); w != 0 {
		t.Errorf("scaled 0.01: 7 s after is past the 6 s window, wait %v, want 0", w)
	}
	if got := crashLoopMessage(10*time.Second, "web", "web-x", "default", "u1"); got != "back-off 10s restarting failed container=web pod=web-x_default(u1)" {
		t.Errorf("message %q", got)
	}
}
