package vmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// vmEnabled decides whether a VM test runs here: only when asked, with
// NPLAB_VM=1 (as .ci/run does), and then anything missing is a failure. A
// plain `go test ./...` skips it, saying how to run it: it downloads a
// Debian kernel (hundreds of MB, once) and takes minutes under emulation.
func vmEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("NPLAB_VM") != "1" {
		t.Skip("skipping the qemu VM test (minutes, and a Debian kernel download): run it with NPLAB_VM=1 go test ./internal/vmtest -run TestVM -v")
	}
	for _, tool := range []struct{ bin, apt string }{
		{QemuBinary, "qemu-system-x86"},
		{"apt-cache", "apt"},
		{"dpkg-deb", "dpkg"},
		{"busybox", "busybox-static"},
	} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			msg := fmt.Sprintf("%s not found (apt-get install %s)", tool.bin, tool.apt)
			t.Fatalf("NPLAB_VM=1 but %s", msg)
		}
	}
}

// vmSetup returns a context bounded by the test's deadline, the module root
// and a work directory.
func vmSetup(t *testing.T) (context.Context, string, string) {
	t.Helper()
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		t.Cleanup(cancel)
	}
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if os.Getenv("NPLAB_VM_KEEP") == "1" {
		if work, err = os.MkdirTemp("", "nplab-vmtest-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("NPLAB_VM_KEEP=1: keeping the binaries and initramfs in %s", work)
	}
	return ctx, root, work
}

func vmConfig(t *testing.T, root, work string) Config {
	timeout := 10 * time.Minute
	if s := os.Getenv("NPLAB_VM_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("NPLAB_VM_TIMEOUT=%q: %v", s, err)
		}
		timeout = d
	}
	return Config{
		ModRoot: root,
		WorkDir: work,
		Boot: BootOptions{
			Timeout: timeout,
			Console: func(line string) { t.Logf("vm| %s", line) },
		},
		Logf: func(format string, args ...any) { t.Logf("vmtest: "+format, args...) },
	}
}

func build(ctx context.Context, t *testing.T, root, work string, pkgs []Package) []Binary {
	t.Helper()
	start := time.Now()
	bins, errs := BuildTestBinaries(ctx, root, pkgs, work)
	for _, err := range errs {
		t.Error(err)
	}
	t.Logf("vmtest: built %d static test binaries (%d failed) in %v", len(bins), len(errs), time.Since(start).Round(time.Millisecond))
	return bins
}

// TestVM runs every package's tests as root in a qemu VM with a stock Debian
// kernel, where SCTP and netem exist and are required (NPLAB_REQUIRE).
func TestVM(t *testing.T) {
	vmEnabled(t)
	ctx, root, work := vmSetup(t)
	self := reflect.TypeFor[Report]().PkgPath()
	patterns := []string{"./..."}
	if s := os.Getenv("NPLAB_VM_PKGS"); s != "" {
		patterns = strings.Fields(s)
		t.Logf("vmtest: NPLAB_VM_PKGS: testing only %v", patterns)
	}
	pkgs, err := ListTestPackages(ctx, root, patterns, self)
	if err != nil {
		t.Fatal(err)
	}
	bins := build(ctx, t, root, work, pkgs)
	if len(bins) == 0 {
		t.Fatal("no test binaries to run")
	}
	rep, err := Run(ctx, vmConfig(t, root, work), bins)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, b := range bins {
		want = append(want, b.ImportPath)
		res, ok := rep.Result(b.ImportPath)
		verdict := "NO RESULT"
		if ok && res.Passed {
			verdict = "PASS"
		} else if ok {
			verdict = "FAIL"
		}
		t.Logf("vmtest: %-4s %s", verdict, b.ImportPath)
	}
	for _, w := range rep.Warn {
		t.Errorf("VM warning: %s", w)
	}
	if len(rep.Modprobe) > 0 {
		t.Logf("vmtest: the kernel asked for modules the VM does not load: %v (add them to DefaultModules if a test needs them)", rep.Modprobe)
	}
	if err := rep.Check(want); err != nil {
		t.Error(err)
	}
}

