package vmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCPIORoundTrip writes an archive with every entry type and unpacks it
// with busybox cpio, an independent reader of the newc format.
func TestCPIORoundTrip(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed (apt-get install busybox-static)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "big")
	big := bytes.Repeat([]byte("0123456789abcdef"), 4097) // not a multiple of 4 after the odd byte
	big = append(big, 'x')
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	steps := []error{
		c.Dir("d", 0o755),
		c.Dir("/d/e", 0o700),
		c.Bytes("d/a", 0o644, []byte("abc")),
		c.Bytes("d/e/empty", 0o600, nil),
		c.File("d/big", 0o755, src),
		c.Symlink("d/link", "a"),
		c.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}

	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(busybox, "cpio", "-i", "-d")
	cmd.Dir = out
	cmd.Stdin = &buf
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("busybox cpio -i: %v\n%s", err, b)
	}
	for name, want := range map[string][]byte{"d/a": []byte("abc"), "d/e/empty": {}, "d/big": big} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, want %d", name, len(got), len(want))
		}
	}
	if target, err := os.Readlink(filepath.Join(out, "d/link")); err != nil || target != "a" {
		t.Errorf("d/link -> %q, %v; want a", target, err)
	}
	for name, want := range map[string]os.FileMode{"d/e": os.ModeDir | 0o700, "d/big": 0o755} {
		fi, err := os.Lstat(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}
