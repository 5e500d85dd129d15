package netsim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// stateDir holds one state file per lab, "<lab>.json". Tests point it at a
// temporary directory so that CleanAll only sees their own labs.
var stateDir = "/run/nplab"

// labState is what a lab's state file records: every namespace and veth the
// lab created, updated as it goes, so Clean can remove exactly those.
type labState struct {
	Lab        string      `json:"lab"`
	PID        int         `json:"pid"`
	Namespaces []string    `json:"namespaces"`
	Links      []stateLink `json:"links"`
}

// stateLink is one veth pair, named by one of its ends.
type stateLink struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Dev       string `json:"dev"`
}

func statePath(lab string) string { return filepath.Join(stateDir, lab+".json") }

func readState(lab string) (*labState, error) {
	b, err := os.ReadFile(statePath(lab))
	if err != nil {
		return nil, err
	}
	var st labState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read state file %s: %w", statePath(lab), err)
	}
	return &st, nil
}

// write replaces the state file atomically (write a temporary file, rename).
func (st *labState) write() error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("write state of lab %q: %w", st.Lab, err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write state of lab %q: %w", st.Lab, err)
	}
	tmp, err := os.CreateTemp(stateDir, "."+st.Lab+".json.*")
	if err != nil {
		return fmt.Errorf("write state of lab %q: %w", st.Lab, err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), statePath(st.Lab))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state of lab %q: %w", st.Lab, werr)
	}
	return nil
}

func (st *labState) addNamespace(ns string) {
	if !slices.Contains(st.Namespaces, ns) {
		st.Namespaces = append(st.Namespaces, ns)
	}
}

func (st *labState) removeNamespace(ns string) {
	st.Namespaces = slices.DeleteFunc(st.Namespaces, func(s string) bool { return s == ns })
}

func (st *labState) addLink(l stateLink) {
	st.Links = append(st.Links, l)
}

func (st *labState) removeLink(name string) {
	st.Links = slices.DeleteFunc(st.Links, func(l stateLink) bool { return l.Name == name })
}

// Labs lists the labs that have a state file (running, or killed and not yet
// cleaned), sorted by name.
// Equivalent to: ls /run/nplab
func Labs() ([]string, error) {
	entries, err := os.ReadDir(stateDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list labs: %w", err)
	}
	var labs []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || ValidateLabName(name) != nil {
			continue
		}
		labs = append(labs, name)
	}
	sort.Strings(labs)
	return labs, nil
}
