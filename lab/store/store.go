package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/nplab/nplab/internal/userns"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

const (
	logName = "wal"
	tmpName = "wal.tmp"

	opPut      = 1
	opDelete   = 2
	opRevision = 3

	headerLen = 8
	// MaxRecord bounds one record (key and value): a length field above it
	// is a torn or corrupt header, not an allocation to make.
	MaxRecord = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned by writes to a closed store.
var ErrClosed = errors.New("store: closed")

// KV is one key with its value and the revision of its last write.
type KV struct {
	Key      string
	Value    []byte
	Revision int64
}

// Options tune a store.
type Options struct {
	// CompactBytes is how much dead log a store tolerates before it
	// compacts, on top of twice its live size; 0 means 4 MiB.
	CompactBytes int64
	// Deferred makes Put and Delete return once their record is written
	// (in the page cache: it survives the process being killed), without
	// waiting for the disk; Sync makes every write before it durable. A
	// caller that fsyncs once for many writes (group commit) sets it.
	Deferred bool
}

// Store is an etcd-like key-value store in a directory: see the package
// doc.
type Store struct {
	mu   sync.Mutex
	dir  string
	opts Options
	f    *os.File
	kv   map[string]KV
	rev  int64
	// size is the log's length; live the bytes the live keys' records
	// take.
	size, live int64
	// torn is how many bytes Open cut off the log's end.
	torn int64
	// dirty: written since the last fsync (Deferred).
	dirty bool
	// fmu is held (read) by a Sync's fsync outside mu, and (write) to
	// swap or close f; taken after mu.
	fmu sync.RWMutex
	// err, once set, refuses every later write: the log could not be
	// brought back to a whole record.
	err    error
	closed bool
}

// Open opens (creating it if needed) the store in dir. A torn last record
// is cut off; see [Store.Torn].
func Open(dir string, opts Options) (*Store, error) {
	if opts.CompactBytes <= 0 {
		opts.CompactBytes = 4 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	// A compaction that crashed before its rename: the old log is whole.
	if err := os.Remove(filepath.Join(dir, tmpName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	path := filepath.Join(dir, logName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	s := &Store{dir: dir, opts: opts, f: f, kv: map[string]KV{}}
	good, err := s.replay(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if fi.Size() > good {
		s.torn = fi.Size() - good
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("store %s: cutting off a torn record at byte %d: %w", path, good, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
	}
	s.size = good
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := s.maybeCompact(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// replay reads every whole record and returns the offset after the last.
func (s *Store) replay(r io.Reader) (int64, error) {
	var off int64
	hdr := make([]byte, headerLen)
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return off, nil // the end, or a torn header
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		sum := binary.BigEndian.Uint32(hdr[4:8])
		if n < 13 || n > MaxRecord {
			return off, nil
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return off, nil
		}
		if crc32.Checksum(buf, castagnoli) != sum {
			return off, nil
		}
		op, rev, key, value, ok := decode(buf)
		if !ok || rev <= s.rev && op != opRevision {
			return off, nil
		}
		recLen := int64(headerLen) + int64(n)
		switch op {
		case opPut:
			if old, ok := s.kv[key]; ok {
				s.live -= recordLen(old.Key, old.Value)
			}
			s.kv[key] = KV{Key: key, Value: append([]byte(nil), value...), Revision: rev}
			s.live += recLen
		case opDelete:
			if old, ok := s.kv[key]; ok {
				s.live -= recordLen(old.Key, old.Value)
				delete(s.kv, key)
			}
		}
		if rev > s.rev {
			s.rev = rev
		}
		off += recLen
	}
}

func recordLen(key string, value []byte) int64 {
	return int64(headerLen + 13 + len(key) + len(value))
}

func encode(op byte, rev int64, key string, value []byte) []byte {
	n := 13 + len(key) + len(value)
	b := make([]byte, headerLen+n)
	p := b[headerLen:]
	p[0] = op
	binary.BigEndian.PutUint64(p[1:9], uint64(rev))
	binary.BigEndian.PutUint32(p[9:13], uint32(len(key)))
	copy(p[13:], key)
	copy(p[13+len(key):], value)
	binary.BigEndian.PutUint32(b[0:4], uint32(n))
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(p, castagnoli))
	return b
}

func decode(p []byte) (op byte, rev int64, key string, value []byte, ok bool) {
	op = p[0]
	rev = int64(binary.BigEndian.Uint64(p[1:9]))
	kl := binary.BigEndian.Uint32(p[9:13])
	if op < opPut || op > opRevision || rev <= 0 || uint64(kl) > uint64(len(p)-13) {
		return 0, 0, "", nil, false
	}
	key = string(p[13 : 13+kl])
	value = p[13+kl:]
	if op != opRevision && key == "" {
		return 0, 0, "", nil, false
	}
	return op, rev, key, value, true
}

// checkKey refuses keys that are not etcd-like paths.
func checkKey(key string) error {
	if !strings.HasPrefix(key, "/") || len(key) > 4096 {
		return fmt.Errorf("store: invalid key %q: a key is a path starting with /", key)
	}
	return nil
}

// StateDirEnv, when set to an absolute path, is where every lab's store
// lives instead (<it>/<lab>): tests and course machines use it.
const StateDirEnv = "NPLAB_STATE_DIR"

// Dir is where a lab's store lives: $NPLAB_STATE_DIR/<lab> when that is
// set, else /var/lib/nplab/<lab> for root, else
// $XDG_STATE_HOME/nplab/<lab>, or ~/.local/state/nplab/<lab> when
// XDG_STATE_HOME is unset. Never under /run: a reboot empties it.
func Dir(lab string) (string, error) {
	if lab == "" || strings.ContainsAny(lab, `/\`) || lab == "." || lab == ".." {
		return "", fmt.Errorf("store: invalid lab name %q", lab)
	}
	if x := os.Getenv(StateDirEnv); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, lab), nil
	}
	// Root of nplab's user namespace (rootless mode) is still the user:
	// the machine's /var/lib is not theirs to write.
	if os.Geteuid() == 0 && !userns.Inside() {
		return filepath.Join("/var/lib/nplab", lab), nil
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "nplab", lab), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("store: no place for lab %q's state: %w", lab, err)
	}
	return filepath.Join(home, ".local", "state", "nplab", lab), nil
}

// Exists reports whether dir holds a store with at least one key: a lab
// that can be resumed.
func Exists(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, logName))
	return err == nil && fi.Size() > 0
}

// Remove deletes the store in dir: its log and the directory, when
// nothing else is in it. A store that is not there is not an error.
func Remove(dir string) error {
	for _, n := range []string{logName, tmpName} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("store %s: %w", dir, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		if entries, rerr := os.ReadDir(dir); rerr == nil && len(entries) > 0 {
			return nil // someone else's files: left alone
		}
		return fmt.Errorf("store %s: %w", dir, err)
	}
	return nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Torn is how many bytes of a torn last record Open cut off (0 after a
// clean stop).
func (s *Store) Torn() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.torn
}

// Revision is the store's revision: the number of writes and deletes ever
// made to it (as etcd's, it never goes down).
func (s *Store) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Len is the number of keys.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.kv)
}

// Get returns a copy of key's value.
func (s *Store) Get(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.kv[key]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), kv.Value...), true
}

// List returns the keys under prefix, sorted, with copies of their values
// (etcdctl get --prefix).
func (s *Store) List(prefix string) []KV {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []KV
	for k, kv := range s.kv {
		if strings.HasPrefix(k, prefix) {
			kv.Value = append([]byte(nil), kv.Value...)
			out = append(out, kv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Put stores value under key; it returns once the record is on disk
// (fsynced), with the new revision.
func (s *Store) Put(key string, value []byte) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.append(opPut, key, value); err != nil {
		return 0, err
	}
	if old, ok := s.kv[key]; ok {
		s.live -= recordLen(old.Key, old.Value)
	}
	s.kv[key] = KV{Key: key, Value: append([]byte(nil), value...), Revision: s.rev}
	s.live += recordLen(key, value)
	return s.rev, s.maybeCompact()
}

// Delete removes key; deleting a key that is not there does nothing (and
// does not move the revision), as etcd's delete.
func (s *Store) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.kv[key]
	if !ok {
		return nil
	}
	if err := s.append(opDelete, key, nil); err != nil {
		return err
	}
	s.live -= recordLen(old.Key, old.Value)
	delete(s.kv, key)
	return s.maybeCompact()
}

// append writes one record at the end of the log and fsyncs it. On
// failure the log is cut back to where it was. s.mu is held.
func (s *Store) append(op byte, key string, value []byte) error {
	if s.closed {
		return ErrClosed
	}
	if s.err != nil {
		return s.err
	}
	if len(key)+len(value)+13 > MaxRecord {
		return fmt.Errorf("store: %s: value of %d bytes is too large", key, len(value))
	}
	rec := encode(op, s.rev+1, key, value)
	_, err := s.f.Write(rec)
	if err == nil && !s.opts.Deferred {
		err = s.f.Sync()
	}
	if err != nil {
		// Cut the partial record off, so no torn record ever sits in
		// front of a good one; if even that fails, stop writing.
		if terr := s.f.Truncate(s.size); terr != nil {
			s.err = fmt.Errorf("store %s: a write failed (%v) and the log could not be cut back: %w", s.dir, err, terr)
		} else if _, serr := s.f.Seek(s.size, io.SeekStart); serr != nil {
			s.err = fmt.Errorf("store %s: %w", s.dir, serr)
		}
		return fmt.Errorf("store %s: writing %s: %w", s.dir, key, err)
	}
	s.rev++
	s.size += int64(len(rec))
	s.dirty = s.opts.Deferred
	return nil
}

// Sync makes every write made so far durable (fsync). Without
// Options.Deferred there is nothing to do. Writes go on while it waits for
// the disk.
func (s *Store) Sync() error {
	s.mu.Lock()
	if !s.dirty || s.closed {
		s.mu.Unlock()
		return nil
	}
	f := s.f
	s.dirty = false
	// fmu keeps f open (compaction and Close swap or close it) while the
	// fsync runs outside s.mu.
	s.fmu.RLock()
	s.mu.Unlock()
	err := f.Sync()
	s.fmu.RUnlock()
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	return nil
}

// maybeCompact compacts when the log is more than twice the live data plus
// CompactBytes. s.mu is held.
func (s *Store) maybeCompact() error {
	if s.size <= 2*s.live+s.opts.CompactBytes {
		return nil
	}
	return s.compact()
}

// Compact rewrites the log with only the live keys.
func (s *Store) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.compact()
}

func (s *Store) compact() error {
	tmp := filepath.Join(s.dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store %s: compacting: %w", s.dir, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("store %s: compacting: %w", s.dir, err)
	}
	kvs := make([]KV, 0, len(s.kv))
	for _, kv := range s.kv {
		kvs = append(kvs, kv)
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Revision < kvs[j].Revision })
	var size int64
	w := make([]byte, 0, 1<<16)
	flush := func() error {
		if _, err := f.Write(w); err != nil {
			return err
		}
		size += int64(len(w))
		w = w[:0]
		return nil
	}
	for _, kv := range kvs {
		w = append(w, encode(opPut, kv.Revision, kv.Key, kv.Value)...)
		if len(w) >= 1<<16 {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	// The revision survives even when its last write was a delete.
	if s.rev > 0 {
		w = append(w, encode(opRevision, s.rev, "", nil)...)
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store %s: compacting: %w", s.dir, err)
	}
	path := filepath.Join(s.dir, logName)
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store %s: compacting: %w", s.dir, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("store %s: compacting: %w", s.dir, err)
	}
	nf, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err == nil {
		_, err = nf.Seek(size, io.SeekStart)
	}
	if err != nil {
		s.err = fmt.Errorf("store %s: reopening the compacted log: %w", s.dir, err)
		return s.err
	}
	s.fmu.Lock()
	s.f.Close()
	s.f = nf
	s.fmu.Unlock()
	s.size = size
	s.dirty = false
	return nil
}

// syncDir fsyncs a directory, so a rename in it is on disk. Where the
// platform cannot open a directory for that (Windows), it is skipped.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !isUnsupportedSync(err) {
		return err
	}
	return nil
}

// isUnsupportedSync: some platforms refuse fsync on a directory handle.
func isUnsupportedSync(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not supported")
}

// Reset deletes every key (a fresh lab in the same place), keeping the
// revision counter.
func (s *Store) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	clear(s.kv)
	s.live = 0
	return s.compact()
}

// Close closes the store; its data stays on disk.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.fmu.Lock()
	defer s.fmu.Unlock()
	var err error
	if s.dirty {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
