//go:build linux

package loadgen

import (
	"net"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// echo answers size-byte messages with themselves until EOF, with blocking
// system calls on this goroutine's own OS thread, pinned to cpu (when
// cpu >= 0): the client pins its thread to the same CPU, so a round trip
// hands the CPU from one thread to the other without waking an idle core.
func echo(c net.Conn, cpu, size int) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		echoConn(c, size)
		return
	}
	// A duplicate of the socket, in blocking mode (os.File.Fd sets it):
	// reads and writes block this thread, not the netpoller.
	f, err := fileOf(sc)
	if err != nil {
		echoConn(c, size)
		return
	}
	defer f.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cpu >= 0 {
		restore, err := pin(cpu)
		if err == nil {
			defer restore()
		}
	}
	fd := int(f.Fd())
	setTimeouts(fd, IOTimeout)
	buf := make([]byte, size)
	for {
		if err := readFull(fd, buf); err != nil {
			return
		}
		if err := writeAll(fd, buf); err != nil {
			return
		}
	}
}

// pin restricts the calling OS thread to cpu and returns how to undo it.
// The caller holds runtime.LockOSThread.
func pin(cpu int) (restore func(), err error) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, err
	}
	return func() { unix.SchedSetaffinity(0, &old) }, nil
}

// growReadBuffer gives the server's UDP socket a receive buffer of n bytes
// (SO_RCVBUFFORCE, as root; else as much as net.core.rmem_max allows), so
// a moment without a CPU does not drop datagrams: the figure should
// measure the path, not how promptly the bench server is scheduled.
func growReadBuffer(uc *net.UDPConn, n int) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
}
