package spool

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestRestartResumesAfterAckMark(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 1024, MaxBytes: 1 << 20}
	const maxLen = 200
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 60; i++ {
		mustAppend(t, s, payload(i, maxLen))
	}
	expectSeqs(t, s, maxLen, seqRange(1, 30)...)
	if err := s.Ack(25); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, o)
	r := s.Recovered()
	if !r.Clean() || r.AckedSeq != 25 || r.Entries != 35 {
		t.Fatalf("Recovered %+v", r)
	}
	if st := s.Stats(); st.Entries != 35 || st.NextSeq != 61 || st.ReadSeq != 26 {
		t.Fatalf("Stats %+v", st)
	}
	expectSeqs(t, s, maxLen, seqRange(26, 60)...)
	if seq := mustAppend(t, s, payload(61, maxLen)); seq != 61 {
		t.Fatalf("seq after restart %d, want 61", seq)
	}
	expectSeqs(t, s, maxLen, 61)
}

func TestRestartAfterEverythingAckedKeepsSeqsIncreasing(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 256, MaxBytes: 1 << 20}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		mustAppend(t, s, make([]byte, 50))
	}
	if err := s.Ack(40); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Even with every segment gone, the ack mark keeps seqs from restarting.
	for _, name := range segFiles(t, dir) {
		os.Remove(filepath.Join(dir, name))
	}
	s = openT(t, dir, o)
	expectEmpty(t, s)
	if seq := mustAppend(t, s, []byte("x")); seq != 41 {
		t.Fatalf("seq %d, want 41", seq)
	}
	if e := readOne(t, s); e.Seq != 41 {
		t.Fatalf("read %d", e.Seq)
	}
}

func TestReopenDeletesAckedSegmentsAndAppendsToLast(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 1024, MaxBytes: 1 << 20}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		mustAppend(t, s, make([]byte, 100)) // 8 per segment: 3 segments
	}
	// Acked on disk, but the process dies before it deletes anything.
	s.mark.write(17)
	dump := copyDir(t, dir)
	s.Close()

	s = openT(t, dump, o)
	r := s.Recovered()
	if r.Removed != 2 || r.Segments != 1 || r.Entries != 3 || r.AckedSeq != 17 {
		t.Fatalf("Recovered %+v", r)
	}
	mustAppend(t, s, make([]byte, 100)) // still fits in the last segment
	if files := segFiles(t, dump); len(files) != 1 || files[0] != segName(17) {
		t.Fatalf("files %v", files)
	}
	for _, want := range []uint64{18, 19, 20, 21} {
		if e := readOne(t, s); e.Seq != want {
			t.Fatalf("read %d, want %d", e.Seq, want)
		}
	}
}

// TestCrashSnapshot takes the directory of a spool that was never closed, as
// a killed process leaves it, and checks that everything appended is there.
func TestCrashSnapshot(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 4096, MaxBytes: 1 << 20}
	const n, maxLen = 100, 500
	s := openT(t, dir, o)
	for i := uint64(1); i <= n; i++ {
		mustAppend(t, s, payload(i, maxLen))
	}
	expectSeqs(t, s, maxLen, seqRange(1, 10)...)
	if err := s.Ack(10); err != nil {
		t.Fatal(err)
	}
	dump := copyDir(t, dir) // no Close

	c := openT(t, dump, o)
	if r := c.Recovered(); !r.Clean() || r.Entries != n-10 {
		t.Fatalf("Recovered %+v", r)
	}
	expectSeqs(t, c, maxLen, seqRange(11, n)...)
}

// TestTornLastRecord cuts the last segment inside its last record, at every
// kind of place a crash mid-write can leave it.
func TestTornLastRecord(t *testing.T) {
	const maxLen = 300
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 4096, MaxBytes: 1 << 20})
	var last uint64
	for i := uint64(1); i <= 30; i++ {
		last = mustAppend(t, s, payload(i, maxLen))
	}
	files := segFiles(t, dir)
	lastFile := files[len(files)-1]
	recLen := int64(headerSize + len(payload(last, maxLen)))

	for _, cut := range []int64{1, headerSize - 3, headerSize, headerSize + 1, recLen - 1} {
		dump := copyDir(t, dir)
		path := filepath.Join(dump, lastFile)
		st, _ := os.Stat(path)
		if err := os.Truncate(path, st.Size()-recLen+cut); err != nil {
			t.Fatal(err)
		}
		c := openT(t, dump, Options{SegmentBytes: 4096, MaxBytes: 1 << 20})
		r := c.Recovered()
		if r.TornBytes != cut || r.Entries != last-1 || len(r.Corrupt) != 0 {
			t.Fatalf("cut %d: Recovered %+v", cut, r)
		}
		if after, _ := os.Stat(path); after.Size() != st.Size()-recLen {
			t.Fatalf("cut %d: segment not truncated: %d", cut, after.Size())
		}
		expectSeqs(t, c, maxLen, seqRange(1, last-1)...)
		// The seq of the torn record was never returned by Append, so it
		// is used again.
		if seq := mustAppend(t, c, payload(last, maxLen)); seq != last {
			t.Fatalf("cut %d: next seq %d, want %d", cut, seq, last)
		}
		expectSeqs(t, c, maxLen, last)
		c.Close()
	}
}

