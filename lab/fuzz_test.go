package lab

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzBudget is how long one fuzz input may take: decoding, applying and
// the controllers settling. A real API server answers every request, and
// nplab validate must too.
var fuzzBudget = 2 * time.Second // ×10 under -race (race_fuzz_test.go)

// withinBudget runs f and fails with the input if it takes longer than
// fuzzBudget or returns an error.
func withinBudget(t *testing.T, input any, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	timer := time.NewTimer(fuzzBudget)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v, on the input:\n%q", err, input)
		}
	case <-timer.C:
		t.Fatalf("the input took over %v:\n%q", fuzzBudget, input)
	}
}

// manifestSeeds are the manifests of the tests and the docs.
func manifestSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, pattern := range []string{"testdata/*.yaml", "testdata/docs/*.yaml", "testdata/validate/*.yaml",
		"../scenarios/builtin/*.yaml", "../scenarios/testdata/valid/manifests/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// applyAll applies each manifest to a fresh control-plane lab in turn
// and reads the lab back after each, then closes it. The controllers keep
// working in their worker meanwhile (a 30080-replica Deployment takes
// them a while, as it takes kube-controller-manager); what must answer
// at once is the API: Apply, the reads, Close.
func applyAll(manifests ...[]byte) error {
	l, err := New(Config{Name: "fuzz", Rand: rand.New(rand.NewPCG(1, 2)), Now: func() time.Time { return time.Unix(1e9, 0) }})
	if err != nil {
		return err
	}
	for _, m := range manifests {
		for _, r := range l.Apply("fuzz.yaml", m) {
			_ = r.String()
		}
		_, _, _ = l.Pods(), l.Services(), l.ServicePorts()
	}
	return l.Close()
}

// FuzzApply: no manifest makes Apply (and the controllers after it) panic
// or run past the budget.
func FuzzApply(f *testing.F) {
	for _, s := range manifestSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		withinBudget(t, string(data), func() error { return applyAll(data) })
	})
}

// FuzzApplyUpdate: applying a, then b (an update: the three-way merge of
// the last applied manifest, b and the live object) never panics or runs
// past the budget.
func FuzzApplyUpdate(f *testing.F) {
	seeds := manifestSeeds(f)
	for i, a := range seeds {
		f.Add(a, seeds[(i+1)%len(seeds)])
		f.Add(a, a)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		withinBudget(t, [2]string{string(a), string(b)}, func() error { return applyAll(a, b) })
	})
}
