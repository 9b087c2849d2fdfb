package spool

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestConcurrentAppendReadAck runs the exporter's pattern under -race: one
// appender (retrying on ErrFull, so the limit is hit constantly), one reader
// that rewinds now and then as after a disconnect, one acker fed by the
// reader, and a Stats poller; small segments so that rotation and deletion
// happen all the time.
func TestConcurrentAppendReadAck(t *testing.T) {
	const n, maxLen = 4000, 2000
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 8 << 10, MaxBytes: 64 << 10})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(1)
	go func() { // appender
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			for {
				seq, err := s.Append(payload(i, maxLen))
				if errors.Is(err, ErrFull) {
					time.Sleep(20 * time.Microsecond)
					continue
				}
				if err != nil || seq != i {
					errc <- errors.Join(err, errors.New("append out of sequence"))
					return
				}
				break
			}
		}
	}()
	acks := make(chan uint64, 64)
	wg.Add(1)
	go func() { // acker
		defer wg.Done()
		for seq := range acks {
			if err := s.Ack(seq); err != nil {
				errc <- err
				return
			}
		}
	}()
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // Stats poller
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				if st := s.Stats(); st.Bytes > 64<<10 {
					errc <- errors.New("over MaxBytes")
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()

	// Start reading only once the appender has run into the limit, so the
	// ErrFull path is always part of the test.
	for s.Stats().Full == 0 {
		if ctx.Err() != nil {
			t.Fatal("appender never hit ErrFull")
		}
		time.Sleep(time.Millisecond)
	}

	// prev is the last seq read, maxRead the highest. After a Rewind the
	// reader goes back to the oldest unacknowledged entry; an Ack of entries
	// read before the Rewind can then move it forward again, but only over
	// entries that were read (and so are being acknowledged).
	var prev, maxRead, ackedAtRewind uint64
	rewinds, rewound := 0, false
	for maxRead < n {
		e, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d: %v", prev, err)
		}
		switch {
		case e.Seq == prev+1:
		case e.Seq > prev+1 && e.Seq <= maxRead+1:
		case rewound && e.Seq <= prev && e.Seq > ackedAtRewind:
		default:
			t.Fatalf("read %d after %d (max %d, rewound %v, acked then %d)", e.Seq, prev, maxRead, rewound, ackedAtRewind)
		}
		rewound = false
		if !bytes.Equal(e.Data, payload(e.Seq, maxLen)) {
			t.Fatalf("seq %d: wrong data", e.Seq)
		}
		prev, maxRead = e.Seq, max(maxRead, e.Seq)
		acks <- e.Seq
		if e.Seq%613 == 0 && rewinds < 10 {
			rewinds++
			ackedAtRewind = s.Stats().AckedSeq
			s.Rewind()
			rewound = true
		}
	}
	close(acks)
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if err := s.Ack(n); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Entries != 0 || st.Segments != 1 || st.Appended != n || st.Full == 0 || st.Corrupt != 0 {
		t.Fatalf("Stats %+v", st)
	}
	if files := segFiles(t, dir); len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	t.Logf("%d entries, %d rewinds, %d ErrFull retries", n, rewinds, st.Full)
}
