//go:build linux

package userns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options say what Run starts.
type Options struct {
	// Args are the arguments after the program name (os.Args[1:]).
	Args []string
	// Env is the environment (nil: os.Environ()); Run adds its own
	// variables.
	Env []string
	// Stdin, Stdout, Stderr default to this process's.
	Stdin          *os.File
	Stdout, Stderr *os.File
	// Private keeps everything in the namespaces: RunDir is the private
	// /run/nplab and no host listeners are served (tests).
	Private bool
}

// Run re-executes this program (/proc/self/exe) with opts.Args in a new
// user, mount and network namespace, the user mapped to root, forwards
// SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, waits for it and returns its
// exit status (128+N if signal N killed it). The new process must call
// Setup first thing (it sees Inside() and EnvInside=1). It gets SIGTERM if
// this process dies (PR_SET_PDEATHSIG). While it runs, this process opens
// TCP listeners on the host's loopback for it (ListenHost).
//
// Where the kernel refuses the user namespace, the error is a
// *DisabledError naming the setting that forbids it.
func Run(opts Options) (int, error) {
	dir := RootRunDir
	if !opts.Private {
		var err error
		if dir, err = MakeRunDir(); err != nil {
			return 0, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	outerSock, innerSock, err := socketpair()
	if err != nil {
		return 0, fmt.Errorf("rootless mode: %w", err)
	}
	defer outerSock.Close()
	cmd := exec.Command("/proc/self/exe", opts.Args...)
	cmd.Args[0] = self
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(withoutVars(env, EnvInside, EnvRunDir, envBroker), EnvInside+"=1", EnvRunDir+"="+dir)
	if !opts.Private {
		cmd.Env = append(cmd.Env, envBroker+"=3")
		cmd.ExtraFiles = []*os.File{innerSock}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = orStd(opts.Stdin, os.Stdin), orStd(opts.Stdout, os.Stdout), orStd(opts.Stderr, os.Stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGTERM,
	}
	// Forward the signals that stop a lab; Ctrl-C on a terminal reaches
	// both processes, and a lab takes a second SIGINT as the first.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	// Pdeathsig fires when the thread that forked exits: fork from one
	// that stays (a locked thread is ended only by its goroutine's exit).
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	innerSock.Close()
	if err != nil {
		return 0, explain(err)
	}
	go serveListeners(outerSock)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			return exitStatus(err)
		}
	}
}

func orStd(f, std *os.File) *os.File {
	if f != nil {
		return f
	}
	return std
}

func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

func withoutVars(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// Setup prepares the namespaces Run made, in the re-executed process,
// before anything else runs: mounts stop propagating to the host's mount
// namespace, a tmpfs covers /run (for /run/netns and /run/nplab: named
// namespaces and state die with the lab), the user's RunDir and
// $XDG_RUNTIME_DIR are bound back at their paths, and the network
// namespace's loopback goes up. It does nothing unless EnvInside is "1",
// and sets it to "2", so children do not mount again.
//
// Equivalent to: mount --make-rprivate / && mount -t tmpfs tmpfs /run && ip link set lo up
func Setup() error {
	if os.Getenv(EnvInside) != "1" {
		return nil
	}
	// The listener socket is this process's, not its children's.
	if v := os.Getenv(envBroker); v != "" {
		brokerFD, _ = strconv.Atoi(v)
		os.Unsetenv(envBroker)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("rootless mode: make / private: %w", err)
	}
	// Directories under /run to keep: opened before the tmpfs hides
	// them, bound back through their descriptors.
	var keep []string
	for _, d := range []string{os.Getenv("XDG_RUNTIME_DIR"), os.Getenv(EnvRunDir)} {
		if d != "" && filepath.IsAbs(d) && strings.HasPrefix(filepath.Clean(d)+"/", "/run/") && filepath.Clean(d) != RootRunDir {
			keep = append(keep, filepath.Clean(d))
		}
	}
	fds := make([]int, len(keep))
	for i, d := range keep {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			fds[i] = -1
			continue
		}
		fds[i] = fd
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return fmt.Errorf("rootless mode: mount a tmpfs on /run: %w", err)
	}
	for i, d := range keep {
		if fds[i] < 0 {
			continue
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("rootless mode: %w", err)
		}
		err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fds[i]), d, "", unix.MS_BIND|unix.MS_REC, "")
		unix.Close(fds[i])
		if err != nil {
			return fmt.Errorf("rootless mode: bind %s back: %w", d, err)
		}
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("rootless mode: bring lo up: %w", err)
	}
	return os.Setenv(EnvInside, "2")
}

