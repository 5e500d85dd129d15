package vmtest

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Initramfs is what goes into the VM's first (and only) root file system.
type Initramfs struct {
	Busybox  string   // host path of a static busybox ("busybox-static" package)
	Modules  []Module // kernel modules, in load order (ModuleLoadOrder)
	Binaries []Binary // test binaries, run in this order
	SrcDir   string   // module root copied to /src, so tests find their files; "" for none
	Env      []string // KEY=value for the tests, e.g. "NPLAB_REQUIRE=root,sctp,netem"
	// HostTools are host programs copied to /usr/sbin with their libraries
	// (see FindHostTool); they come before busybox's applets on PATH.
	HostTools []HostTool
	// TestTimeout is each binary's -test.timeout (a Go duration string);
	// a binary that hangs then panics with its goroutines and fails.
	TestTimeout string
}

// StaticBusybox finds a statically linked busybox on the host, which the
// VM's init and shell tools run from. Debian's busybox-static installs one
// at /bin/busybox.
func StaticBusybox() (string, error) {
	p, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox not found (apt-get install busybox-static): %w", err)
	}
	out, _ := exec.Command("file", "-L", p).Output() // best effort: file(1) may be missing
	if strings.Contains(string(out), "dynamically linked") {
		return "", fmt.Errorf("%s is dynamically linked; the VM needs busybox-static", p)
	}
	return p, nil
}

// Write packs the initramfs as a gzip-compressed newc cpio archive at path.
// Equivalent to: (cd root && find . | busybox cpio -o -H newc) | gzip -1 > path.
//
// It compresses with the host's gzip, when there is one, rather than
// compress/gzip: under go test -race, Go code compressing tens of megabytes
// is ten times slower.
func (fs *Initramfs) Write(path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	var (
		zw   io.WriteCloser
		wait = func() error { return nil }
	)
	if gz, lerr := exec.LookPath("gzip"); lerr == nil {
		cmd := exec.Command(gz, "-1", "-c")
		cmd.Stdout = f
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if zw, err = cmd.StdinPipe(); err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		wait = func() error {
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("gzip: %w: %s", err, stderr.String())
			}
			return nil
		}
	} else if zw, err = gzip.NewWriterLevel(f, gzip.BestSpeed); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	c := newCPIOWriter(bw)
	err = fs.pack(c)
	if err == nil {
		err = c.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if werr := wait(); err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("could not write initramfs %s: %w", path, err)
	}
	return nil
}

