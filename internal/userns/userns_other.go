//go:build !linux

package userns

import (
	"errors"
	"net"
	"os"
)

// Options say what Run starts.
type Options struct {
	Args           []string
	Env            []string
	Stdin          *os.File
	Stdout, Stderr *os.File
	Private        bool
}

// ErrNotSupported: user namespaces are Linux's.
var ErrNotSupported = errors.New("rootless mode needs Linux user namespaces")

// Run is Linux only.
func Run(Options) (int, error) { return 0, ErrNotSupported }

// Setup does nothing here.
func Setup() error { return nil }

// ListenHost is net.Listen("tcp", "127.0.0.1:0") here.
func ListenHost() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func checkOwner(string) error { return nil }

// Enter is Linux only.
func Enter(int, []string) error { return ErrNotSupported }
