package scenarios

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// builtinFS holds the built-in lessons, one file each, every manifest
// inline so that `nplab show NAME` prints a file that runs on its own.
//
//go:embed builtin/*.yaml
var builtinFS embed.FS

// Lessons are the built-in scenarios in teaching order.
var Lessons = []string{
	"basics", "own-port", "collision", "bands", "protocols",
	"readiness", "traffic-policy", "load-balancer", "every-node", "docs-examples",
}

// IsBuiltin reports whether name is a built-in scenario.
func IsBuiltin(name string) bool { return slices.Contains(Lessons, name) }

// BuiltinSource is the file of a built-in scenario, as `nplab show` prints it.
func BuiltinSource(name string) ([]byte, error) {
	if !IsBuiltin(name) {
		return nil, fmt.Errorf("no built-in scenario %q (the built-in ones: %s)", name, strings.Join(Lessons, ", "))
	}
	return fs.ReadFile(builtinFS, path.Join("builtin", name+".yaml"))
}

// Builtin loads a built-in scenario.
func Builtin(name string) (*Scenario, error) {
	if !IsBuiltin(name) {
		return nil, fmt.Errorf("no built-in scenario %q (the built-in ones: %s)", name, strings.Join(Lessons, ", "))
	}
	return LoadFS(builtinFS, path.Join("builtin", name+".yaml"))
}

// Summary is a line of `nplab list`.
type Summary struct {
	Name, Title, Summary string
}

// List returns the built-in scenarios' names and summaries, in teaching
// order. A built-in scenario that does not load is a bug; its line says
// so.
func List() []Summary {
	var out []Summary
	for _, name := range Lessons {
		sc, err := Builtin(name)
		if err != nil {
			out = append(out, Summary{Name: name, Summary: "(broken: " + err.Error() + ")"})
			continue
		}
		out = append(out, Summary{Name: sc.Name, Title: sc.Title, Summary: sc.Summary})
	}
	return out
}