func (fs *Initramfs) pack(c *cpioWriter) error {
	written := map[string]bool{}
	for _, d := range []string{"bin", "dev", "etc", "lib/modules", "proc", "root", "run", "sys", "tmp", "usr/sbin", "var", "nplab/bin", "src"} {
		if err := mkdirs(c, d, written); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for init before devtmpfs is mounted.
	if err := c.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := c.File("bin/busybox", 0o755, fs.Busybox); err != nil {
		return err
	}
	if err := c.Symlink("bin/sh", "busybox"); err != nil {
		return err
	}
	files := map[string]string{
		"etc/hosts":  "127.0.0.1 localhost\n::1 localhost\n",
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	}
	for name, content := range files {
		if err := c.Bytes(name, 0o644, []byte(content)); err != nil {
			return err
		}
	}

	for _, tool := range fs.HostTools {
		files := append([]string{tool.Path}, tool.Libs...)
		for i, f := range files {
			name := strings.TrimPrefix(f, "/")
			if i == 0 {
				name = "usr/sbin/" + filepath.Base(f)
			}
			if written[name] {
				continue
			}
			if err := mkdirs(c, path.Dir(name), written); err != nil {
				return err
			}
			if err := c.File(name, 0o755, f); err != nil {
				return err
			}
			written[name] = true
		}
	}

	var modList strings.Builder
	for _, m := range fs.Modules {
		data, err := readModule(m.Path)
		if err != nil {
			return err
		}
		if err := c.Bytes("lib/modules/"+m.Name+".ko", 0o644, data); err != nil {
			return err
		}
		fmt.Fprintln(&modList, m.Name)
	}
	if err := c.Bytes("nplab/modules", 0o644, []byte(modList.String())); err != nil {
		return err
	}

	var testList strings.Builder
	for _, b := range fs.Binaries {
		name := filepath.Base(b.Path)
		if err := c.File("nplab/bin/"+name, 0o755, b.Path); err != nil {
			return err
		}
		fmt.Fprintf(&testList, "%s %s %s\n", b.ImportPath, name, filepath.ToSlash(b.Dir))
	}
	if err := c.Bytes("nplab/tests", 0o644, []byte(testList.String())); err != nil {
		return err
	}
	if fs.SrcDir != "" {
		if err := packTree(c, fs.SrcDir, "src"); err != nil {
			return err
		}
	}
	if err := c.Bytes("nplab/modprobe", 0o755, []byte(modprobeScript)); err != nil {
		return err
	}
	return c.Bytes("init", 0o755, []byte(fs.initScript()))
}

// mkdirs adds dir and its parents unless done says they are there.
func mkdirs(c *cpioWriter, dir string, done map[string]bool) error {
	if dir == "." || dir == "/" || dir == "" || done[dir] {
		return nil
	}
	if err := mkdirs(c, path.Dir(dir), done); err != nil {
		return err
	}
	done[dir] = true
	return c.Dir(dir, 0o755)
}

// packTree copies the source tree at dir into the archive under prefix,
// leaving out what go test leaves out too (directories starting with "." or
// "_", such as .git and .cache) and built test binaries.
func packTree(c *cpioWriter, dir, prefix string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := prefix + "/" + filepath.ToSlash(rel)
		base := d.Name()
		switch {
		case d.IsDir() && (strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_")):
			return filepath.SkipDir
		case d.IsDir():
			return c.Dir(name, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return c.Symlink(name, target)
		case !d.Type().IsRegular() || strings.HasSuffix(base, ".test"):
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > 8<<20 {
			return nil // a stray build output; sources and testdata are small
		}
		return c.File(name, fi.Mode().Perm(), p)
	})
}

// modprobeScript stands in for modprobe, which the kernel runs (as
// "modprobe -q -- NAME") to load a module on demand: it says which module was
// wanted, so a test failing with ENOENT on an unlisted qdisc explains itself.
const modprobeScript = `#!/bin/busybox sh
for arg in "$@"; do name=$arg; done
echo "NPLAB-VMTEST-MODPROBE $name" > /dev/console
exit 1
`

// initScript is the VM's /init, run by busybox sh as process 1.
func (fs *Initramfs) initScript() string {
	timeout := fs.TestTimeout
	if timeout == "" {
		timeout = "3m"
	}
	var env strings.Builder
	for _, kv := range fs.Env {
		fmt.Fprintf(&env, "export %s\n", shellQuoteAssignment(kv))
	}
	return `#!/bin/busybox sh
# /init of the nplab VM test (generated by internal/vmtest): set up a minimal
# system, load the kernel modules, run each test binary as root in its package
# directory, print one marker line per package, and exit qemu with the verdict.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns
ln -s /run /var/run
hostname nplab-vm

while read -r mod; do
	insmod "/lib/modules/$mod.ko" || echo "NPLAB-VMTEST-WARN insmod $mod failed"
done < /nplab/modules
echo /nplab/modprobe > /proc/sys/kernel/modprobe
ip link set lo up

export HOME=/root TMPDIR=/tmp
` + env.String() + `echo "NPLAB-VMTEST-BOOTED $(uname -r)"

status=0
while read -r pkg bin dir; do
	echo "NPLAB-VMTEST-START $pkg"
	if (cd "/src/$dir" 2>/dev/null || cd /tmp; exec "/nplab/bin/$bin" -test.v -test.timeout=` + timeout + ` </dev/null 2>&1); then
		result=PASS
	else
		result=FAIL
		status=1
	fi
	echo "NPLAB-VMTEST $pkg $result"
done < /nplab/tests

if [ "$status" = 0 ]; then echo "NPLAB-VMTEST-DONE PASS"; else echo "NPLAB-VMTEST-DONE FAIL"; fi
# isa-debug-exit at I/O port 0xf4 (244): writing v makes qemu exit with (v<<1)|1.
printf "\\00$status" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
`
}

// shellQuoteAssignment turns KEY=value into KEY='value' for sh.
func shellQuoteAssignment(kv string) string {
	k, v, _ := strings.Cut(kv, "=")
	return k + "='" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
