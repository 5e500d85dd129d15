package main

import (
	"fmt"
	"runtime/debug"
)

// version is what `nplab --version` prints: the module version and the
// commit it was built from, as the Go toolchain recorded them. A binary
// built by `go install ...@v1.2.3` has a version; one built with `go build`
// in a clone has "(devel)" (or a pseudo-version) and the commit; `go run`
// records no commit, and says so.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "nplab (no build information)"
	}
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
	commit := "commit unknown (go run and go test record none; build with go build or go install)"
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