// TestVMHarnessCatchesFailure boots one VM with a passing package (an SCTP
// association and a netem qdisc) and a deliberately failing one, and checks
// that the harness reports each correctly and the whole run as failed.
func TestVMHarnessCatchesFailure(t *testing.T) {
	vmEnabled(t)
	ctx, root, work := vmSetup(t)
	pkgs, err := ListTestPackages(ctx, root, []string{"./internal/vmtest/testdata/selftest/pass", "./internal/vmtest/testdata/selftest/fail"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 {
		t.Fatalf("self-test packages: got %v, want pass and fail", pkgs)
	}
	bins := build(ctx, t, root, work, pkgs)
	if len(bins) != 2 {
		t.FailNow()
	}
	var console strings.Builder
	cfg := vmConfig(t, root, work)
	log := cfg.Boot.Console
	cfg.Boot.Console = func(line string) { log(line); console.WriteString(line + "\n") }
	rep, err := Run(ctx, cfg, bins)
	if err != nil {
		t.Fatal(err)
	}
	passPkg, failPkg := pkgs[0].ImportPath, pkgs[1].ImportPath
	if res, ok := rep.Result(passPkg); !ok || !res.Passed {
		t.Errorf("%s: got %+v (found %v), want PASS", passPkg, res, ok)
	}
	if res, ok := rep.Result(failPkg); !ok || res.Passed {
		t.Errorf("%s: got %+v (found %v), want FAIL", failPkg, res, ok)
	}
	if !rep.Done || rep.Passed {
		t.Errorf("run: Done=%v Passed=%v, want a finished, failed run", rep.Done, rep.Passed)
	}
	if rep.ExitCode != 3 {
		t.Errorf("qemu exit status %d, want 3 (guest failure through isa-debug-exit)", rep.ExitCode)
	}
	if err := rep.Check([]string{passPkg, failPkg}); err == nil || !strings.Contains(err.Error(), failPkg+": FAIL") {
		t.Errorf("Check = %v, want an error naming %s", err, failPkg)
	}
	for _, name := range []string{"--- PASS: TestSCTPAssociationInVM", "--- PASS: TestNetemQdiscInVM", "--- PASS: TestIproute2InVM", "--- PASS: TestSCTPBetweenNamespacesInVM", "--- FAIL: TestDeliberateFailure"} {
		if !strings.Contains(console.String(), name) {
			t.Errorf("console lacks %q", name)
		}
	}
	if len(rep.Warn) > 0 {
		t.Errorf("VM warnings: %v", rep.Warn)
	}
	if !t.Failed() {
		t.Logf("vmtest: the harness reported %s PASS and %s FAIL, qemu exit %d, kernel %s", passPkg, failPkg, rep.ExitCode, rep.Kernel)
	}
}

func TestParseConsole(t *testing.T) {
	console := "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\n" +
		"NPLAB-VMTEST-BOOTED 6.1.0-56-amd64\r\n" +
		"=== RUN   TestA\r\n--- PASS: TestA (0.00s)\r\nPASS\r\n" +
		"NPLAB-VMTEST example.com/m/a PASS\r\n" +
		"NPLAB-VMTEST-START example.com/m/b\r\n" +
		"--- FAIL: TestB (0.00s)\r\nFAIL[   12.3] random: crng initNPLAB-VMTEST example.com/m/b FAIL\r\n" +
		"NPLAB-VMTEST-WARN insmod sch_netem failed\r\n" +
		"NPLAB-VMTEST-MODPROBE sch_htb\r\n" +
		"NPLAB-VMTEST-DONE FAIL\r\n"
	var lines []string
	rep, err := ParseConsole(strings.NewReader(console), func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	want := &Report{
		Kernel:   "6.1.0-56-amd64",
		Results:  []Result{{"example.com/m/a", true}, {"example.com/m/b", false}},
		Done:     true,
		Passed:   false,
		Warn:     []string{"insmod sch_netem failed"},
		Modprobe: []string{"sch_htb"},
	}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("ParseConsole:\n got %+v\nwant %+v", rep, want)
	}
	if lines[0] != "SeaBIOS (version 1.16.2)" {
		t.Errorf("first line not cleaned: %q", lines[0])
	}
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n\x1b") {
			t.Errorf("line not cleaned: %q", l)
		}
	}
}

func TestReportCheck(t *testing.T) {
	pass := Report{Results: []Result{{"a", true}, {"b", true}}, Done: true, Passed: true, ExitCode: 1}
	for _, tc := range []struct {
		name  string
		mod   func(*Report)
		wants string // "" for no error
	}{
		{"all pass", func(*Report) {}, ""},
		{"one fails", func(r *Report) { r.Results[1].Passed = false; r.Passed = false; r.ExitCode = 3 }, "b: FAIL"},
		{"crashed before b", func(r *Report) { r.Results = r.Results[:1]; r.Done = false; r.ExitCode = 0 }, "b: no result"},
		{"no debug exit", func(r *Report) { r.ExitCode = 0 }, "qemu exited with status 0"},
	} {
		r := pass
		r.Results = append([]Result(nil), pass.Results...)
		tc.mod(&r)
		err := r.Check([]string{"a", "b"})
		switch {
		case tc.wants == "" && err != nil:
			t.Errorf("%s: Check = %v, want nil", tc.name, err)
		case tc.wants != "" && (err == nil || !strings.Contains(err.Error(), tc.wants)):
			t.Errorf("%s: Check = %v, want an error containing %q", tc.name, err, tc.wants)
		}
	}
}

