// Package testenv holds the helpers every nplab test uses to decide whether it
// can run here: root, kernel SCTP, the netem qdisc.
//
// Tests need no sudo: a package with namespace tests calls Main from its
// TestMain, which (not root, on Linux) re-executes its tests in a user
// namespace where they run as root ("userns" in NPLAB_REQUIRE makes a
// failure of that a test failure).
//
// A test that cannot run skips with the missing capability in the message
// ("requires root", "kernel lacks SCTP: ..."). Where a capability must be
// present — in CI (root) and in the qemu VM test (SCTP, netem) — the
// environment variable NPLAB_REQUIRE lists it (comma separated: "root",
// "sctp", "netem") and the skip becomes a failure, so a missing feature can
// never pass silently.
package testenv

import (
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Required reports whether feature is listed in NPLAB_REQUIRE.
func Required(feature string) bool {
	for _, f := range strings.Split(os.Getenv("NPLAB_REQUIRE"), ",") {
		if strings.TrimSpace(f) == feature {
			return true
		}
	}
	return false
}

// Need skips t with "<reason>" when err is non-nil, or fails it when
// NPLAB_REQUIRE lists feature.
func Need(t testing.TB, feature string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if Required(feature) {
		t.Fatalf("%s is required here (NPLAB_REQUIRE=%s) but missing: %v", feature, os.Getenv("NPLAB_REQUIRE"), err)
	}
	t.Skipf("skipping: %v", err)
}

// RequireRoot skips t unless it runs as root: the machine's, or root of the
// user namespace Enter (Main) re-executed the tests in. So it says
// "requires root or unprivileged user namespaces"; it fails instead under
// NPLAB_REQUIRE=root or NPLAB_REQUIRE=userns.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	why := "not root, and the package's TestMain did not enter a user namespace (testenv.Main)"
	if usernsErr != nil {
		why = usernsErr.Error()
	}
	err := errors.New("requires root or unprivileged user namespaces (" + why + "; or run: sudo go test ./...)")
	if Required("userns") {
		t.Fatalf("user namespaces are required here (NPLAB_REQUIRE=%s) but missing: %v", os.Getenv("NPLAB_REQUIRE"), err)
	}
	Need(t, "root", err)
}

var (
	sctpOnce sync.Once
	sctpErr  error
)

// SCTPError returns nil when the running kernel can open an SCTP socket, else
// why not ("kernel lacks SCTP: protocol not supported").
func SCTPError() error {
	sctpOnce.Do(func() {
		// IPPROTO_SCTP is 132 everywhere; package syscall names it only
		// on some systems (not on Windows), so the module vets there too.
		const ipprotoSCTP = 132
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, ipprotoSCTP)
		if err != nil {
			sctpErr = errors.New("kernel lacks SCTP: " + err.Error())
			return
		}
		syscall.Close(fd)
	})
	return sctpErr
}

// RequireSCTP skips t when the kernel has no SCTP (this fails instead under
// NPLAB_REQUIRE=sctp, as in the VM test).
func RequireSCTP(t testing.TB) {
	t.Helper()
	Need(t, "sctp", SCTPError())
}

// InVM reports whether the tests run inside the qemu VM test (package
// internal/vmtest sets NPLAB_IN_VM=1). The VM is there for what the host
// kernel lacks (SCTP, netem) and emulates its CPU: a test whose point is a
// wall-clock budget, or a breadth the host run already covers, keeps that
// part to the host.
func InVM() bool { return os.Getenv("NPLAB_IN_VM") == "1" }
