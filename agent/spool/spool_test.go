package spool

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTripAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024, MaxBytes: 1 << 20})
	const n, maxLen = 300, 300
	for i := uint64(1); i <= n; i++ {
		if seq := mustAppend(t, s, payload(i, maxLen)); seq != i {
			t.Fatalf("Append returned seq %d, want %d", seq, i)
		}
	}
	st := s.Stats()
	if st.Segments < 20 || len(segFiles(t, dir)) != st.Segments {
		t.Fatalf("want many segments, Stats %+v, files %d", st, len(segFiles(t, dir)))
	}
	if st.Entries != n || st.Appended != n || st.NextSeq != n+1 {
		t.Fatalf("Stats %+v", st)
	}
	expectSeqs(t, s, maxLen, seqRange(1, n)...)
	expectEmpty(t, s)
}

func TestEmptyAndLargestEntries(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1024, MaxBytes: 4096})
	mustAppend(t, s, nil)
	big := bytes.Repeat([]byte{0xab}, 1024-headerSize) // exactly one segment
	mustAppend(t, s, big)
	if _, err := s.Append(make([]byte, 1024-headerSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append one byte over a segment: %v, want ErrTooLarge", err)
	}
	if e := readOne(t, s); e.Seq != 1 || len(e.Data) != 0 {
		t.Fatalf("got %d/%d bytes", e.Seq, len(e.Data))
	}
	if e := readOne(t, s); e.Seq != 2 || !bytes.Equal(e.Data, big) {
		t.Fatalf("got seq %d, %d bytes", e.Seq, len(e.Data))
	}
}

func TestReadDataIsFresh(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	buf := []byte("first")
	mustAppend(t, s, buf)
	copy(buf, "XXXXX") // Append must not keep the caller's slice
	mustAppend(t, s, []byte("second"))
	a, b := readOne(t, s), readOne(t, s)
	if string(a.Data) != "first" || string(b.Data) != "second" {
		t.Fatalf("got %q, %q", a.Data, b.Data)
	}
}

func TestRewindResendsOldestUnacked(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 512, MaxBytes: 1 << 20})
	const maxLen = 100
	for i := uint64(1); i <= 40; i++ {
		mustAppend(t, s, payload(i, maxLen))
	}
	expectSeqs(t, s, maxLen, seqRange(1, 25)...)
	if err := s.Ack(12); err != nil {
		t.Fatal(err)
	}
	s.Rewind()
	expectSeqs(t, s, maxLen, seqRange(13, 20)...)
	s.Rewind() // twice, from the middle: same place
	expectSeqs(t, s, maxLen, seqRange(13, 40)...)
	expectEmpty(t, s)
	if err := s.Ack(40); err != nil {
		t.Fatal(err)
	}
	s.Rewind() // everything acknowledged: nothing to resend
	expectEmpty(t, s)
	mustAppend(t, s, payload(41, maxLen))
	expectSeqs(t, s, maxLen, 41)
}

func TestAckAheadOfReaderAndInvalidAcks(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 256, MaxBytes: 1 << 20})
	for i := uint64(1); i <= 20; i++ {
		mustAppend(t, s, payload(i, 50))
	}
	expectSeqs(t, s, 50, 1, 2)
	if err := s.Ack(9); err != nil {
		t.Fatal(err)
	}
	expectSeqs(t, s, 50, 10) // acknowledged entries are not read
	if err := s.Ack(5); err != nil {
		t.Fatalf("stale ack: %v", err)
	}
	if st := s.Stats(); st.AckedSeq != 9 || st.Entries != 11 || st.Acked != 9 {
		t.Fatalf("Stats %+v", st)
	}
	if err := s.Ack(21); err == nil {
		t.Fatal("ack of a seq never appended succeeded")
	}
	if err := s.Ack(20); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Entries != 0 || st.Acked != 20 {
		t.Fatalf("Stats %+v", st)
	}
	expectEmpty(t, s)
}