func TestLoadOrder(t *testing.T) {
	graph := map[string][]string{
		"sctp":           {"libcrc32c", "udp_tunnel", "ip6_udp_tunnel"},
		"libcrc32c":      nil,
		"udp_tunnel":     nil,
		"ip6_udp_tunnel": nil,
		"crc32c_generic": nil,
		"bridge":         {"stp", "llc", "ipv6"}, // ipv6 is built in
		"stp":            {"llc"},
		"llc":            nil,
		"veth":           nil,
		"loop_a":         {"loop_b"},
		"loop_b":         {"loop_a"},
	}
	exists := func(n string) bool { _, ok := graph[n]; return ok }
	builtin := func(n string) bool { return n == "ipv6" }
	deps := func(n string) ([]string, error) { return graph[n], nil }

	got, err := loadOrder([]string{"crc32c-generic", "sctp", "veth", "bridge"}, exists, builtin, deps)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"crc32c_generic", "ip6_udp_tunnel", "libcrc32c", "udp_tunnel", "sctp", "veth", "llc", "stp", "bridge"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loadOrder:\n got %v\nwant %v", got, want)
	}
	if _, err := loadOrder([]string{"loop_a"}, exists, builtin, deps); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: err = %v", err)
	}
	if _, err := loadOrder([]string{"nope"}, exists, builtin, deps); err == nil || !strings.Contains(err.Error(), `"nope" not found`) {
		t.Errorf("missing module: err = %v", err)
	}
	failing := func(string) ([]string, error) { return nil, errors.New("bad ELF") }
	if _, err := loadOrder([]string{"veth"}, exists, builtin, failing); err == nil || !strings.Contains(err.Error(), "bad ELF") {
		t.Errorf("unreadable module: err = %v", err)
	}
}

func TestParseKernelDepends(t *testing.T) {
	out := "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n  Depends: linux-image-6.1.0-55-amd64\n"
	got, err := parseKernelDepends([]byte(out))
	if err != nil || got != "linux-image-6.1.0-56-amd64" {
		t.Errorf("parseKernelDepends = %q, %v", got, err)
	}
	if _, err := parseKernelDepends([]byte("linux-image-amd64\n")); err == nil {
		t.Error("parseKernelDepends of nothing: no error")
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd0)\n" +
		"\tlibmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x00007f81b5be1000)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f81b5d67000)\n"
	got := parseLdd([]byte(out))
	want := []string{"/lib/x86_64-linux-gnu/libmnl.so.0", "/lib64/ld-linux-x86-64.so.2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLdd = %q, want %q", got, want)
	}
}

// TestCacheDirOutsideTheClone: the kernel (hundreds of MB) is cached under
// the user's cache directory, not in the clone; NPLAB_VM_CACHE wins.
func TestCacheDirOutsideTheClone(t *testing.T) {
	t.Setenv("NPLAB_VM_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/home/student/.cache")
	t.Setenv("HOME", "/home/student")
	if got, want := CacheDir("/home/student/nplab"), "/home/student/.cache/nplab/vmtest"; runtime.GOOS == "linux" && got != want {
		t.Errorf("CacheDir = %q, want %q", got, want)
	}
	t.Setenv("NPLAB_VM_CACHE", "/tmp/k")
	if got := CacheDir("/home/student/nplab"); got != "/tmp/k" {
		t.Errorf("with NPLAB_VM_CACHE=/tmp/k, CacheDir = %q", got)
	}
}

// TestSkipsVMUnlessAsked: without NPLAB_VM=1 the VM test skips, saying how to
// run it, whatever is installed.
func TestSkipsVMUnlessAsked(t *testing.T) {
	t.Setenv("NPLAB_VM", "")
	var skipped string
	ok := t.Run("vm", func(t *testing.T) {
		defer func() { skipped = fmt.Sprint(t.Skipped()) }()
		vmEnabled(t)
	})
	if !ok || skipped != "true" {
		t.Errorf("vmEnabled without NPLAB_VM=1: skipped=%s, passed=%v; want a skip", skipped, ok)
	}
}
