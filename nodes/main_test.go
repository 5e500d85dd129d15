package nodes

import (
	"testing"

	"github.com/nplab/nplab/internal/testenv"
)

// TestMain runs the tests as root without sudo: in a user namespace when
// not root (testenv.Main), so the namespace tests run rather than skip.
func TestMain(m *testing.M) { testenv.Main(m) }
