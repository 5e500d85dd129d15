//go:build linux

package userns

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// DisabledError says that the kernel refused nplab an unprivileged user
// namespace, and which setting forbids it.
type DisabledError struct {
	// Setting is the sysctl that forbids it
	// ("user.max_user_namespaces"), or "" when none of the known ones
	// does.
	Setting string
	// Value is the setting's value ("0").
	Value string
	// Err is the kernel's answer (EPERM, ENOSPC, EACCES...).
	Err error
}

func (e *DisabledError) Error() string {
	var why, fix string
	switch e.Setting {
	case "kernel.unprivileged_userns_clone":
		why = "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone = " + e.Value + ")"
		fix = "sudo sysctl -w kernel.unprivileged_userns_clone=1"
	case "user.max_user_namespaces":
		why = "user namespaces are disabled (sysctl user.max_user_namespaces = " + e.Value + ")"
		fix = "sudo sysctl -w user.max_user_namespaces=15000"
	case "kernel.apparmor_restrict_unprivileged_userns":
		why = "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns = " + e.Value + ")"
		fix = "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for nplab allowing userns"
	default:
		why = "the kernel refused to create one"
		fix = "check the sysctls kernel.unprivileged_userns_clone, user.max_user_namespaces and kernel.apparmor_restrict_unprivileged_userns"
	}
	return fmt.Sprintf("nplab runs without root in an unprivileged user namespace, and this system does not allow one: %s: %v.\n"+
		"Run nplab with sudo instead (as root it needs no user namespace), or allow them: %s", why, e.Err, fix)
}

func (e *DisabledError) Unwrap() error { return e.Err }

// sysctlDir is /proc/sys; tests point it at a directory of their own.
var sysctlDir = "/proc/sys"

func readSysctl(name string) (string, bool) {
	b, err := os.ReadFile(sysctlDir + "/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// explain turns the error of starting the re-executed process into a
// *DisabledError when the kernel refused the user namespace (EPERM,
// EACCES, ENOSPC, EUSERS from clone or from writing its uid/gid map),
// naming the first setting that forbids it.
func explain(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	switch errno {
	case syscall.EPERM, syscall.EACCES, syscall.ENOSPC, syscall.EUSERS:
	default:
		return fmt.Errorf("rootless mode: start nplab in a user namespace: %w", err)
	}
	d := &DisabledError{Err: errno}
	if v, ok := readSysctl("kernel.unprivileged_userns_clone"); ok && v == "0" {
		d.Setting, d.Value = "kernel.unprivileged_userns_clone", v
	} else if v, ok := readSysctl("user.max_user_namespaces"); ok && v == "0" {
		d.Setting, d.Value = "user.max_user_namespaces", v
	} else if v, ok := readSysctl("kernel.apparmor_restrict_unprivileged_userns"); ok && v != "0" {
		d.Setting, d.Value = "kernel.apparmor_restrict_unprivileged_userns", v
	} else if errno == syscall.ENOSPC || errno == syscall.EUSERS {
		v, _ := readSysctl("user.max_user_namespaces")
		d.Setting, d.Value = "user.max_user_namespaces", v+" (all in use)"
	}
	return d
}
