package store

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPutGetDeleteReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if Exists(dir) {
		t.Fatal("an empty store exists")
	}
	for i, k := range []string{"/registry/services/specs/default/web", "/registry/pods/default/a", "/registry/pods/default/b"} {
		rev, err := s.Put(k, []byte(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil || rev != int64(i+1) {
			t.Fatalf("Put(%s) = %d, %v; want revision %d", k, rev, err, i+1)
		}
	}
	if err := s.Delete("/registry/pods/default/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("/registry/pods/default/nope"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("no-slash", nil); err == nil {
		t.Error("a key without a leading / was accepted")
	}
	if s.Revision() != 4 {
		t.Errorf("revision %d after 3 puts and 1 delete, want 4 (a delete of a missing key does not count)", s.Revision())
	}
	s.Close()
	if !Exists(dir) {
		t.Fatal("Exists is false after writes")
	}

	s2 := open(t, dir, Options{})
	if s2.Revision() != 4 || s2.Torn() != 0 {
		t.Errorf("reopened: revision %d torn %d, want 4 and 0", s2.Revision(), s2.Torn())
	}
	got := s2.List("/registry/pods/")
	if len(got) != 1 || got[0].Key != "/registry/pods/default/a" || string(got[0].Value) != `{"n":1}` || got[0].Revision != 2 {
		t.Errorf("List(/registry/pods/) = %+v", got)
	}
	if v, ok := s2.Get("/registry/services/specs/default/web"); !ok || string(v) != `{"n":0}` {
		t.Errorf("Get = %q %v", v, ok)
	}
	if rev, _ := s2.Put("/x", nil); rev != 5 {
		t.Errorf("next revision %d, want 5", rev)
	}
}

// TestTornTail cuts the log at every byte of its last record, and flips
// each byte of it: Open keeps every earlier record and drops that one.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	for i := 0; i < 3; i++ {
		if _, err := s.Put(fmt.Sprintf("/k/%d", i), bytes.Repeat([]byte{'v'}, 40)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, logName)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := int(recordLen("/k/2", bytes.Repeat([]byte{'v'}, 40)))
	start := len(whole) - last
	check := func(what string, data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("%s: Open: %v", what, err)
		}
		defer s.Close()
		if s.Len() != 2 || s.Revision() != 2 {
			t.Fatalf("%s: %d keys at revision %d, want the 2 whole records", what, s.Len(), s.Revision())
		}
		if _, ok := s.Get("/k/1"); !ok {
			t.Fatalf("%s: /k/1 lost", what)
		}
		// The store goes on from there, and a reopen sees the new write.
		if rev, err := s.Put("/k/new", []byte("x")); err != nil || rev != 3 {
			t.Fatalf("%s: Put after repair = %d, %v", what, rev, err)
		}
		s.Close()
		s2, err := Open(dir, Options{})
		if err != nil || s2.Len() != 3 || s2.Torn() != 0 {
			t.Fatalf("%s: reopen after repair: %v, %d keys, torn %d", what, err, s2.Len(), s2.Torn())
		}
		s2.Close()
	}
	for cut := start; cut < len(whole); cut++ {
		check(fmt.Sprintf("cut at %d", cut), append([]byte(nil), whole[:cut]...))
	}
	for i := start; i < len(whole); i++ {
		b := append([]byte(nil), whole...)
		b[i] ^= 0x5a
		check(fmt.Sprintf("byte %d flipped", i), b)
	}
}

// TestResetEmpty: a new store reset before its first write (a fresh lab)
// keeps what it is given next.
func TestResetEmpty(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/a", "/b"} {
		if _, err := s.Put(k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s2 := open(t, dir, Options{})
	if s2.Len() != 2 || s2.Revision() != 2 || s2.Torn() != 0 {
		t.Errorf("after Reset and 2 puts: %d keys, revision %d, torn %d", s2.Len(), s2.Revision(), s2.Torn())
	}
}

func TestCompactionKeepsKeysAndRevision(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{CompactBytes: 1024})
	for i := 0; i < 500; i++ {
		if _, err := s.Put(fmt.Sprintf("/k/%d", i%7), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("/k/6"); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, logName))
	if fi.Size() > 4096 {
		t.Errorf("log is %d bytes after compaction of 6 small keys", fi.Size())
	}
	s.Close()
	s2 := open(t, dir, Options{})
	if s2.Revision() != 501 || s2.Len() != 6 {
		t.Errorf("after compaction: revision %d, %d keys; want 501, 6", s2.Revision(), s2.Len())
	}
	if v, _ := s2.Get("/k/0"); string(v) != "497" {
		t.Errorf("/k/0 = %q, want 497", v)
	}
	if err := s2.Reset(); err != nil {
		t.Fatal(err)
	}
	if s2.Len() != 0 || s2.Revision() != 501 {
		t.Errorf("after Reset: %d keys, revision %d", s2.Len(), s2.Revision())
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Remove left %s", dir)
	}
}

