package vmtest

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// cpioWriter writes a cpio archive in the "newc" format, the one the Linux
// kernel unpacks an initramfs from (see the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst). Each entry is
// a 110-byte ASCII header ("070701" and thirteen 8-digit hex fields), the
// NUL-terminated name, padding to a multiple of 4, the data, padding again.
// The archive ends with an entry named "TRAILER!!!".
//
// Parent directories must be written before what they hold; the kernel does
// not create them. Names are written without a leading "/".
type cpioWriter struct {
	w   io.Writer
	n   int64 // bytes written so far, for the padding
	ino uint32
	err error
}

// File modes of the entry types used here (from <sys/stat.h>).
const (
	cpioDir     = 0o040000
	cpioReg     = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

func newCPIOWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: w} }

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	var n int
	n, c.err = c.w.Write(b)
	c.n += int64(n)
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) header(name string, mode uint32, size int64, nlink, rdevMajor, rdevMinor uint32) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" {
		name = "."
	}
	c.ino++
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad()
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm os.FileMode) error {
	c.header(name, cpioDir|uint32(perm.Perm()), 0, 2, 0, 0)
	return c.err
}

// Bytes adds a regular file with the given content.
func (c *cpioWriter) Bytes(name string, perm os.FileMode, data []byte) error {
	c.header(name, cpioReg|uint32(perm.Perm()), int64(len(data)), 1, 0, 0)
	c.write(data)
	c.pad()
	return c.err
}

// File adds a regular file copied from the host file src.
func (c *cpioWriter) File(name string, perm os.FileMode, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	c.header(name, cpioReg|uint32(perm.Perm()), fi.Size(), 1, 0, 0)
	if c.err != nil {
		return c.err
	}
	n, err := io.Copy(c.w, f)
	c.n += n
	if err != nil {
		c.err = err
		return err
	}
	if n != fi.Size() {
		c.err = fmt.Errorf("%s changed size while being archived", src)
		return c.err
	}
	c.pad()
	return c.err
}

// Symlink adds a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) error {
	c.header(name, cpioSymlink|0o777, int64(len(target)), 1, 0, 0)
	c.write([]byte(target))
	c.pad()
	return c.err
}

// CharDev adds a character device node (like mknod name c major minor).
func (c *cpioWriter) CharDev(name string, perm os.FileMode, major, minor uint32) error {
	c.header(name, cpioCharDev|uint32(perm.Perm()), 0, 1, major, minor)
	return c.err
}

// Close writes the trailer. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 1, 0, 0)
	return c.err
}