// TestZeroFilledTail: after a power failure a file can end in zeros where
// data was never written; a zero header must not pass as a record.
func TestZeroFilledTail(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 5; i++ {
		mustAppend(t, s, payload(i, 100))
	}
	s.Close()
	f, err := os.OpenFile(filepath.Join(dir, segName(1)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 4096))
	f.Close()
	s = openT(t, dir, Options{})
	if r := s.Recovered(); r.TornBytes != 4096 || r.Entries != 5 {
		t.Fatalf("Recovered %+v", r)
	}
	expectSeqs(t, s, 100, seqRange(1, 5)...)
}

// TestCorruptEarlierSegment: a bad record that is not at the end of the last
// segment is damage, not a crash: exactly that record is skipped and
// reported, the intact records after it are kept.
func TestCorruptEarlierSegment(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 1024, MaxBytes: 1 << 20}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 100) // 8 records per segment
	for range 24 {
		mustAppend(t, s, data)
	}
	s.Close()
	// Flip a data byte of the 4th record of the second segment (seq 12).
	path := filepath.Join(dir, segName(9))
	b, _ := os.ReadFile(path)
	b[3*116+headerSize+50] ^= 0x40
	os.WriteFile(path, b, 0o600)

	s = openT(t, dir, o)
	r := s.Recovered()
	if len(r.Skipped) != 1 || r.SkippedRecords != 1 || r.SkippedUnacked != 1 || len(r.Corrupt) != 0 || r.TornBytes != 0 || r.Entries != 23 || r.Clean() {
		t.Fatalf("Recovered %+v", r)
	}
	t.Logf("recovery: %v", r)
	want := append(seqRange(1, 11), seqRange(13, 24)...)
	for _, w := range want {
		if e := readOne(t, s); e.Seq != w {
			t.Fatalf("read %d, want %d", e.Seq, w)
		}
	}
	expectEmpty(t, s)
	if st := s.Stats(); st.Entries != 23 || st.NextSeq != 25 || st.Damaged != 1 {
		t.Fatalf("Stats %+v", st)
	}
}

// A flipped byte in an already acknowledged record of the active (last)
// segment, in its data or in its header, is damage, not a torn write: the
// agent must not cut the segment there and lose the unacknowledged records
// after it. Exactly the damaged record is skipped, nothing unacknowledged
// is lost, and what was skipped is reported; appends continue after it.
func TestDamagedAckedRecordSkipsOnlyItself(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int // byte offset within record 5
	}{{"data", headerSize + 3}, {"length", 1}, {"seq", 9}, {"crc", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			const maxLen = 200
			var offs []int64
			var off int64
			for i := uint64(1); i <= 30; i++ {
				offs = append(offs, off)
				p := payload(i, maxLen)
				off += headerSize + int64(len(p))
				mustAppend(t, s, p)
			}
			if err := s.Ack(12); err != nil {
				t.Fatal(err)
			}
			s.Close()
			path := filepath.Join(dir, segName(1))
			b, _ := os.ReadFile(path)
			b[offs[4]+int64(tc.at)] ^= 0x10
			os.WriteFile(path, b, 0o600)

			s = openT(t, dir, Options{})
			r := s.Recovered()
			if r.TornBytes != 0 || r.SkippedRecords != 1 || r.SkippedUnacked != 0 || r.Entries != 18 {
				t.Fatalf("Recovered %+v", r)
			}
			t.Logf("recovery: %v", r)
			expectSeqs(t, s, maxLen, seqRange(13, 30)...)
			if seq := mustAppend(t, s, payload(31, maxLen)); seq != 31 {
				t.Fatalf("next seq %d", seq)
			}
			expectSeqs(t, s, maxLen, 31)
			s.Close()
			// Reopened again: clean, same entries.
			s = openT(t, dir, Options{})
			if r := s.Recovered(); !r.Clean() || r.Entries != 19 {
				t.Fatalf("second Open: %+v", r)
			}
			expectSeqs(t, s, maxLen, seqRange(13, 31)...)
		})
	}
}

