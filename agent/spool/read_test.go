package spool

import (
	"context"
	"errors"
	"testing"
	"time"
)

type readResult struct {
	e   Entry
	err error
}

// readAsync starts a Read and returns its result channel.
func readAsync(s *Spool, ctx context.Context) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		e, err := s.Read(ctx)
		ch <- readResult{e, err}
	}()
	return ch
}

// stillBlocked checks that ch has no result for a little while.
func stillBlocked(t *testing.T, ch <-chan readResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("Read returned early: seq %d, %v", r.e.Seq, r.err)
	case <-time.After(50 * time.Millisecond):
	}
}

func await(t *testing.T, ch <-chan readResult) readResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return")
		return readResult{}
	}
}

func TestReadBlocksUntilAppend(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	ch := readAsync(s, t.Context())
	stillBlocked(t, ch)
	mustAppend(t, s, []byte("hello"))
	if r := await(t, ch); r.err != nil || r.e.Seq != 1 || string(r.e.Data) != "hello" {
		t.Fatalf("got %+v", r)
	}
}

func TestReadHonorsContext(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(t.Context())
	ch := readAsync(s, ctx)
	stillBlocked(t, ch)
	cancel()
	if r := await(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %+v, want context.Canceled", r)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if r := await(t, readAsync(s, ctx)); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("got %+v, want DeadlineExceeded", r)
	}
	// The cursor is intact after a cancelled Read.
	mustAppend(t, s, []byte("x"))
	if e := readOne(t, s); e.Seq != 1 {
		t.Fatalf("read %d", e.Seq)
	}
}

func TestRewindWakesBlockedRead(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	for range 3 {
		mustAppend(t, s, nil)
	}
	expectSeqs(t, s, 1, 1, 2, 3)
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	ch := readAsync(s, t.Context())
	stillBlocked(t, ch)
	s.Rewind() // e.g. the exporter's stream broke
	if r := await(t, ch); r.err != nil || r.e.Seq != 2 {
		t.Fatalf("got %+v, want seq 2", r)
	}
}

func TestCloseWakesBlockedRead(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch := readAsync(s, t.Context())
	stillBlocked(t, ch)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := await(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("got %+v, want ErrClosed", r)
	}
}