// loopbackUp sets lo up (SIOCSIFFLAGS), as `ip link set lo up`.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// socketpair returns the two ends of a SOCK_SEQPACKET pair: the outer
// process's, and the one passed to the new process as descriptor 3.
func socketpair() (outer *net.UnixConn, inner *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	of := os.NewFile(uintptr(fds[0]), "nplab-listener-broker")
	defer of.Close()
	c, err := net.FileConn(of)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return c.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "nplab-listener-broker"), nil
}

// serveListeners answers each request from the new process with a TCP
// listener on 127.0.0.1 (a port the kernel picks) in this process's
// network namespace, the host's, or with the error text.
func serveListeners(c *net.UnixConn) {
	buf := make([]byte, 16)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_, _ = c.Write([]byte(err.Error()))
			continue
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close()
		if err != nil {
			_, _ = c.Write([]byte(err.Error()))
			continue
		}
		_, _, _ = c.WriteMsgUnix([]byte("ok"), unix.UnixRights(int(f.Fd())), nil)
		f.Close()
	}
}

var (
	brokerFD   = -1 // set by Setup
	brokerOnce sync.Once
	broker     *net.UnixConn
	brokerErr  error
	brokerMu   sync.Mutex
)

// ListenHost returns a TCP listener on 127.0.0.1 (a port the kernel picks)
// in the host's network namespace, so the user's own shell reaches it:
// opened by the outer process (Run) and handed in. Outside nplab's user
// namespace it is net.Listen("tcp", "127.0.0.1:0").
func ListenHost() (net.Listener, error) {
	if !Inside() || brokerFD < 0 {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	brokerOnce.Do(func() {
		f := os.NewFile(uintptr(brokerFD), "nplab-listener-broker")
		c, err := net.FileConn(f) // a duplicate, close-on-exec
		f.Close()
		if err != nil {
			brokerErr = fmt.Errorf("rootless mode: the listener socket: %w", err)
			return
		}
		broker = c.(*net.UnixConn)
	})
	if brokerErr != nil {
		return nil, brokerErr
	}
	brokerMu.Lock()
	defer brokerMu.Unlock()
	if _, err := broker.Write([]byte("listen")); err != nil {
		return nil, fmt.Errorf("rootless mode: ask for a listener on the host: %w", err)
	}
	buf, oob := make([]byte, 512), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := broker.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("rootless mode: a listener on the host: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, fmt.Errorf("rootless mode: a listener on the host: %s", buf[:n])
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("rootless mode: a listener on the host: %v", err)
	}
	f := os.NewFile(uintptr(fds[0]), "listener")
	defer f.Close()
	host, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	// The same port on this namespace's own loopback, so the lab's own
	// process (nplab up's first `kubectl get svc`) reaches it too.
	local, err := net.Listen("tcp", host.Addr().String())
	if err != nil {
		return host, nil
	}
	return newMultiListener(host, local), nil
}

// multiListener accepts on several listeners; its address is the first's.
type multiListener struct {
	lns   []net.Listener
	conns chan net.Conn
	errs  chan error
	once  sync.Once
	done  chan struct{}
}

func newMultiListener(lns ...net.Listener) *multiListener {
	m := &multiListener{lns: lns, conns: make(chan net.Conn), errs: make(chan error, len(lns)), done: make(chan struct{})}
	for _, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					m.errs <- err
					return
				}
				select {
				case m.conns <- c:
				case <-m.done:
					c.Close()
					return
				}
			}
		}()
	}
	return m
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errs:
		m.Close()
		return nil, err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *multiListener) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			if e := ln.Close(); e != nil && err == nil {
				err = e
			}
		}
	})
	return err
}

func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }

func checkOwner(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("nplab's run directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("nplab's run directory %s is not a directory of yours: remove it, or set XDG_RUNTIME_DIR", dir)
	}
	return nil
}

// Enter replaces this process with this program run with args in the user
// and mount namespaces of process pid (a rootless lab's), where the lab's
// named network namespaces are, marked as inside (EnvInside=2). It uses
// util-linux's nsenter: a Go program cannot enter a user namespace once it
// runs threads.
//
// Equivalent to: nsenter -U -m --preserve-credentials -t PID -- nplab ARGS...
func Enter(pid int, args []string) error {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return fmt.Errorf("entering a lab that runs without root needs nsenter (Debian package util-linux): %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{"nsenter", "-U", "-m", "--preserve-credentials", "-t", strconv.Itoa(pid), "--", self}, args...)
	env := append(withoutVars(os.Environ(), EnvInside, EnvRunDir, envBroker), EnvInside+"=2", EnvRunDir+"="+RunDir())
	return syscall.Exec(nsenter, argv, env)
}
