// Package spool is the agent's write-ahead queue of envelopes: a bounded,
// ordered, crash-safe queue on local disk between the code that seals
// envelopes and the exporter that streams them to the collector.
//
// Every envelope is appended here before it is sent, so nothing the collector
// has not acknowledged is lost when the agent restarts, is killed, or the
// collector is unreachable for a while. The exporter reads entries in order,
// acknowledges them as the collector answers (Ack), and after a disconnect or a
// failed answer goes back to the oldest unacknowledged entry (Rewind) and
// resends from there: delivery is at least once, in order, and the collector
// deduplicates retries.
//
// # Layout
//
// A spool directory holds
//
//	00000000000000000001.seg  segment files, named by the seq of their first
//	00000000000000004711.seg  record (zero-padded, so names sort like seqs)
//	ack                       the ack mark: the highest acknowledged seq
//	LOCK                      flock'd while open: one process per directory
//
// Records never span segments. Append writes to the newest ("active") segment
// and starts a new one when the record would not fit in SegmentBytes. A
// segment is deleted once every record in it is acknowledged and it is no
// longer the active one, which is the only way disk space is given back.
//
// # Record format
//
// Each record is a 16-byte header followed by the data (little endian):
//
//	offset 0  uint32  length of data
//	offset 4  uint32  CRC-32C (Castagnoli) of bytes 8..16 (the seq) followed by the data
//	offset 8  uint64  seq
//	offset 16 data
//
// The CRC covers the seq as well as the data so that a header that was
// zero-filled or half-written by a crash never passes for a record. Within a
// segment seqs run contiguously from the seq in the file name; Open checks
// that too.
//
// The ack file is a sequence of 12-byte records, uint64 seq + CRC-32C of
// those 8 bytes, appended on every Ack and rewritten (write a temporary file,
// rename over) when it grows past 4 KiB and on every Open. The highest valid
// record wins; a torn last record is ignored.
//
// # Guarantees
//
//   - Append returns only after the record has been handed to the kernel with
//     write(2), so it survives the agent process dying (panic, OOM kill,
//     kill -9) with or without fsync.
//   - With Options.SyncEvery > 0 a background goroutine fsyncs the active
//     segment, the ack file and the directory at that interval (a segment is
//     also fsynced when it is sealed), so at most the last SyncEvery of appends
//     and acks can be lost to a power failure or kernel crash. With SyncEvery 0
//     (the default) nothing is fsynced explicitly: the page cache is flushed
//     by the kernel on its own schedule (about 30 s on Linux) and a power
//     failure can lose that much.
//   - Seqs are strictly increasing, also across Close/Open and process
//     crashes. A seq at or below the persisted ack mark is never issued again,
//     even when every segment has been deleted.
//   - Read returns entries in seq order, each at most once between two
//     Rewinds; after Open and after Rewind it starts at the oldest
//     unacknowledged entry.
//   - Open recovers every complete record. A torn record at the end of the
//     last segment (a crash in the middle of an Append, which therefore never
//     returned) is cut off. A bad record followed by intact ones, in any
//     segment, is damage: exactly the damaged records are skipped (the
//     intact ones after them move to a segment of their own) and reported
//     (Recovered().Skipped; unacknowledged ones are counted in
//     Stats().Damaged). Without an intact record after it, the rest of an
//     earlier segment is dropped and reported (Recovered().Corrupt).
//   - Memory does not grow with the spool: Read streams from the segment
//     files through one buffered handle, Open scans with a fixed buffer, and
//     the in-memory index holds one small struct per segment file.
//
// # Non-guarantees
//
//   - Without fsync (SyncEvery 0), a power failure can lose records whose
//     Append returned, lose a recent Ack (those entries are resent: duplicates,
//     not loss), or, because the kernel may write files out of order, leave a
//     damaged segment that Open then reports and drops. Seqs of records lost
//     this way can be issued again to new records.
//   - Acknowledged entries stay on disk until their whole segment is
//     acknowledged and sealed; Stats().Bytes counts them, so ErrFull can be
//     returned while some of the bytes are already acknowledged. Those bytes
//     are always in one segment (the oldest), and SegmentBytes must be at most
//     MaxBytes/2, so at least half of MaxBytes is available to unacknowledged
//     entries.
//   - Records are checksummed, not encrypted or authenticated.
//   - Data damaged on disk after Open (bit rot) is found when Read checks the
//     CRC; Read then skips to the next intact record of that segment (or its
//     end) and counts it in Stats().Corrupt and Stats().Damaged instead of
//     returning an error, so one bad sector cannot wedge the exporter. A
//     damaged header met while seeking after a Rewind still skips to the
//     segment's end.
//   - Deleting a segment that the reader still has open relies on Unix
//     semantics (the open handle stays readable); the directory lock is
//     flock(2) and is a no-op on other systems.
//
// # Concurrency
//
// One goroutine may Append while another Reads, and Ack, Rewind and Stats may
// be called from any goroutine. Concurrent Appends are serialized, as are
// concurrent Reads (which then share one cursor). File I/O happens outside
// the mutex that guards the index, so a slow disk read does not stall Append
// and the other way round.
package spool
