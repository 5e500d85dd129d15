package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Package string // the exact package, e.g. "linux-image-6.1.0-56-amd64"
	Version string // the kernel release, e.g. "6.1.0-56-amd64"
	Vmlinuz string // path of the kernel image
	ModDir  string // path of lib/modules/<Version>
}

// kernelDepRE picks the versioned image package out of
// `apt-cache depends linux-image-amd64` ("  Depends: linux-image-6.1.0-56-amd64").
var kernelDepRE = regexp.MustCompile(`^\s*Depends:\s*(linux-image-[0-9][^\s]*)\s*$`)

// KernelPackage returns the one exact kernel image package that Debian's
// meta-package linux-image-amd64 depends on. Equivalent to:
//
//	apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
//
// Resolving one name matters: `apt-get download linux-image-*` would fetch
// dozens of kernels.
func KernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w%s (is this Debian, and has apt-get update run?)", err, stderrOf(err))
	}
	pkg, err := parseKernelDepends(out)
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	return pkg, nil
}

func parseKernelDepends(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := kernelDepRE.FindStringSubmatch(sc.Text()); m != nil {
			return m[1], nil
		}
	}
	return "", errors.New("no versioned linux-image dependency in its output")
}

// FetchKernel makes sure the kernel package is downloaded and unpacked under
// cacheDir/<package>, and returns it. A complete earlier unpack is reused;
// an incomplete one (no stamp file) is redone. The download needs Debian's
// apt repositories; root is not needed. logf, if not nil, is told what is
// being done.
func FetchKernel(ctx context.Context, cacheDir string, logf func(format string, args ...any)) (*Kernel, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	pkg, err := KernelPackage(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cacheDir, pkg)
	stamp := filepath.Join(dir, ".unpacked")
	if _, err := os.Stat(stamp); err == nil {
		logf("kernel: using cached %s", dir)
		return findKernel(pkg, filepath.Join(dir, "root"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("could not create kernel cache %q: %w", dir, err)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) == 0 {
		logf("kernel: apt-get download %s (into %s)", pkg, dir)
		cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, out)
		}
		debs, _ = filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("apt-get download %s left %d .deb files in %s, want 1", pkg, len(debs), dir)
		}
	}
	// Unpack into a fresh directory, then stamp it, so an interrupted unpack
	// is never mistaken for a complete one.
	root := filepath.Join(dir, "root")
	if err := os.RemoveAll(root); err != nil {
		return nil, err
	}
	logf("kernel: dpkg-deb -x %s", filepath.Base(debs[0]))
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %w\n%s", debs[0], err, out)
	}
	k, err := findKernel(pkg, root)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(stamp, []byte(pkg+"\n"), 0o644); err != nil {
		return nil, err
	}
	return k, nil
}

// findKernel locates the image and the modules in an unpacked package.
func findKernel(pkg, root string) (*Kernel, error) {
	images, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return nil, fmt.Errorf("unpacked %s has %d boot/vmlinuz-* files, want 1", pkg, len(images))
	}
	version := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	for _, lib := range []string{"lib", "usr/lib"} { // older and merged-/usr layouts
		mods := filepath.Join(root, lib, "modules", version)
		if fi, err := os.Stat(mods); err == nil && fi.IsDir() {
			return &Kernel{Package: pkg, Version: version, Vmlinuz: images[0], ModDir: mods}, nil
		}
	}
	return nil, fmt.Errorf("unpacked %s has no lib/modules/%s", pkg, version)
}

// DefaultModules are the kernel modules the VM loads: SCTP, veth pairs, the
// bridge, and the qdiscs netsim uses (netem for delay and loss, tbf for rate
// limits). Their dependencies are added automatically (see ModuleLoadOrder).
// crc32c_generic is listed by hand: libcrc32c (needed by sctp) only names it
// as a soft dependency.
//
// The VM has no modprobe, so a module the kernel would load on demand on a
// normal system (a qdisc kind, a netfilter table) must be listed here. When
// the kernel asks for one that is not, the VM prints an
// "NPLAB-VMTEST-MODPROBE <name>" line, which the report collects.
var DefaultModules = []string{"crc32c_generic", "sctp", "veth", "bridge", "sch_netem", "sch_tbf"}

// Module is one kernel module file to load in the VM.
type Module struct {
	Name string // "sctp"
	Path string // host path of the .ko (maybe compressed: .ko.xz, .ko.zst, .ko.gz)
}

// ModuleLoadOrder returns the modules named, with what they depend on before
// them, in an order insmod can load them one by one. Dependencies come from
// the "depends=" entry of each module's .modinfo section, which is what
// depmod reads too. Modules built into the kernel (listed in
// modules.builtin) are left out. Module names compare with '-' and '_' as
// the same character, as the kernel does.
func ModuleLoadOrder(k *Kernel, names []string) ([]Module, error) {
	files := map[string]string{}
	err := filepath.WalkDir(filepath.Join(k.ModDir, "kernel"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := moduleName(d.Name()); ok && !d.IsDir() {
			files[name] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("could not list the modules of %s: %w", k.Version, err)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(k.ModDir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(b)) {
			if name, ok := moduleName(filepath.Base(line)); ok {
				builtin[name] = true
			}
		}
	}
	deps := func(name string) ([]string, error) {
		data, err := readModule(files[name])
		if err != nil {
			return nil, err
		}
		return moduleDepends(data)
	}
	order, err := loadOrder(names, func(n string) bool { _, ok := files[n]; return ok }, func(n string) bool { return builtin[n] }, deps)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Version, err)
	}
	mods := make([]Module, len(order))
	for i, n := range order {
		mods[i] = Module{Name: n, Path: files[n]}
	}
	return mods, nil
}

// loadOrder is the dependency walk of ModuleLoadOrder, apart from the file
// system: a depth-first post-order, so every module comes after what it needs.
func loadOrder(names []string, exists, builtin func(string) bool, deps func(string) ([]string, error)) ([]string, error) {
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		name = normalizeModule(name)
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		}
		if !exists(name) {
			if builtin(name) {
				state[name] = 2
				return nil
			}
			return fmt.Errorf("module %q not found (needed by %s)", name, strings.Join(append([]string{"the VM"}, chain...), " -> "))
		}
		state[name] = 1
		ds, err := deps(name)
		if err != nil {
			return fmt.Errorf("module %q: %w", name, err)
		}
		sort.Strings(ds) // a stable order whatever the .modinfo says
		for _, d := range ds {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleName turns "sch_netem.ko.xz" into "sch_netem".
func moduleName(file string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(file, ext) {
			return normalizeModule(strings.TrimSuffix(file, ext)), true
		}
	}
	return "", false
}

func normalizeModule(name string) string { return strings.ReplaceAll(name, "-", "_") }

// readModule returns a module file's ELF bytes, decompressing .ko.xz,
// .ko.zst and .ko.gz with the host's xz, zstd or gzip (insmod in busybox
// takes plain .ko files only).
func readModule(path string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".xz"):
		tool = "xz"
	case strings.HasSuffix(path, ".zst"):
		tool = "zstd"
	case strings.HasSuffix(path, ".gz"):
		tool = "gzip"
	default:
		return nil, fmt.Errorf("not a module file: %s", path)
	}
	out, err := exec.Command(tool, "-dc", path).Output()
	if err != nil {
		return nil, fmt.Errorf("%s -dc %s: %w%s (install %s to unpack compressed modules)", tool, path, err, stderrOf(err), tool)
	}
	return out, nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
