package vmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// DefaultEnv is the environment the tests get in the VM: root, SCTP and netem
// are there, so a test that would skip for lack of them fails instead (see
// package internal/testenv).
var DefaultEnv = []string{"NPLAB_REQUIRE=root,sctp,netem", "NPLAB_IN_VM=1"}

// Config is one VM test run.
type Config struct {
	ModRoot  string   // the module root; its tree is copied to /src in the VM
	CacheDir string   // kernel cache; CacheDir(ModRoot) when empty
	WorkDir  string   // where the initramfs is written (test binaries are already built)
	Modules  []string // kernel modules to load; DefaultModules when nil
	Env      []string // the tests' environment; DefaultEnv when nil
	// HostTools are host programs to copy into the VM; DefaultHostTools
	// when nil.
	HostTools []string
	Boot      BootOptions
	// Logf, if not nil, is told about each step and its duration.
	Logf func(format string, args ...any)
}

// CacheDir is where the kernel is cached: $NPLAB_VM_CACHE, or
// nplab/vmtest under the user's cache directory (os.UserCacheDir:
// $XDG_CACHE_HOME or ~/.cache on Linux; root's under sudo), never inside
// the clone, so a checkout stays small and a fresh clone reuses the
// download. Only when no user cache directory is known (no $HOME) is it
// <modRoot>/.cache/vmtest.
func CacheDir(modRoot string) string {
	if d := os.Getenv("NPLAB_VM_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "nplab", "vmtest")
	}
	return filepath.Join(modRoot, ".cache", "vmtest")
}

// Run fetches the kernel, packs the binaries into an initramfs and boots it.
// See Boot for what an error means.
func Run(ctx context.Context, cfg Config, bins []Binary) (*Report, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = CacheDir(cfg.ModRoot)
	}
	if cfg.Modules == nil {
		cfg.Modules = DefaultModules
	}
	if cfg.Env == nil {
		cfg.Env = DefaultEnv
	}
	if cfg.HostTools == nil {
		cfg.HostTools = DefaultHostTools
	}
	start := time.Now()
	k, err := FetchKernel(ctx, cfg.CacheDir, logf)
	if err != nil {
		return nil, err
	}
	logf("kernel %s ready (%v)", k.Version, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	mods, err := ModuleLoadOrder(k, cfg.Modules)
	if err != nil {
		return nil, err
	}
	busybox, err := StaticBusybox()
	if err != nil {
		return nil, err
	}
	var tools []HostTool
	for _, name := range cfg.HostTools {
		tool, err := FindHostTool(name)
		if err != nil {
			return nil, fmt.Errorf("%w (apt-get install iproute2)", err)
		}
		tools = append(tools, tool)
	}
	fs := &Initramfs{Busybox: busybox, Modules: mods, Binaries: bins, SrcDir: cfg.ModRoot, Env: cfg.Env, HostTools: tools}
	initrd := filepath.Join(cfg.WorkDir, "initrd.gz")
	if err := fs.Write(initrd); err != nil {
		return nil, err
	}
	fi, err := os.Stat(initrd)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.Name
	}
	logf("initramfs: %d binaries, modules %v, %.1f MB (%v)", len(bins), names, float64(fi.Size())/(1<<20), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	rep, err := Boot(ctx, k, initrd, cfg.Boot)
	logf("qemu: exit status %s after %v", exitCodeOf(rep), time.Since(start).Round(time.Millisecond))
	return rep, err
}

func exitCodeOf(rep *Report) string {
	if rep == nil {
		return "?"
	}
	return fmt.Sprint(rep.ExitCode)
}
