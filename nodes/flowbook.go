package nodes

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

// How long and how many finished flows a cluster keeps for Send to find.
const (
	flowBookKeep = 10 * time.Second
	flowBookMax  = 4096
)

// flowKey identifies a flow by what both ends know: the protocol and the
// client's address and port as the node saw them (there is no NAT between
// a host of the lab and a node).
type flowKey struct {
	proto  string // "TCP", "UDP", "SCTP"
	client netip.AddrPort
}

// flowBook matches the flows the nodes report to the requests Send makes:
// Send asks for the flow of its own source address and port, and gets the
// one the proxy finished for it, whether it finished before the question
// or shortly after.
type flowBook struct {
	mu      sync.Mutex
	recent  map[flowKey]plane.Flow // the latest finished flow per client
	waiters map[flowKey][]*flowWaiter
}

type flowWaiter struct {
	since time.Time
	ch    chan plane.Flow // buffered, one flow
}

func newFlowBook() *flowBook {
	return &flowBook{recent: map[flowKey]plane.Flow{}, waiters: map[flowKey][]*flowWaiter{}}
}

// add records a finished flow and hands it to a Send waiting for it.
func (b *flowBook) add(f plane.Flow) {
	k := flowKey{f.Protocol, f.Client}
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiters[k]
	kept := ws[:0]
	for _, w := range ws {
		if !f.Start.Before(w.since) {
			w.ch <- f
			continue
		}
		kept = append(kept, w)
	}
	if len(kept) == 0 {
		delete(b.waiters, k)
	} else {
		b.waiters[k] = kept
	}
	b.recent[k] = f
	if len(b.recent) > flowBookMax {
		b.prune(time.Now())
	}
}

// prune forgets flows that ended more than flowBookKeep ago and, if that
// is not enough, every other one.
func (b *flowBook) prune(now time.Time) {
	for k, f := range b.recent {
		if now.Sub(f.Start.Add(f.Duration)) > flowBookKeep {
			delete(b.recent, k)
		}
	}
	for k := range b.recent {
		if len(b.recent) <= flowBookMax/2 {
			break
		}
		delete(b.recent, k)
	}
}

// wait returns the flow of client that started at or after since: one
// already finished, or one that finishes within d (or before ctx ends).
// It returns nil when none does.
func (b *flowBook) wait(ctx context.Context, k flowKey, since time.Time, d time.Duration) *plane.Flow {
	b.mu.Lock()
	if f, ok := b.recent[k]; ok && !f.Start.Before(since) {
		b.mu.Unlock()
		return &f
	}
	w := &flowWaiter{since: since, ch: make(chan plane.Flow, 1)}
	b.waiters[k] = append(b.waiters[k], w)
	b.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case f := <-w.ch:
		return &f
	case <-t.C:
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiters[k]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.waiters, k)
	} else {
		b.waiters[k] = ws
	}
	select {
	case f := <-w.ch: // delivered while we gave up
		return &f
	default:
		return nil
	}
}