func TestDir(t *testing.T) {
	if _, err := Dir("../x"); err == nil {
		t.Error("Dir(../x) accepted")
	}
	t.Setenv(StateDirEnv, "")
	d, err := Dir("mylab")
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && d != "/var/lib/nplab/mylab" {
		t.Errorf("root's Dir = %s", d)
	}
	if strings.HasPrefix(d, "/run") {
		t.Errorf("Dir = %s: /run does not survive a reboot", d)
	}
	t.Setenv(StateDirEnv, "/srv/labs")
	if d, _ := Dir("mylab"); d != "/srv/labs/mylab" {
		t.Errorf("with %s=/srv/labs, Dir = %s", StateDirEnv, d)
	}
}

// crashChild is the writer the crash test kills: it writes keys /w/<i>
// with large values, printing "ok i" once Put has returned.
const crashChildEnv = "NPLAB_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

func crashChild(dir string) {
	s, err := Open(dir, Options{CompactBytes: 256 << 10})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	start := len(s.List("/w/"))
	out := bufio.NewWriter(os.Stdout)
	for i := start; i < start+100000; i++ {
		if _, err := s.Put(fmt.Sprintf("/w/%d", i), value(i)); err != nil {
			fmt.Fprintln(out, "error", err)
			out.Flush()
			os.Exit(2)
		}
		// The previous key is written again and a scratch key twice, so
		// the log holds more dead records than live ones and compacts
		// while the parent may kill.
		for _, k := range []string{fmt.Sprintf("/w/%d", i-1), "/scratch", "/scratch"} {
			if i == start && k != "/scratch" {
				continue
			}
			v := value(i - 1)
			if _, err := s.Put(k, v); err != nil {
				fmt.Fprintln(out, "error", err)
				out.Flush()
				os.Exit(2)
			}
		}
		fmt.Fprintln(out, "ok", i)
		out.Flush()
	}
}

// value is key i's value: large (so a kill often lands inside a write)
// and self-checking.
func value(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("value-%d;", i)), 3000)
}

// TestCrashDuringWrites kills (SIGKILL) a real child process in the middle
// of a stream of writes, several times over the same store: each time the
// store opens, and every write the child had reported complete is there.
func TestCrashDuringWrites(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("needs SIGKILL")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := -1
	var tornSeen int
	for round := 0; round < 5; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 20 + rng.IntN(80)
		sc := bufio.NewScanner(stdout)
		seen := 0
		deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
		// Every "ok" the child printed before it died counts, the ones
		// still in the pipe when it was killed included: read to EOF.
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || f[0] != "ok" {
				t.Fatalf("round %d: child said %q", round, sc.Text())
			}
			acked, _ = strconv.Atoi(f[1])
			seen++
			if seen == killAfter {
				// A short random pause lands the kill anywhere in a
				// write (or a compaction).
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				cmd.Process.Kill()
			}
		}
		deadline.Stop()
		_ = cmd.Wait()
		if seen < killAfter {
			t.Fatalf("round %d: child stopped after %d writes, before the kill", round, seen)
		}

		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		if s.Torn() > 0 {
			tornSeen++
		}
		for i := 0; i <= acked; i++ {
			v, ok := s.Get(fmt.Sprintf("/w/%d", i))
			if !ok {
				t.Fatalf("round %d: /w/%d was written (acked) and is lost (acked up to %d, %d keys)", round, i, acked, s.Len())
			}
			if !bytes.Equal(v, value(i)) {
				t.Fatalf("round %d: /w/%d has a wrong value", round, i)
			}
		}
		// At most the write in flight is extra.
		n := len(s.List("/w/"))
		if n > acked+2 {
			t.Fatalf("round %d: %d keys after %d acked writes", round, n, acked+1)
		}
		// The child's next round goes on after the last key it stored.
		if n != acked+1 {
			if err := s.Delete(fmt.Sprintf("/w/%d", n-1)); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
	}
	t.Logf("5 kills, acked writes up to /w/%d all present; %d kills tore a record", acked, tornSeen)
}

// TestDeferredSync: with Options.Deferred, writes go on while Sync waits
// for the disk, compactions included, and everything written is there
// after Close and Open.
func TestDeferredSync(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Deferred: true, CompactBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	synced := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				synced <- n
				return
			default:
			}
			if err := s.Sync(); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	for i := 0; i < 2000; i++ {
		if _, err := s.Put(fmt.Sprintf("/k/%d", i%50), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	t.Logf("%d Syncs ran during 2000 writes", <-synced)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir, Options{})
	if s2.Len() != 50 || s2.Revision() != 2000 {
		t.Errorf("after deferred writes: %d keys, revision %d", s2.Len(), s2.Revision())
	}
	if v, _ := s2.Get("/k/49"); string(v) != "1999" {
		t.Errorf("/k/49 = %q", v)
	}
}
