package netsim

import (
	"bytes"
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

// labState is what a lab's state file records: the process that runs the
// lab and every namespace it created, so Clean can remove exactly those.
//
// The file is a stream of JSON values: a snapshot (this struct), then one
// change per line, appended as the lab goes ({"add":"<ns>"} before a
// namespace is made, {"del":"<ns>"} once it is gone). Appending is one
// write(2) whatever the lab's size, where rewriting the whole file for
// every pod made a lab's start quadratic; a crash can only lose a change
// that was never written, and a namespace is recorded before it exists.
// The snapshot is rewritten (atomically) when the changes outgrow it.
type labState struct {
	Lab        string   `json:"lab"`
	PID        int      `json:"pid"`
	Namespaces []string `json:"namespaces"`
}

// stateChange is one appended line of a state file.
type stateChange struct {
	Add string `json:"add,omitempty"`
	Del string `json:"del,omitempty"`
}

func statePath(lab string) string { return filepath.Join(stateDir, lab+".json") }

// readState reads the snapshot and replays the changes after it. A change
// cut short (it cannot be, by a kill: a write to tmpfs is whole) ends the
// replay.
func readState(lab string) (*labState, error) {
	b, err := os.ReadFile(statePath(lab))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var st labState
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("read state file %s: %w", statePath(lab), err)
	}
	for {
		var c stateChange
		if err := dec.Decode(&c); err != nil {
			break // io.EOF, or a change cut short
		}
		if c.Add != "" {
			st.addNamespace(c.Add)
		}
		if c.Del != "" {
			st.removeNamespace(c.Del)
		}
	}
	return &st, nil
}

// write replaces the state file with a snapshot, atomically (write a
// temporary file, rename).
func (st *labState) write() error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("write state of lab %q: %w", st.Lab, err)
	}
	b, err := json.Marshal(st)
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

// stateFile is a running lab's state file: the state in memory, and the
// file open for appending changes. The caller serializes its use.
type stateFile struct {
	st      labState
	live    map[string]bool // st.Namespaces as a set
	f       *os.File        // O_APPEND; nil until the first change after a snapshot
	changes int             // lines appended since the snapshot
}

func newStateFile(lab string) *stateFile {
	return &stateFile{st: labState{Lab: lab, PID: os.Getpid(), Namespaces: []string{}}, live: map[string]bool{}}
}

// snapshot rewrites the file from memory; later changes append to it.
func (s *stateFile) snapshot() error {
	s.closeFile()
	s.st.Namespaces = s.st.Namespaces[:0]
	for ns := range s.live {
		s.st.Namespaces = append(s.st.Namespaces, ns)
	}
	sort.Strings(s.st.Namespaces)
	if err := s.st.write(); err != nil {
		return err
	}
	s.changes = 0
	return nil
}

// add records namespaces about to be created; del records namespaces
// removed. Each is one append of one line per name.
func (s *stateFile) add(names ...string) error { return s.change(true, names) }
func (s *stateFile) del(names ...string) error { return s.change(false, names) }

func (s *stateFile) change(add bool, names []string) error {
	var b []byte
	for _, ns := range names {
		if s.live[ns] == add {
			continue
		}
		c := stateChange{Del: ns}
		if add {
			c = stateChange{Add: ns}
			s.live[ns] = true
		} else {
			delete(s.live, ns)
		}
		line, _ := json.Marshal(c)
		b = append(append(b, line...), '\n')
		s.changes++
	}
	if len(b) == 0 {
		return nil
	}
	// Compact when the changes outgrow the state: a long-lived lab whose
	// pods come and go keeps a small file.
	if s.changes > 256 && s.changes > 4*len(s.live) {
		return s.snapshot()
	}
	if s.f == nil {
		f, err := os.OpenFile(statePath(s.st.Lab), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("write state of lab %q: %w", s.st.Lab, err)
		}
		s.f = f
	}
	if _, err := s.f.Write(b); err != nil {
		return fmt.Errorf("write state of lab %q: %w", s.st.Lab, err)
	}
	return nil
}

func (s *stateFile) closeFile() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// remove deletes the state file (the lab is gone).
func (s *stateFile) remove() error {
	s.closeFile()
	if err := os.Remove(statePath(s.st.Lab)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
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
