//go:build linux

package loadgen

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Bulk sends as much as it can to the server at target over one TCP
// connection for d, and returns what the server received per second, in
// bits.
func Bulk(enter Enter, target netip.AddrPort, d time.Duration) (bitsPerSec float64, err error) {
	d = clampDuration(d)
	err = enter(func() error {
		fd, err := dial(unix.SOCK_STREAM, target)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := writeAll(fd, []byte{modeBulk}); err != nil {
			return err
		}
		buf := make([]byte, 256<<10)
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			if err := writeAll(fd, buf); err != nil {
				return err
			}
		}
		if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		var ans [16]byte
		if err := readFull(fd, ans[:]); err != nil {
			return fmt.Errorf("the server's count: %w", err)
		}
		n := binary.BigEndian.Uint64(ans[:8])
		ns := binary.BigEndian.Uint64(ans[8:])
		if n == 0 || ns == 0 {
			return errors.New("the server received nothing")
		}
		bitsPerSec = float64(n) * 8 / (float64(ns) / 1e9)
		return nil
	})
	return bitsPerSec, err
}

// ConnResult is what Conns measured.
type ConnResult struct {
	PerSec float64
	OK     int
	Failed int
	// FirstErr is the first failure, if any.
	FirstErr error
}

// Conns opens new TCP connections to target from workers threads for d,
// each with one request and its answer, which must be wantHost (the pod's
// hostname; "" accepts any). The client closes first.
func Conns(enter Enter, target netip.AddrPort, d time.Duration, workers int, wantHost string) (ConnResult, error) {
	d = clampDuration(d)
	workers = max(workers, 1)
	var mu sync.Mutex
	var res ConnResult
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for range workers {
		wg.Go(func() {
			ok, failed := 0, 0
			var first error
			err := enter(func() error {
				buf := make([]byte, 256)
				for time.Now().Before(end) && ok+failed < maxConns/workers {
					if err := oneConn(target, buf, wantHost); err != nil {
						failed++
						if first == nil {
							first = err
						}
						if failed > 100 && failed > ok/100 {
							return first // the path is broken: stop early
						}
						continue
					}
					ok++
				}
				return nil
			})
			if err != nil && first == nil {
				first = err
			}
			mu.Lock()
			res.OK += ok
			res.Failed += failed
			if res.FirstErr == nil {
				res.FirstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.PerSec = float64(res.OK) / elapsed.Seconds()
	if res.OK == 0 {
		if res.FirstErr == nil {
			res.FirstErr = errors.New("no connection was made")
		}
		return res, res.FirstErr
	}
	// More than 1% failed: the figure would hide a broken path.
	if res.Failed*100 > res.OK+res.Failed {
		return res, fmt.Errorf("%d of %d connections failed, the first: %w", res.Failed, res.OK+res.Failed, res.FirstErr)
	}
	return res, nil
}

func oneConn(target netip.AddrPort, buf []byte, wantHost string) error {
	fd, err := dial(unix.SOCK_STREAM, target)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := writeAll(fd, []byte{modeConn}); err != nil {
		return err
	}
	if err := readFull(fd, buf[:1]); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	n := int(buf[0])
	if err := readFull(fd, buf[:n]); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if wantHost != "" && string(buf[:n]) != wantHost {
		return fmt.Errorf("answered by %q, want %q", buf[:n], wantHost)
	}
	return nil
}

// UDPResult is what UDP measured.
type UDPResult struct {
	Sent, Delivered uint64
	// PerSec is the datagrams the server received per second of sending.
	PerSec float64
	// LossPercent is the share of the sent datagrams that never arrived.
	LossPercent float64
}

// UDP sends DatagramSize-byte datagrams to target at rate per second for
// d, then asks the server how many arrived. It sends in batches
// (sendmmsg), so that one client thread can offer far more than a path
// carries.
func UDP(enter Enter, target netip.AddrPort, d time.Duration, rate int) (UDPResult, error) {
	d = clampDuration(d)
	rate = max(rate, 1)
	var res UDPResult
	err := enter(func() error {
		// Dialled on this thread, which is inside the client's namespace.
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(target))
		if err != nil {
			return err
		}
		defer c.Close()
		pc := ipv4.NewPacketConn(c)
		var run [8]byte
		rand.Read(run[:])
		msg := make([]byte, DatagramSize)
		msg[0] = udpData
		copy(msg[1:9], run[:])
		const batch = 64
		msgs := make([]ipv4.Message, batch)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{msg}
		}
		start := time.Now()
		var sent uint64
		for {
			elapsed := time.Since(start)
			if elapsed >= d {
				break
			}
			due := uint64(elapsed.Seconds() * float64(rate))
			if sent >= due {
				unix.Nanosleep(&unix.Timespec{Nsec: 50_000}, nil)
				continue
			}
			k := int(min(due-sent, batch))
			n, err := pc.WriteBatch(msgs[:k], 0)
			if n <= 0 || err != nil {
				// An error (ECONNREFUSED after an ICMP unreachable,
				// ENOBUFS) is a datagram that did not arrive: loss.
				n = max(n, 1)
			}
			sent += uint64(n)
		}
		res.Sent = sent
		elapsedSend := time.Since(start)
		time.Sleep(100 * time.Millisecond) // what is still on its way
		q := make([]byte, 9)
		q[0] = udpQuery
		copy(q[1:], run[:])
		ans := make([]byte, 64)
		var lastErr error
		for try := 0; try < 10; try++ {
			c.Write(q)
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			for {
				n, err := c.Read(ans)
				if err != nil {
					lastErr = err
					break
				}
				if n == 17 && ans[0] == udpAns && [8]byte(ans[1:9]) == run {
					res.Delivered = binary.BigEndian.Uint64(ans[9:17])
					res.PerSec = float64(res.Delivered) / elapsedSend.Seconds()
					if res.Sent > 0 && res.Delivered < res.Sent {
						res.LossPercent = 100 * float64(res.Sent-res.Delivered) / float64(res.Sent)
					}
					return nil
				}
			}
		}
		return fmt.Errorf("the server never said how many datagrams arrived: %v", lastErr)
	})
	return res, err
}

// RRResult is what RR measured.
type RRResult struct {
	Samples  int
	P50, P99 time.Duration
	CPU      int // the CPU client and server were pinned to; -1: none
}

// RR measures round trips of RRSize bytes on one kept-open TCP connection
// for d, the client's thread and the server's pinned to one CPU (the
// first this process may use). The first 50 ms are a warm-up.
func RR(enter Enter, target netip.AddrPort, d time.Duration) (RRResult, error) {
	d = clampDuration(d)
	res := RRResult{CPU: -1}
	err := enter(func() error {
		cpu := firstCPU()
		restore, perr := pin(cpu)
		if perr == nil {
			defer restore()
			res.CPU = cpu
		}
		fd, err := dial(unix.SOCK_STREAM, target)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := writeAll(fd, []byte{modeRR, byte(res.CPU + 1), RRSize}); err != nil {
			return err
		}
		buf := make([]byte, RRSize)
		samples := make([]time.Duration, 0, 1<<16)
		start := time.Now()
		warm := start.Add(50 * time.Millisecond)
		end := warm.Add(d)
		for len(samples) < maxSamples {
			t0 := time.Now()
			if t0.After(end) {
				break
			}
			if err := writeAll(fd, buf); err != nil {
				return err
			}
			if err := readFull(fd, buf); err != nil {
				return fmt.Errorf("echo: %w", err)
			}
			if t0.After(warm) {
				samples = append(samples, time.Since(t0))
			}
		}
		if len(samples) == 0 {
			return errors.New("no round trip completed")
		}
		slices.Sort(samples)
		res.Samples = len(samples)
		res.P50 = samples[len(samples)/2]
		res.P99 = samples[min(len(samples)-1, len(samples)*99/100)]
		return nil
	})
	return res, err
}

// LockedEnter is an Enter for the caller's own namespace: f runs on a
// locked OS thread of this process (tests on loopback).
func LockedEnter(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- f()
	}()
	return <-errc
}
