// Package loadgen is nplab's load generator: the bench server a bench pod
// runs (image plane.BenchImage) and the clients `nplab bench` runs against
// it from the outside client's namespace. It measures four things, each
// bounded in time (and in count):
//
//   - Bulk: TCP bulk throughput: one connection, the client writes as fast
//     as it can; the server counts what it received and over how long.
//   - Conns: new TCP connections per second, each carrying one small
//     request (one byte) and its answer (the pod's hostname).
//   - UDP: 64-byte datagrams sent at a fixed rate; the server counts what
//     arrived; the client asks for the count at the end (delivered per
//     second, and the loss).
//   - RR: request/response round trips of 64 bytes on a kept-open TCP
//     connection, with the client's and the server's threads pinned to
//     one CPU (sched_setaffinity), so the figure measures the path, not
//     how long an idle CPU takes to wake up. (`nplab bench` pins the
//     forwarder's threads to that CPU too: see nodes' pinTasks.)
//
// # The wire protocol
//
// Over TCP the first byte chooses the test: 'B' bulk (the server reads to
// EOF, then answers 16 bytes: the byte count and the nanoseconds from the
// first to the last byte, big-endian); 'C' one connection (the server
// answers one length byte and its hostname, then waits for the client to
// close: the client closes first, so TIME_WAIT stays in the client's
// namespace and never in the pod's, where it would make the SYNs of the
// next path fail); 'R' cpu size: an echo of size-byte messages, the server
// pinned to CPU cpu-1 (0: not pinned).
//
// Over UDP, 'D' run(8) padding is a counted datagram, 'Q' run(8) asks for
// the count, answered 'A' run(8) count(8).
//
// The clients use blocking system calls on a thread locked inside the
// client's namespace (the caller provides that thread: see Enter); the
// server uses ordinary sockets, except the pinned echo.
package loadgen

import (
	"errors"
	"time"
)

// Test selectors: the first byte of a TCP connection.
const (
	modeBulk = 'B'
	modeConn = 'C'
	modeRR   = 'R'
)

// UDP message types.
const (
	udpData  = 'D'
	udpQuery = 'Q'
	udpAns   = 'A'
)

// DatagramSize is the size of every counted UDP datagram.
const DatagramSize = 64

// RRSize is the size of one request (and of its response) in RR.
const RRSize = 64

// Bounds of every client: no loop runs longer than its duration plus
// IOTimeout, nor more often than its cap.
const (
	// IOTimeout bounds every blocking call (SO_RCVTIMEO, SO_SNDTIMEO).
	IOTimeout = 3 * time.Second
	// MaxDuration caps one measurement.
	MaxDuration = time.Minute
	// maxSamples caps the round trips RR records.
	maxSamples = 1 << 21
	// maxConns caps the connections Conns makes.
	maxConns = 1 << 24
)

// ErrNotSupported is returned by the clients where they cannot run (not
// Linux).
var ErrNotSupported = errors.New("loadgen: the clients need Linux")

// Enter runs f on an OS thread locked inside the client's network
// namespace (netsim.Run does), so the sockets f creates are the client's.
// f may block that thread for as long as it runs.
type Enter func(f func() error) error

func clampDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	return min(d, MaxDuration)
}
