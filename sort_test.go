package flowlog

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseSort(t *testing.T) {
	for _, c := range []struct {
		key, order string
		want       Sort
		err        string
	}{
		{"", "", Sort{}, ""},
		{"bytes", "", Sort{Key: SortBytes}, ""},
		{"duration", "asc", Sort{Key: SortDuration, Asc: true}, ""},
		{"start", "desc", Sort{}, ""},
		{"packets", "", Sort{}, `invalid sort "packets": must be one of start, bytes, duration`},
		{"bytes", "up", Sort{}, `invalid order "up": must be one of asc, desc`},
	} {
		got, err := ParseSort(c.key, c.order)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q %q: %v, want %s", c.key, c.order, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q %q: %+v %v", c.key, c.order, got, err)
		}
	}
}

// An open flow lasts until now: longer than any ended one, the older the
// longer, and its value does not change while it stays open.
func TestDurationSortValue(t *testing.T) {
	d := Sort{Key: SortDuration}
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ended := Flow{Event: Event{Type: EventDestroy, Start: t0, End: t0.Add(100 * 24 * time.Hour)}}
	old := Flow{Event: Event{Type: EventStart, Start: t0}, Active: true}
	young := Flow{Event: Event{Type: EventStart, Start: t0.Add(time.Hour)}, Active: true}
	if !(d.SortValue(&old) > d.SortValue(&young) && d.SortValue(&young) > d.SortValue(&ended)) {
		t.Errorf("values: old open %d, young open %d, ended %d", d.SortValue(&old), d.SortValue(&young), d.SortValue(&ended))
	}
	if got := d.SortValue(&ended); got != uint64(100*24*time.Hour/time.Millisecond) {
		t.Errorf("ended flow: %d ms", got)
	}
	backwards := Flow{Event: Event{Type: EventDestroy, Start: t0, End: t0.Add(-time.Second)}}
	if got := d.SortValue(&backwards); got != 0 {
		t.Errorf("end before start: %d, want 0", got)
	}
}

func TestPrefixLens(t *testing.T) {
	l := DefaultPrefixLens
	for a, want := range map[string]string{
		"203.0.113.200":        "203.0.113.0/24",
		"::ffff:203.0.113.200": "203.0.113.0/24",
		"2001:db8:1:2::5":      "2001:db8:1::/48",
	} {
		if got := l.Of(netip.MustParseAddr(a)).String(); got != want {
			t.Errorf("%s: %s, want %s", a, got, want)
		}
	}
	if err := (PrefixLens{V4: 0, V6: 48}).Check(); err == nil {
		t.Error("/0 accepted")
	}
	for s, want := range map[string]string{"10.0.0.7": "10.0.0.7/32", "10.1.2.3/8": "10.0.0.0/8", "::ffff:10.0.0.0/104": "10.0.0.0/8", "fd00::1/64": "fd00::/64"} {
		if p, ok := ParseAddrPrefix(s); !ok || p.String() != want {
			t.Errorf("%s: %s %v, want %s", s, p, ok, want)
		}
	}
	for _, s := range []string{"", "10.0.0.0/33", "fe80::1%eth0", "web-1"} {
		if _, ok := ParseAddrPrefix(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestCleanAgent(t *testing.T) {
	if got := CleanAgent(" flowlog-agent/v1 \x1b[31mgrpc-go/1.70.0\n"); got != "flowlog-agent/v1 [31mgrpc-go/1.70.0" {
		t.Errorf("got %q", got)
	}
	long := CleanAgent(strings.Repeat("é", 300))
	if len(long) > MaxAgentLen || !strings.HasPrefix(long, "éé") || strings.ContainsRune(long, '\uFFFD') {
		t.Errorf("long agent cut to %d bytes: %q", len(long), long)
	}
}
