//go:build linux

package nodes

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// A TCP relay starts by copying through a pooled buffer, which costs a
// short exchange nothing extra. Once one read fills the whole buffer the
// half is a bulk transfer, and the rest of it is spliced: splice(2) moves
// the received pages from the source socket into a pipe and from the pipe
// into the destination socket, without copying them through this process.
// Measured with `nplab bench --peers` (its go-copy path is io.Copy, which
// splices): the copy loop reached 0.41× of direct's bulk throughput where
// io.Copy reached 0.64×, in the same run. The pipes are pooled, so a
// connection pays no pipe2(2) or close(2).

// spliceMax is how much one splice(2) moves at most, and the size the
// pooled pipes ask for (F_SETPIPE_SZ; the kernel's default is 64 KiB), as
// the Go runtime's own splice does.
const spliceMax = 1 << 20

// splicePipe is a pooled pipe. It goes back to the pool only empty.
type splicePipe struct {
	r, w int
}

var splicePipes = sync.Pool{New: func() any {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	_, _ = unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, spliceMax) // best effort
	p := &splicePipe{r: fds[0], w: fds[1]}
	runtime.SetFinalizer(p, (*splicePipe).close)
	return p
}}

func (p *splicePipe) close() {
	runtime.SetFinalizer(p, nil)
	unix.Close(p.r)
	unix.Close(p.w)
}

// splicedBytes counts the bytes every relay spliced (tests read it).
var splicedBytes atomic.Int64

// rawConns are the sockets of dst and src, when both have them (TCP
// conns: *net.TCPConn and netsim's pooled conns).
func rawConns(dst, src net.Conn) (d, s syscall.RawConn, ok bool) {
	dc, dok := dst.(syscall.Conn)
	sc, sok := src.(syscall.Conn)
	if !dok || !sok {
		return nil, nil, false
	}
	var err error
	if d, err = dc.SyscallConn(); err != nil {
		return nil, nil, false
	}
	if s, err = sc.SyscallConn(); err != nil {
		return nil, nil, false
	}
	return d, s, true
}

// spliceCopy moves src's bytes to dst until src's orderly end (eof), a
// read error (rerr, as src.Read would give it) or a write error (werr).
// ok is false when no pipe could be had: nothing was moved, copy instead.
func spliceCopy(dst, src syscall.RawConn) (n int64, eof, ok bool, rerr, werr error) {
	p, _ := splicePipes.Get().(*splicePipe)
	if p == nil {
		return 0, false, false, nil, nil
	}
	var inPipe int64
	defer func() {
		splicedBytes.Add(n)
		if inPipe == 0 {
			splicePipes.Put(p)
		} else {
			p.close() // bytes stranded in it: not for the next relay
		}
	}()
	for {
		var k int64
		var serr error
		err := src.Read(func(fd uintptr) bool {
			for {
				k, serr = unix.Splice(int(fd), nil, p.w, nil, spliceMax, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if serr != unix.EINTR {
					return serr != unix.EAGAIN
				}
			}
		})
		switch {
		case err != nil:
			return n, false, true, readErr(err), nil
		case serr != nil:
			return n, false, true, readErr(os.NewSyscallError("splice", serr)), nil
		case k == 0:
			return n, true, true, nil, nil
		}
		inPipe += k
		for inPipe > 0 {
			var m int64
			err := dst.Write(func(fd uintptr) bool {
				for {
					m, serr = unix.Splice(p.r, nil, int(fd), nil, int(inPipe), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
					if serr != unix.EINTR {
						return serr != unix.EAGAIN
					}
				}
			})
			switch {
			case err != nil:
				return n, false, true, nil, err
			case serr != nil:
				return n, false, true, nil, os.NewSyscallError("splice", serr)
			}
			inPipe -= m
			n += m
		}
	}
}

// readErr gives a splice's read error the shape of a conn's: a closed
// conn is net.ErrClosed.
func readErr(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}
