package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDamagedSpool flips bytes of a spool's segments at rest and reopens
// it: Open never fails on damage, Read returns only records exactly as they
// were appended, in increasing seq order, and every intact unacknowledged
// record is returned (damage costs only the damaged records).
//
// The input is: one byte of ack mark (0..40), then (uint16 offset, xor)
// triples, offsets modulo the bytes of the spool's segments.
func FuzzDamagedSpool(f *testing.F) {
	f.Add([]byte{12, 0, 100, 0x10})
	f.Add([]byte{0, 0, 1, 0xff, 0, 200, 0x01})
	f.Add([]byte{40, 1, 0, 0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		const n, maxLen = 40, 120
		o := Options{SegmentBytes: 1024, MaxBytes: 1 << 20}
		dir := t.TempDir()
		s, err := Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			file     string
			from, to int64
		}
		var recs []rec
		for i := uint64(1); i <= n; i++ {
			mustAppend(t, s, payload(i, maxLen))
		}
		ack := uint64(in[0]) % (n + 1)
		if ack > 0 {
			if err := s.Ack(ack); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		// Where each record lies, before damage.
		var files []string
		var total int64
		for _, name := range segFiles(t, dir) {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			for off := int64(0); off+headerSize <= int64(len(b)); {
				h := parseHeader(b[off:])
				for uint64(len(recs)) < h.seq-1 { // deleted, acknowledged segments
					recs = append(recs, rec{})
				}
				recs = append(recs, rec{name, total + off, total + off + headerSize + int64(h.length)})
				off += headerSize + int64(h.length)
			}
			files = append(files, name)
			total += int64(len(b))
		}
		if total == 0 {
			return
		}
		damaged := map[uint64]bool{}
		for m := in[1:]; len(m) >= 3; m = m[3:] {
			pos := int64(binary.BigEndian.Uint16(m)) % total
			if m[2] == 0 {
				continue
			}
			var base int64
			for _, name := range files {
				path := filepath.Join(dir, name)
				st, _ := os.Stat(path)
				if pos < base+st.Size() {
					b, _ := os.ReadFile(path)
					b[pos-base] ^= m[2]
					os.WriteFile(path, b, 0o600)
					break
				}
				base += st.Size()
			}
			for i, r := range recs {
				if r.file != "" && pos >= r.from && pos < r.to {
					damaged[uint64(i+1)] = true
				}
			}
		}

		s, err = Open(dir, o)
		if err != nil {
			t.Fatalf("Open after damage: %v", err)
		}
		defer s.Close()
		got := map[uint64]bool{}
		var prev uint64
		readable := func() bool { // records cut off the end leave nothing to read below NextSeq
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.readSeq <= s.lastSeq
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for readable() {
			e, err := s.Read(ctx)
			if err != nil {
				t.Fatalf("Read (stats %+v): %v", s.Stats(), err)
			}
			if e.Seq <= prev || !bytes.Equal(e.Data, payload(e.Seq, maxLen)) {
				t.Fatalf("read seq %d after %d, data ok %v", e.Seq, prev, bytes.Equal(e.Data, payload(e.Seq, maxLen)))
			}
			prev = e.Seq
			got[e.Seq] = true
		}
		for seq := ack + 1; seq <= n; seq++ {
			if !damaged[seq] && !got[seq] {
				t.Fatalf("intact unacknowledged seq %d was not read (ack %d, damaged %v, recovery %v)", seq, ack, damaged, s.Recovered())
			}
		}
	})
}