func TestAckDeletesSegmentsAndFreesSpace(t *testing.T) {
	dir := t.TempDir()
	// 100-byte entries are 116-byte records: 8 per 1024-byte segment.
	s := openT(t, dir, Options{SegmentBytes: 1024, MaxBytes: 1 << 20})
	data := make([]byte, 100)
	for range 50 {
		mustAppend(t, s, data)
	}
	st := s.Stats()
	if st.Segments != 7 || st.Bytes != 50*116 || len(segFiles(t, dir)) != 7 {
		t.Fatalf("before: %+v, files %v", st, segFiles(t, dir))
	}
	if err := s.Ack(20); err != nil { // 1-8 and 9-16 done, 17-24 not
		t.Fatal(err)
	}
	st = s.Stats()
	if st.Segments != 5 || st.Bytes != 34*116 || st.Entries != 30 {
		t.Fatalf("after Ack(20): %+v", st)
	}
	if files := segFiles(t, dir); len(files) != 5 || files[0] != segName(17) {
		t.Fatalf("files %v", files)
	}
	if err := s.Ack(50); err != nil {
		t.Fatal(err)
	}
	// The active segment (49, 50) stays until it is sealed.
	if st = s.Stats(); st.Segments != 1 || st.Bytes != 2*116 || st.Entries != 0 {
		t.Fatalf("after Ack(50): %+v", st)
	}
	for range 6 { // fills the active segment (49-56)
		mustAppend(t, s, data)
	}
	if err := s.Ack(56); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, data) // seals 49-56, fully acknowledged: deleted at once
	if st = s.Stats(); st.Segments != 1 || st.Bytes != 116 {
		t.Fatalf("after rotation: %+v, files %v", st, segFiles(t, dir))
	}
	if files := segFiles(t, dir); len(files) != 1 || files[0] != segName(57) {
		t.Fatalf("files %v", files)
	}
}

func TestErrFullAndSpaceReturnsAfterAck(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentBytes: 1024, MaxBytes: 4096})
	data := make([]byte, 100) // 116-byte records, 8 per segment
	var n uint64
	for {
		_, err := s.Append(data)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	// 4 full segments (3712 bytes) + 3 records (348) = 4060; one more is 4176.
	if st := s.Stats(); n != 35 || st.Bytes != 4060 || st.Full != 1 {
		t.Fatalf("appended %d before ErrFull, Stats %+v", n, s.Stats())
	}
	// Acknowledging part of a segment frees nothing.
	if err := s.Ack(4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(data); !errors.Is(err, ErrFull) {
		t.Fatalf("after partial ack: %v, want ErrFull", err)
	}
	if err := s.Ack(8); err != nil { // the first segment is done
		t.Fatal(err)
	}
	for range 8 {
		mustAppend(t, s, data)
	}
	if _, err := s.Append(data); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull again, got %v", err)
	}
	// Everything acknowledged: the whole budget minus the active segment's
	// acknowledged records is back, and the next seal frees that too.
	if err := s.Ack(s.Stats().NextSeq - 1); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		mustAppend(t, s, data)
	}
	if st := s.Stats(); st.Full != 3 || st.Entries != 30 {
		t.Fatalf("Stats %+v", st)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{MaxBytes: -1},
		{SyncEvery: -1},
		{SegmentBytes: headerSize},
		{MaxBytes: 1000, SegmentBytes: 501},
	} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
	got, err := Options{}.withDefaults()
	if err != nil || got.MaxBytes != DefaultMaxBytes || got.SegmentBytes != DefaultSegmentBytes {
		t.Fatalf("defaults %+v, %v", got, err)
	}
	got, err = Options{MaxBytes: 1 << 20}.withDefaults()
	if err != nil || got.SegmentBytes != 512<<10 {
		t.Fatalf("small MaxBytes: %+v, %v", got, err)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, []byte("x"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := s.Read(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := s.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
}

func TestSecondOpenOfSameDirFails(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, Options{})
	if s, err := Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("second Open of a locked directory succeeded")
	}
}
