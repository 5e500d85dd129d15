// Package store keeps a lab's API objects on disk the way etcd keeps a
// cluster's: one key per object (/registry/services/specs/default/web,
// /registry/pods/default/web-7d4b9c8f6d-x2k9p,
// /registry/deployments/default/web), the value the object's JSON, and one
// revision counter that every write and every delete moves up by one. A
// lab that stops, crashes or whose machine reboots finds its objects there
// again (`nplab up --resume`). Pure Go, no root, any OS.
//
// # On disk
//
// A store is a directory with one file, wal: an append-only log of
// records, each
//
//	length (4 bytes) | CRC-32C of the payload (4 bytes) | payload
//	payload = op (1: put, 2: delete, 3: revision) | revision (8) | key length (4) | key | value
//
// A write appends one record and fsyncs the file before it returns: one
// write and one fsync per object, the cost etcd pays per request. With
// [Options.Deferred] it returns once the record is written (the page
// cache survives the process being killed) and [Store.Sync] fsyncs every
// write before it, outside the store's lock: a caller commits many writes
// with one fsync, as etcd batches its WAL (package lab does, and waits for
// that fsync before an API call returns). Open
// reads the records in order and stops at the first that is short or
// fails its checksum — the record a crash tore — and cuts the file there,
// so a crash in the middle of a write loses that write and nothing else.
// (A failed write is cut off at once, so no torn record ever sits in front
// of a good one.) When the log holds more than twice what is live (plus
// [Options.CompactBytes]), the store compacts, as etcd's snapshot does: it
// writes the live keys to wal.tmp, fsyncs it, renames it over wal and
// fsyncs the directory. A crash during compaction leaves either the old
// log or the new one, both whole; Open removes a leftover wal.tmp.
//
// Why a log rather than a file per key (write a temp file, fsync, rename,
// fsync the directory)? The log costs one fsync per write instead of two,
// and its revision counter survives deletes for free (each record carries
// its revision); the checksum makes a torn tail something Open can see.
//
// Where: [Dir] is /var/lib/nplab/<lab> for root, and
// $XDG_STATE_HOME/nplab/<lab> (~/.local/state/nplab/<lab>) otherwise —
// never /run, which a reboot empties; $NPLAB_STATE_DIR/<lab> when that is
// set.
//
// A Store is safe for concurrent use by one process. Two processes must
// not open the same directory at once (nplab up refuses to start a lab
// that is already running).
package store