// TestCorruptionFoundByRead: damage after Open is skipped by Read (to the
// next intact record) and counted, instead of wedging the reader with an
// error or dropping the rest of the segment.
func TestCorruptionFoundByRead(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentBytes: 1024, MaxBytes: 1 << 20})
	data := make([]byte, 100)
	for range 24 {
		mustAppend(t, s, data)
	}
	f, err := os.OpenFile(filepath.Join(dir, segName(9)), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 2*116+headerSize+1) // data of seq 11
	f.Close()
	want := append(seqRange(1, 10), seqRange(12, 24)...)
	for _, w := range want {
		if e := readOne(t, s); e.Seq != w {
			t.Fatalf("read %d, want %d", e.Seq, w)
		}
	}
	if st := s.Stats(); st.Corrupt != 1 || st.Damaged != 1 {
		t.Fatalf("Stats %+v", st)
	}
	// Rewind seeks by headers, which are intact, and finds the bad CRC again.
	s.Rewind()
	for _, w := range want {
		if e := readOne(t, s); e.Seq != w {
			t.Fatalf("after rewind: read %d, want %d", e.Seq, w)
		}
	}
}

func TestTornAckMark(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		mustAppend(t, s, nil) // payload(_, 1) is empty
	}
	for _, a := range []uint64{3, 5, 7} {
		if err := s.Ack(a); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	f, _ := os.OpenFile(filepath.Join(dir, ackName), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{9, 0, 0, 0, 0}) // a crash in the middle of Ack(9)
	f.Close()
	s = openT(t, dir, Options{})
	if r := s.Recovered(); r.AckedSeq != 7 || r.Entries != 3 {
		t.Fatalf("Recovered %+v", r)
	}
	expectSeqs(t, s, 1, 8, 9, 10)
}

func TestAckMarkIsCompacted(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	for i := uint64(1); i <= 2000; i++ {
		mustAppend(t, s, nil)
		if err := s.Ack(i); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, ackName))
	if err != nil || st.Size() > ackCompactAt {
		t.Fatalf("ack file: %v, %v", st.Size(), err)
	}
	if m, _ := readAckMark(dir); m != 2000 {
		t.Fatalf("mark %d", m)
	}
}

func TestSyncEvery(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 1024, MaxBytes: 1 << 20, SyncEvery: 2 * time.Millisecond}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 50; i++ {
		mustAppend(t, s, payload(i, 100))
		if i%10 == 0 {
			s.Ack(i - 5)
			time.Sleep(3 * time.Millisecond)
		}
	}
	if st := s.Stats(); st.SyncErrs != 0 {
		t.Fatalf("Stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, o)
	expectSeqs(t, s, 100, seqRange(46, 50)...)
}

// TestKill9 kills a process that is appending as fast as it can, with
// SIGKILL, and checks that every Append it reported as returned is on disk,
// intact and in order.
func TestKill9(t *testing.T) {
	if os.Getenv("SPOOL_CHILD_DIR") != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SPOOL_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var returned uint64
	sc := bufio.NewScanner(out)
	for returned < 3000 && sc.Scan() {
		if n, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
			returned = n
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if returned < 3000 {
		t.Fatalf("child reported only %d appends", returned)
	}
	s := openT(t, dir, childOptions)
	r := s.Recovered()
	t.Logf("child reported %d appends; recovery: %v", returned, r)
	if len(r.Corrupt) != 0 || r.Entries < returned {
		t.Fatalf("Recovered %+v, child reported %d", r, returned)
	}
	for i := uint64(1); i <= r.Entries; i++ {
		e := readOne(t, s)
		if e.Seq != i || !bytes.Equal(e.Data, payload(i, 3000)) {
			t.Fatalf("entry %d: got seq %d, %d bytes", i, e.Seq, len(e.Data))
		}
	}
}

var childOptions = Options{SegmentBytes: 64 << 10, MaxBytes: 64 << 20}

// TestKill9Child is the process TestKill9 kills.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv("SPOOL_CHILD_DIR")
	if dir == "" {
		t.Skip("only run by TestKill9")
	}
	s, err := Open(dir, childOptions)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := uint64(1); ; i++ {
		if _, err := s.Append(payload(i, 3000)); err != nil {
			t.Fatal(err)
		}
		// Reported only after Append returned.
		w.WriteString(strconv.FormatUint(i, 10) + "\n")
		if i%16 == 0 {
			w.Flush()
		}
	}
}
