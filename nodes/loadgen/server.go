package loadgen

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Server is a running bench server: a TCP listener and a UDP socket on the
// same port of a pod.
type Server struct {
	hostname string
	l        net.Listener
	pc       net.PacketConn

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Serve serves the bench protocol on l (TCP) and pc (UDP; nil for none),
// answering hostname to 'C' connections, until Close. Either may be nil.
func Serve(hostname string, l net.Listener, pc net.PacketConn) *Server {
	s := &Server{hostname: hostname, l: l, pc: pc, conns: map[net.Conn]struct{}{}}
	if l != nil {
		s.wg.Go(s.acceptLoop)
	}
	if pc != nil {
		s.wg.Go(s.udpLoop)
	}
	return s
}

// Close stops the server and closes every connection it has open.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.l != nil {
		s.l.Close()
	}
	if s.pc != nil {
		s.pc.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) acceptLoop() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			time.Sleep(5 * time.Millisecond) // EMFILE and friends: back off
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Server) serveConn(c net.Conn) {
	var mode [1]byte
	c.SetReadDeadline(time.Now().Add(IOTimeout))
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	switch mode[0] {
	case modeConn:
		reply := make([]byte, 0, 1+len(s.hostname))
		reply = append(reply, byte(min(len(s.hostname), 255)))
		reply = append(reply, s.hostname[:min(len(s.hostname), 255)]...)
		if _, err := c.Write(reply); err != nil {
			return
		}
		// Wait for the client's FIN: the client closes first.
		c.SetReadDeadline(time.Now().Add(IOTimeout))
		var b [1]byte
		c.Read(b[:])
	case modeBulk:
		buf := make([]byte, 256<<10)
		var n int64
		var first, last time.Time
		for {
			k, err := c.Read(buf)
			if k > 0 {
				if n == 0 {
					first = time.Now()
				}
				n += int64(k)
				last = time.Now()
			}
			if err != nil {
				if err != io.EOF {
					return
				}
				break
			}
		}
		var ans [16]byte
		binary.BigEndian.PutUint64(ans[:8], uint64(n))
		binary.BigEndian.PutUint64(ans[8:], uint64(last.Sub(first)))
		c.Write(ans[:])
	case modeRR:
		var hdr [2]byte
		c.SetReadDeadline(time.Now().Add(IOTimeout))
		if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[1] == 0 {
			return
		}
		c.SetReadDeadline(time.Time{})
		echo(c, int(hdr[0])-1, int(hdr[1]))
	}
}

// echoConn answers size-byte messages with themselves until EOF, on the
// calling goroutine's connection; it is the portable fallback of echo.
func echoConn(c net.Conn, size int) {
	buf := make([]byte, size)
	for {
		c.SetReadDeadline(time.Now().Add(IOTimeout))
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// udpLoop counts data datagrams per run and answers queries. It keeps the
// counts of at most maxRuns runs.
func (s *Server) udpLoop() {
	counts := udpCounts{}
	buf := make([]byte, 2048)
	var ans [17]byte
	uc, _ := s.pc.(*net.UDPConn)
	if uc != nil {
		growReadBuffer(uc, 8<<20)
	}
	for {
		var n int
		var err error
		var from net.Addr
		var fromAP netip.AddrPort
		if uc != nil {
			n, fromAP, err = uc.ReadFromUDPAddrPort(buf) // no allocation per datagram
		} else {
			n, from, err = s.pc.ReadFrom(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			continue
		}
		if !counts.handle(buf[:n], &ans) {
			continue
		}
		if uc != nil {
			uc.WriteToUDPAddrPort(ans[:], fromAP)
		} else {
			s.pc.WriteTo(ans[:], from)
		}
	}
}

// udpCounts counts the datagrams of each run (at most maxRuns runs).
type udpCounts map[[8]byte]uint64

const maxRuns = 64

// handle counts a data datagram, or fills ans with the answer to a query
// and returns true.
func (c udpCounts) handle(msg []byte, ans *[17]byte) bool {
	if len(msg) < 9 {
		return false
	}
	var run [8]byte
	copy(run[:], msg[1:9])
	switch msg[0] {
	case udpData:
		if _, ok := c[run]; !ok && len(c) >= maxRuns {
			clear(c)
		}
		c[run]++
	case udpQuery:
		ans[0] = udpAns
		copy(ans[1:9], run[:])
		binary.BigEndian.PutUint64(ans[9:], c[run])
		return true
	}
	return false
}
