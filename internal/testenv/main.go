package testenv

import (
	"fmt"
	"os"
	"testing"

	"github.com/nplab/nplab/internal/userns"
)

// usernsErr is why Enter could not re-execute the tests in a user
// namespace (nil when it did, or did not need to).
var usernsErr error

// Main runs a package's tests: call it from TestMain. It is Enter, then
// os.Exit(m.Run()).
func Main(m *testing.M) {
	Enter()
	os.Exit(m.Run())
}

// Enter makes the tests run as root, with or without sudo. Not root on
// Linux, it re-executes the test binary (same arguments) in a new user,
// mount and network namespace where the user is root, with a private tmpfs
// on /run (package internal/userns; as `unshare -Urmn` would, and as a
// rootless nplab runs), and exits with that run's status: every namespace
// test runs there rather than skipping. It returns in the process that is
// to run the tests: as root, in the user namespace, or where user
// namespaces are not allowed (RequireRoot then skips with the reason; under
// NPLAB_REQUIRE=userns, Enter fails instead). Call it first in TestMain,
// before flag.Parse.
func Enter() {
	switch {
	case userns.Inside():
		if err := userns.Setup(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
			os.Exit(1)
		}
	case userns.Needed():
		code, err := userns.Run(userns.Options{Args: os.Args[1:], Private: true})
		if err == nil {
			os.Exit(code)
		}
		usernsErr = err
		if Required("userns") {
			fmt.Fprintf(os.Stderr, "testenv: user namespaces are required here (NPLAB_REQUIRE=%s) but: %v\n", os.Getenv("NPLAB_REQUIRE"), err)
			os.Exit(1)
		}
	}
}

// InUserNamespace reports whether the tests run as root of a user
// namespace (Enter re-executed them), not as the machine's root.
func InUserNamespace() bool { return userns.Inside() }
