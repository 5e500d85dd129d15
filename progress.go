package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/charmbracelet/x/term"
)

// seededRand is the generator --seed makes, the same for up, validate, run
// and check, so one seed gives the same nodePorts, ClusterIPs and pod names
// everywhere.
func seededRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// progress shows what a lab is doing while it builds. On a terminal it is
// one status line, redrawn in place with the time so far and cleared when
// the phase ends; on a pipe or file each phase prints one plain milestone
// line when it ends, with how long it took.
type progress struct {
	out io.Writer
	tty bool

	mu    sync.Mutex
	line  string // the current status, "" when none is shown
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(out io.Writer) *progress {
	p := &progress{out: out}
	if f, ok := out.(*os.File); ok && term.IsTerminal(f.Fd()) {
		p.tty = true
	}
	return p
}

// phase shows status until the returned func is called: on a terminal
// that clears it; on a pipe it prints milestone, when ok, with the phase's
// duration.
func (p *progress) phase(status string) (end func(ok bool, milestone string)) {
	p.mu.Lock()
	p.line, p.start = status, time.Now()
	p.stop = make(chan struct{})
	p.drawLocked()
	stop := p.stop
	p.mu.Unlock()
	if p.tty {
		// Redraw the elapsed time while nothing happens (a 100-node
		// lab's namespaces take seconds).
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					p.mu.Lock()
					p.drawLocked()
					p.mu.Unlock()
				}
			}
		}()
	}
	var once sync.Once
	return func(ok bool, milestone string) {
		once.Do(func() {
			close(stop)
			p.wg.Wait()
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.tty {
				fmt.Fprint(p.out, "\r\x1b[K") // clear the status line
			} else if ok && milestone != "" {
				fmt.Fprintf(p.out, "%s (%.1fs)\n", milestone, time.Since(p.start).Seconds())
			}
			p.line = ""
		})
	}
}

// update replaces the status of the current phase.
func (p *progress) update(status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line == "" || p.line == status {
		return
	}
	p.line = status
	p.drawLocked()
}

func (p *progress) drawLocked() {
	if !p.tty || p.line == "" {
		return
	}
	fmt.Fprintf(p.out, "\r\x1b[K%s... %.1fs", p.line, time.Since(p.start).Seconds())
}
