//go:build race

package lab

// Under the race detector everything runs 5–10 times slower; the fuzz
// targets' seeds (which go test runs as ordinary tests) get a budget to
// match. The fuzz stage itself runs without -race, at fuzzBudget.
func init() { fuzzBudget *= 10 }
