package userns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestExplainNamesTheSetting: the kernel's refusal becomes an error naming
// the sysctl that forbids user namespaces, and saying that sudo works.
// (rootless_linux_test.go at the module root makes the kernel really
// refuse, with user.max_user_namespaces=0.)
func TestExplainNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sysctls map[string]string
		errno   syscall.Errno
		want    string // "" means: not a *DisabledError
	}{
		{"debian clone switch", map[string]string{"kernel/unprivileged_userns_clone": "0", "user/max_user_namespaces": "100"}, syscall.EPERM, "kernel.unprivileged_userns_clone = 0"},
		{"max 0", map[string]string{"user/max_user_namespaces": "0"}, syscall.ENOSPC, "user.max_user_namespaces = 0"},
		{"apparmor", map[string]string{"user/max_user_namespaces": "100", "kernel/apparmor_restrict_unprivileged_userns": "1"}, syscall.EACCES, "kernel.apparmor_restrict_unprivileged_userns = 1"},
		{"all in use", map[string]string{"user/max_user_namespaces": "5"}, syscall.ENOSPC, "user.max_user_namespaces = 5 (all in use)"},
		{"unknown", map[string]string{"user/max_user_namespaces": "5"}, syscall.EPERM, "the kernel refused"},
		{"not a refusal", nil, syscall.ENOENT, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for k, v := range tc.sysctls {
				p := filepath.Join(dir, k)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			old := sysctlDir
			sysctlDir = dir
			defer func() { sysctlDir = old }()
			err := explain(&os.PathError{Op: "fork/exec", Path: "/proc/self/exe", Err: tc.errno})
			var d *DisabledError
			if tc.want == "" {
				if errors.As(err, &d) {
					t.Fatalf("explain(%v) = %v, want no DisabledError", tc.errno, err)
				}
				return
			}
			if !errors.As(err, &d) || !errors.Is(err, tc.errno) {
				t.Fatalf("explain(%v) = %#v, want a *DisabledError wrapping it", tc.errno, err)
			}
			for _, w := range []string{tc.want, "sudo", tc.errno.Error()} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestRunDir: root keeps /run/nplab; a user gets a directory of their own,
// and inside the user namespace, the outer user's.
func TestRunDir(t *testing.T) {
	t.Setenv(EnvInside, "2")
	t.Setenv(EnvRunDir, "/run/user/1000/nplab")
	if got := RunDir(); got != "/run/user/1000/nplab" {
		t.Errorf("inside: RunDir() = %q", got)
	}
	t.Setenv(EnvInside, "")
	if os.Geteuid() == 0 {
		if got := RunDir(); got != RootRunDir {
			t.Errorf("root: RunDir() = %q", got)
		}
		return
	}
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/4242")
	if got := RunDir(); got != "/run/user/4242/nplab" {
		t.Errorf("user: RunDir() = %q", got)
	}
}
