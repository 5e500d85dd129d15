// Package examples holds runnable examples of nplab's Go API for
// instructors who prefer code to YAML. Run them with go test ./examples.
package examples
