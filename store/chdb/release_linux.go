package chdb

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseStartupPages drops from the process the pages of the engine's
// library (code and constants) that are still mapped from the file as is,
// and returns how many bytes of RSS that released.
//
// The engine touches about 150 MiB of its 560 MiB library while it starts
// (registering every function, format and table engine), of which the
// ingest and the queries later use some 50 MiB (BENCHMARKS.md, "Engine
// memory"). Those pages are clean copies of the file: madvise(DONTNEED)
// only unmaps them, they stay in the page cache, the kernel reclaims them
// first when memory is short, and a page the engine needs again is mapped
// back by a minor fault (a major one if it was reclaimed). Pages the
// process has written (the relocated read-only data) are private copies
// that DONTNEED would throw away: a mapping holding any of them, or
// writable, is left alone. It is safe while statements run (their pages
// fault back in); it pays once the engine has started and the schema is in
// place, as everything touched only for that goes.
func (db *DB) ReleaseStartupPages() (int64, error) {
	lib, err := filepath.EvalSymlinks(process.libPath)
	if err != nil {
		return 0, err
	}
	maps, err := libMappings(lib)
	if err != nil {
		return 0, err
	}
	var released int64
	for _, m := range maps {
		if !m.clean() {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise of the engine's library pages: %w", errno)
		}
		released += m.rss
	}
	return released, nil
}

// mapping is one entry of /proc/self/smaps.
type mapping struct {
	start, end uintptr
	perms      string
	rss, anon  int64 // bytes resident, of which private copies (written pages)
	locked     int64
}

// clean says the mapping holds only unmodified pages of its file, and
// always will: it cannot be written.
func (m mapping) clean() bool {
	return !strings.Contains(m.perms, "w") && m.anon == 0 && m.locked == 0
}

// libMappings reads the mappings of the file path from /proc/self/smaps.
func libMappings(path string) ([]mapping, error) {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header: range perms offset dev inode [path]
			cur = nil
			if len(f) < 6 || f[5] != path {
				continue
			}
			lo, hi, ok := strings.Cut(f[0], "-")
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("/proc/self/smaps: unexpected line %q", sc.Text())
			}
			out = append(out, mapping{start: uintptr(s), end: uintptr(e), perms: f[1]})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			cur.rss = kb << 10
		case "Anonymous:":
			cur.anon = kb << 10
		case "Locked:":
			cur.locked = kb << 10
		}
	}
	return out, sc.Err()
}
