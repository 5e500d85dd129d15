package nodes

import (
	"fmt"
	"time"
)

// Restart back-off, as the kubelet's (kuberuntime's container back-off,
// client-go's flowcontrol.Backoff): a container that exits is restarted at
// once the first time; every later exit waits the back-off, which starts
// at 10 s and doubles up to 5 minutes; a container that ran for longer
// than 10 minutes (twice the maximum) since its last restart starts over.
const (
	restartBackOff    = 10 * time.Second
	restartBackOffMax = 300 * time.Second
)

// backOff is one container's restart back-off. Times are the kubelet's
// (10 s, 5 min); scale shrinks them for tests (plane.Options.ProbeScale),
// so a lab with ProbeScale 0.01 backs off 100 ms, 200 ms, ... 3 s.
type backOff struct {
	scale float64
	delay time.Duration // the kubelet's current back-off; 0: none yet
	last  time.Time     // when it was last advanced (a restart)
}

// exited is called when the container exited at finished and is to be
// restarted: it returns the back-off to wait before the restart (0: at
// once; the kubelet's unscaled value), and whether the pod is then in
// CrashLoopBackOff. With 0 the back-off has already moved on (Next).
func (b *backOff) exited(finished time.Time) time.Duration {
	if b.delay == 0 || finished.Sub(b.last) > b.scaled(2*restartBackOffMax) {
		b.delay, b.last = restartBackOff, finished
		return 0
	}
	return b.delay
}

// restarted is called when a restart that waited happens at now: the next
// back-off doubles, up to the maximum.
func (b *backOff) restarted(now time.Time) {
	b.delay = min(2*b.delay, restartBackOffMax)
	b.last = now
}

// scaled converts one of the kubelet's durations to this lab's time.
func (b *backOff) scaled(d time.Duration) time.Duration {
	if b.scale <= 0 {
		return d
	}
	return time.Duration(float64(d) * b.scale)
}

// crashLoopMessage is the kubelet's Waiting message for a container in
// back-off: "back-off 10s restarting failed container=web pod=web-x_default(uid)".
func crashLoopMessage(delay time.Duration, container, pod, namespace, uid string) string {
	return fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, container, pod, namespace, uid)
}
