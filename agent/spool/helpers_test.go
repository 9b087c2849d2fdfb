package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// openT opens a spool that is closed when the test ends.
func openT(t testing.TB, dir string, o Options) *Spool {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// payload is deterministic test data for seq: 0..maxLen-1 bytes, so a reader
// can check any entry it gets without shared state.
func payload(seq uint64, maxLen int) []byte {
	h := seq * 0x9e3779b97f4a7c15
	n := int(h>>33) % maxLen
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*7 + uint64(i)*13)
	}
	if n >= 8 {
		binary.LittleEndian.PutUint64(b, seq)
	}
	return b
}

func mustAppend(t testing.TB, s *Spool, data []byte) uint64 {
	t.Helper()
	seq, err := s.Append(data)
	if err != nil {
		t.Fatalf("Append(%d bytes): %v", len(data), err)
	}
	return seq
}

func readOne(t testing.TB, s *Spool) Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := s.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return e
}

// expectSeqs reads len(seqs) entries and checks their seqs and payloads.
func expectSeqs(t testing.TB, s *Spool, maxLen int, seqs ...uint64) {
	t.Helper()
	for _, want := range seqs {
		e := readOne(t, s)
		if e.Seq != want {
			t.Fatalf("Read seq %d, want %d", e.Seq, want)
		}
		if !bytes.Equal(e.Data, payload(want, maxLen)) {
			t.Fatalf("seq %d: data differs (%d bytes)", want, len(e.Data))
		}
	}
}

func seqRange(from, to uint64) []uint64 {
	var r []uint64
	for i := from; i <= to; i++ {
		r = append(r, i)
	}
	return r
}

// expectEmpty checks that Read has nothing to return right now.
func expectEmpty(t testing.TB, s *Spool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if e, err := s.Read(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Read = seq %d, %v; want nothing (deadline)", e.Seq, err)
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// copyDir copies the regular files of src into a new directory: a snapshot
// of what a process killed at this moment would leave behind.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dst
}
