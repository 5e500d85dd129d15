package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDecode: no input makes Decode panic or take over 2s, and every
// error is an *Error.
func FuzzDecode(f *testing.F) {
	for _, pattern := range []string{"../testdata/*.yaml", "../testdata/docs/*.yaml", "../testdata/validate/*.yaml",
		"../../scenarios/testdata/valid/manifests/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("a: &x [*x, *x]\nb: &y [*x, *x]\n"))
	f.Add([]byte("kind: Service\n---\n---\nkind: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan []error, 1)
		go func() {
			_, errs := Decode("fuzz.yaml", data)
			done <- errs
		}()
		select {
		case errs := <-done:
			for _, err := range errs {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %T %v is not a *manifest.Error", err, err)
				}
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Decode took over 2s on %q", data)
		}
	})
}
