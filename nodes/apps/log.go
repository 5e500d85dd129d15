package apps

import (
	"fmt"
	"sync"
	"time"
)

// A container's log is what its program printed (stdout and stderr, as
// the container runtime keeps them for `kubectl logs`), one entry per
// line, with when it was printed: the lines agnhost netexec logs with Go's
// log package ("2026/12/01 12:00:00 GET /hostname"), nginx's access log.
// The runtime rotates a log at a size; nplab keeps its last MaxLogLines.

// MaxLogLines bounds a container's log.
const MaxLogLines = 5000

// LogLine is one line of a container's log. Seq counts the lines the
// container printed, from 1, so a follower can ask for what is new.
type LogLine struct {
	Seq  uint64
	Time time.Time
	Text string
}

// Log is a container's log; its methods are safe for concurrent use.
type Log struct {
	mu    sync.Mutex
	lines []LogLine // the last MaxLogLines: a ring, oldest at head once full
	head  int
	seq   uint64
}

// NewLog returns an empty log (a container that printed nothing yet).
func NewLog() *Log { return &Log{} }

// Print appends a line, as the program printing it.
func (l *Log) Print(text string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	ln := LogLine{Seq: l.seq, Time: now, Text: text}
	if len(l.lines) < MaxLogLines {
		l.lines = append(l.lines, ln)
		return
	}
	l.lines[l.head] = ln
	l.head = (l.head + 1) % MaxLogLines
}

// goLog prints as Go's standard logger does (log.LstdFlags).
func (l *Log) goLog(format string, args ...any) {
	l.Print(time.Now().Format("2006/01/02 15:04:05 ") + fmt.Sprintf(format, args...))
}

// Lines returns the lines kept, oldest first.
func (l *Log) Lines() []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LogLine, 0, len(l.lines))
	return append(append(out, l.lines[l.head:]...), l.lines[:l.head]...)
}
