package lab

import "time"

// enqueue queues a data plane call; l.mu is held. Calls run in order, outside
// the lock, when the current public method returns (see drain).
func (l *Lab) enqueue(f func()) {
	l.queue = append(l.queue, f)
}

// drain runs queued data plane calls in order, outside l.mu. One goroutine
// drains at a time; a call made while another drains (including a data
// plane callback from inside StartPod) leaves its work to that drainer, so
// the data plane sees calls in the order the lab made them and may call back
// into the lab without deadlock.
func (l *Lab) drain() {
	for {
		l.mu.Lock()
		if l.draining || len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		f := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		l.draining = true
		l.mu.Unlock()

		f()

		l.mu.Lock()
		l.draining = false
		l.mu.Unlock()
	}
}

func secondsDuration(s int32) time.Duration { return time.Duration(s) * time.Second }
