package userns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Environment variables between the outer process and the re-executed one.
const (
	// EnvInside marks a process in nplab's user namespace: "1" in the
	// process Run starts (it must call Setup), "2" once Setup is done (its
	// children, and commands entered by `nplab exec`, must not mount again).
	EnvInside = "NPLAB_USERNS"
	// EnvRunDir is the user's RunDir, passed in (inside, the user is root
	// and /run is private).
	EnvRunDir = "NPLAB_RUN_DIR"
	// envBroker is the descriptor of the socket ListenHost asks on.
	envBroker = "NPLAB_USERNS_LISTENER_FD"
)

// RootRunDir is where nplab keeps its records when it runs as root.
const RootRunDir = "/run/nplab"

// Inside reports whether this process runs in nplab's user namespace (it
// was started by Run, or entered by `nplab exec`).
func Inside() bool { return runtime.GOOS == "linux" && os.Getenv(EnvInside) != "" }

// Rootless reports whether nplab runs without root: in its user namespace,
// or about to enter one (not root, on Linux).
func Rootless() bool { return Inside() || Needed() }

// Needed reports whether a command that builds a lab must re-execute in a
// user namespace first: on Linux, not root, not already inside.
func Needed() bool { return runtime.GOOS == "linux" && os.Geteuid() != 0 && !Inside() }

// RunDir is the directory of a user's running labs' records (kubeconfig,
// the lab's record, `nplab up -d`'s log): /run/nplab for root, else
// $XDG_RUNTIME_DIR/nplab, else $TMPDIR/nplab-<uid>. Inside nplab's user
// namespace it is the outer user's, so the user's own `nplab ls` and
// kubectl see them.
func RunDir() string {
	if Inside() {
		if d := os.Getenv(EnvRunDir); d != "" {
			return d
		}
	}
	if runtime.GOOS != "linux" || os.Geteuid() == 0 {
		return RootRunDir
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "nplab")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("nplab-%d", os.Geteuid()))
}

// MakeRunDir creates RunDir (mode 0700) and checks that it is the user's
// own: a directory under a shared /tmp could have been made by someone else.
func MakeRunDir() (string, error) {
	dir := RunDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("nplab's run directory: %w", err)
	}
	if err := checkOwner(dir); err != nil {
		return "", err
	}
	return dir, nil
}
