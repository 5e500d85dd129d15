package vmtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// BootOptions are qemu's settings for one run.
type BootOptions struct {
	MemoryMB int           // guest memory; 1024 when zero
	Timeout  time.Duration // the whole boot; 4 minutes when zero
	// Console, if not nil, is given every console line (cleaned, see
	// CleanLine) as it arrives.
	Console func(line string)
}

// QemuBinary is the emulator Boot runs.
const QemuBinary = "qemu-system-x86_64"

// Boot runs the kernel with the initramfs in qemu until the guest exits it,
// and returns the report read from its serial console. It uses software
// emulation (-accel tcg), which works where KVM does not. Equivalent to:
//
//	qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nographic -no-reboot \
//	  -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
//	  -kernel vmlinuz -initrd initrd.gz -append "console=ttyS0 quiet panic=-1"
//
// An error means the run could not be judged (qemu missing, timeout, console
// unreadable); a finished run with failing tests is a Report whose Check
// fails, not an error.
func Boot(ctx context.Context, k *Kernel, initrd string, opts BootOptions) (*Report, error) {
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 1024
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, QemuBinary,
		"-accel", "tcg", "-cpu", "max", "-m", strconv.Itoa(opts.MemoryMB), "-smp", "1",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", "-monitor", "none",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-kernel", k.Vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1")
	cmd.Stdin = nil // /dev/null: the console takes no input
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("could not start %s: %w", QemuBinary, err)
	}
	rep, perr := ParseConsole(out, opts.Console)
	if perr != nil {
		io.Copy(io.Discard, out)
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return rep, fmt.Errorf("the VM did not finish within %v (killed)", opts.Timeout)
	}
	var ee *exec.ExitError
	switch {
	case werr == nil:
		rep.ExitCode = 0
	case errors.As(werr, &ee):
		rep.ExitCode = ee.ExitCode()
	default:
		return rep, fmt.Errorf("%s: %w", QemuBinary, werr)
	}
	if perr != nil {
		return rep, fmt.Errorf("reading the VM console: %w", perr)
	}
	return rep, nil
}
