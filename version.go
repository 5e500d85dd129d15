package main

import (
	"fmt"
	"runtime/debug"
)

// version is what `nplab --version` prints: the module version and the
// commit it was built from, as the Go toolchain recorded them.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "nplab (no build information)"
	}
	return versionOf(info)
}

// versionOf formats the build information. A binary built by `go install
// ...@v1.2.3` has a version; one built with `go build` or `go install` in a
// git clone has a pseudo-version (or "(devel)") and the commit. Go records
// no commit for `go run`, `go test`, a build with -buildvcs=false, or a
// build in a git worktree (whose .git is a file, which Go does not take
// for a repository): then it says so, rather than suggest go build fixes it.
func versionOf(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	commit := "commit unknown (Go records it only for go build or go install in a git clone; not for go run, go test or -buildvcs=false)"
	if rev != "" {
		commit = "commit " + rev
		if when != "" {
			commit += " (" + when + ")"
		}
		if modified {
			commit += " with uncommitted changes"
		}
	}
	return fmt.Sprintf("nplab %s, %s, %s", v, commit, info.GoVersion)
}
