package nodes

import (
	"container/list"
	"net/netip"
	"time"
)

// How a node tells a new attempt from a retransmission of one it has
// already reported (see attempts).
const (
	// kernelRetryWindow is how long a TCP or SCTP attempt is remembered
	// after its last packet. It spans every gap between Linux's
	// retransmissions of an unanswered SYN (1 s, then 2, 4, 8, 16, 32 s
	// with the default tcp_syn_retries = 6) and of an SCTP INIT (3 s,
	// doubling up to rto_max = 60 s), so a client that keeps retrying is
	// one attempt however long it retries.
	kernelRetryWindow = 65 * time.Second
	// kernelAttemptsMax bounds the attempts a node remembers; beyond it
	// the least recently seen is forgotten (a flood from ever-changing
	// source ports cannot grow the map).
	kernelAttemptsMax = 4096
)

// attemptKey is one attempt as its packets show it: the protocol, the
// client's address and port, and the frontend it asked for.
type attemptKey struct {
	proto    string
	src, dst netip.AddrPort
}

type attempt struct {
	key  attemptKey
	last time.Time
}

// attempts remembers the attempts a node's observer has seen, so that a
// retransmitted SYN (or SCTP INIT, or the next datagram of a UDP client)
// is not another flow. An attempt is forgotten once no packet of it came
// for its window: kernelRetryWindow for TCP and SCTP, udpWindow for UDP
// (the proxy's UDP flow idle time, so a UDP client is one flow whether the
// node proxies it or its kernel answers). At most max attempts are kept,
// least recently seen first to go. Not safe for concurrent use: one
// goroutine per node owns it.
type attempts struct {
	max       int
	udpWindow time.Duration
	lru       *list.List // of *attempt, most recently seen first
	byKey     map[attemptKey]*list.Element
}

func newAttempts(max int, udpWindow time.Duration) *attempts {
	return &attempts{max: max, udpWindow: udpWindow, lru: list.New(), byKey: map[attemptKey]*list.Element{}}
}

func (a *attempts) window(proto string) time.Duration {
	if proto == "UDP" {
		return a.udpWindow
	}
	return kernelRetryWindow
}

// first records a packet of k seen at now and reports whether it starts a
// new attempt (true) or repeats one seen within its window (false).
func (a *attempts) first(k attemptKey, now time.Time) bool {
	// Forget what has expired at the cold end: amortized O(1).
	for e := a.lru.Back(); e != nil; e = a.lru.Back() {
		at := e.Value.(*attempt)
		if now.Sub(at.last) <= a.window(at.key.proto) {
			break
		}
		a.lru.Remove(e)
		delete(a.byKey, at.key)
	}
	if e, ok := a.byKey[k]; ok {
		at := e.Value.(*attempt)
		fresh := now.Sub(at.last) > a.window(k.proto)
		at.last = now
		a.lru.MoveToFront(e)
		return fresh
	}
	a.byKey[k] = a.lru.PushFront(&attempt{key: k, last: now})
	for a.lru.Len() > a.max {
		e := a.lru.Back()
		a.lru.Remove(e)
		delete(a.byKey, e.Value.(*attempt).key)
	}
	return true
}

// len is how many attempts are remembered.
func (a *attempts) len() int { return a.lru.Len() }
