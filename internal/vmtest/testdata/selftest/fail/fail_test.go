// Package fail is the VM harness self-test's failing package: its test fails
// on purpose, and TestVMHarnessCatchesFailure checks that the harness reports
// the package as FAIL and the whole VM run as failed.
package fail

import "testing"

func TestDeliberateFailure(t *testing.T) {
	t.Fatal("deliberate failure: the vmtest harness must report this package as FAIL")
}
