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
		return nil, unknownBuiltin(name)
	}
	return fs.ReadFile(builtinFS, path.Join("builtin", name+".yaml"))
}

// Builtin loads a built-in scenario.
func Builtin(name string) (*Scenario, error) {
	if !IsBuiltin(name) {
		return nil, unknownBuiltin(name)
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

// unknownBuiltin names the built-in lessons, the likely one first when
// name is a typo of it ("basic": did you mean basics?).
func unknownBuiltin(name string) error {
	if m := Suggest(name); m != "" {
		return fmt.Errorf("no built-in scenario %q; did you mean %s? (the built-in ones: %s)", name, m, strings.Join(Lessons, ", "))
	}
	return fmt.Errorf("no built-in scenario %q (the built-in ones: %s)", name, strings.Join(Lessons, ", "))
}

// Suggest is the built-in lesson name closest to name, as cobra suggests a
// command: within two edits, or one that name starts (or is the start
// of); "" when none is close.
func Suggest(name string) string {
	best, bestD := "", 3
	for _, l := range Lessons {
		d := editDistance(strings.ToLower(name), l)
		if len(name) >= 3 && (strings.HasPrefix(l, name) || strings.HasPrefix(name, l)) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = l, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
