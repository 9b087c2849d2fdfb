package spool

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultMaxBytes     = 256 << 20
	DefaultSegmentBytes = 8 << 20
)

// Options configure a Spool. The zero value is usable.
type Options struct {
	// MaxBytes limits the bytes of all segment files together (default
	// 256 MiB). Append returns ErrFull rather than exceed it; only deleting
	// fully acknowledged segments frees space.
	MaxBytes int64
	// SegmentBytes is the size at which Append starts a new segment file
	// (default 8 MiB, or MaxBytes/2 if that is smaller). It must be at most
	// MaxBytes/2: acknowledged records are only freed a whole segment at a
	// time, and the active segment is kept until it fills, so up to one
	// segment of acknowledged bytes can still count against MaxBytes. It also
	// bounds the size of one record (ErrTooLarge).
	SegmentBytes int64
	// SyncEvery, if positive, fsyncs the active segment, the ack file and the
	// directory at this interval (only when something changed), and each
	// segment when it is sealed. 0 (the default) never fsyncs: records are
	// still written with write(2) before Append returns and so survive a
	// crash of the process, but not necessarily a power failure or kernel
	// crash.
	SyncEvery time.Duration
}

var (
	// ErrFull is returned by Append when the record would take the spool
	// past MaxBytes. Nothing was written; the caller drops the entry and
	// counts it. Space returns when the collector acknowledges.
	ErrFull = errors.New("spool: full")
	// ErrTooLarge is returned by Append for an entry that does not fit in one
	// segment (16-byte header + data > SegmentBytes).
	ErrTooLarge = errors.New("spool: entry larger than a segment")
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("spool: closed")
)

// withDefaults fills zero fields and rejects settings that cannot work.
func (o Options) withDefaults() (Options, error) {
	if o.MaxBytes < 0 || o.SegmentBytes < 0 || o.SyncEvery < 0 {
		return o, fmt.Errorf("spool: negative option in %+v", o)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = min(DefaultSegmentBytes, o.MaxBytes/2)
	}
	if o.SegmentBytes <= headerSize {
		return o, fmt.Errorf("spool: SegmentBytes %d cannot hold a record (header is %d bytes)", o.SegmentBytes, headerSize)
	}
	if o.SegmentBytes > o.MaxBytes/2 {
		return o, fmt.Errorf("spool: SegmentBytes %d must be at most MaxBytes/2 (%d)", o.SegmentBytes, o.MaxBytes/2)
	}
	return o, nil
}
