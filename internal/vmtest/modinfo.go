package vmtest

import (
	"bytes"
	"debug/elf"
	"fmt"
	"strings"
)

// moduleDepends returns the modules a kernel module needs loaded first: the
// comma-separated "depends=" entry of its .modinfo ELF section (a list of
// NUL-terminated key=value strings, as `modinfo -F depends` prints it).
func moduleDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	var deps []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		v, ok := strings.CutPrefix(string(kv), "depends=")
		if !ok {
			continue
		}
		for _, d := range strings.Split(v, ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, d)
			}
		}
	}
	return deps, nil
}
