//go:build linux

package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fileOf duplicates a connection's socket as an *os.File.
func fileOf(sc syscall.Conn) (*os.File, error) {
	if fc, ok := sc.(interface{ File() (*os.File, error) }); ok {
		return fc.File()
	}
	return nil, errors.New("no File method")
}

// setTimeouts bounds every blocking read and write (and connect) on fd.
func setTimeouts(fd int, d time.Duration) {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
}

// timeoutErr turns the EAGAIN of an expired SO_RCVTIMEO into a readable
// error.
func timeoutErr(op string, err error) error {
	if err == unix.EAGAIN {
		return fmt.Errorf("%s: no answer within %s", op, IOTimeout)
	}
	return os.NewSyscallError(op, err)
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return timeoutErr("read", err)
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return timeoutErr("write", err)
		}
		b = b[n:]
	}
	return nil
}

// dial opens a blocking socket of type typ (SOCK_STREAM, SOCK_DGRAM) in the
// calling thread's namespace and connects it to target, within IOTimeout.
func dial(typ int, target netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	setTimeouts(fd, IOTimeout)
	sa := &unix.SockaddrInet4{Port: int(target.Port()), Addr: target.Addr().Unmap().As4()}
	err = unix.Connect(fd, sa)
	if err == unix.EINTR || err == unix.EINPROGRESS || err == unix.EALREADY {
		err = waitConnected(fd)
	}
	if err != nil {
		unix.Close(fd)
		if err == unix.EINPROGRESS || err == unix.EAGAIN {
			return -1, fmt.Errorf("connect %s: no answer within %s", target, IOTimeout)
		}
		return -1, fmt.Errorf("connect %s: %w", target, err)
	}
	return fd, nil
}

// waitConnected waits for an interrupted connect to finish.
func waitConnected(fd int) error {
	deadline := time.Now().Add(IOTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.EINPROGRESS
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return err
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soerr != 0 {
			return unix.Errno(soerr)
		}
		return nil
	}
}

// firstCPU is the lowest CPU this thread may run on.
func firstCPU() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	for i := 0; i < 1024; i++ {
		if set.IsSet(i) {
			return i
		}
	}
	return 0
}
