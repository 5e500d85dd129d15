package vmtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path"
	"strings"
)

// DefaultHostTools are host programs copied into the VM next to busybox:
// iproute2's ip and tc, which tests and students use (`ip netns list`,
// `tc qdisc show`) and whose busybox stand-ins lack netns and netem.
var DefaultHostTools = []string{"ip", "tc"}

// HostTool is a dynamically linked host program with the shared libraries it
// loads, all copied into the VM at their host paths.
type HostTool struct {
	Path string   // e.g. /usr/sbin/ip
	Libs []string // e.g. /lib/x86_64-linux-gnu/libmnl.so.0, /lib64/ld-linux-x86-64.so.2
}

// FindHostTool finds name on the host (also in /usr/sbin and /sbin, which a
// non-root PATH may lack) and lists its shared libraries with ldd.
func FindHostTool(name string) (HostTool, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if p2, err2 := exec.LookPath(path.Join(dir, name)); err2 == nil {
				p, err = p2, nil
				break
			}
		}
	}
	if err != nil {
		return HostTool{}, fmt.Errorf("%s not found on the host: %w", name, err)
	}
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return HostTool{Path: p}, nil
		}
		return HostTool{}, fmt.Errorf("ldd %s: %w%s", p, err, stderrOf(err))
	}
	return HostTool{Path: p, Libs: parseLdd(out)}, nil
}

// parseLdd returns the absolute library paths in ldd's output:
//
//	libmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x00007f81b5be1000)
//	/lib64/ld-linux-x86-64.so.2 (0x00007f81b5d67000)
func parseLdd(out []byte) []string {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if _, after, ok := strings.Cut(line, "=> "); ok {
			line = after
		}
		if p, _, ok := strings.Cut(line, " (0x"); ok && strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	return libs
}
