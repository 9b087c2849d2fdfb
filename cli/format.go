package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/api"
)

// Human formats: the page's (web/src/format.ts), so that a number read in
// the CLI is the number read on the page.

// iecUnits are the page's units: one system, powers of 1024.
var iecUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// humanBytes prints a size as the page does: 999 B, 1.2 KiB, 3.3 MiB,
// 12 GiB (one decimal below 10, none above).
func humanBytes(n uint64) string {
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	v, i := float64(n), 0
	for v >= 1024 && i < len(iecUnits)-1 {
		v /= 1024
		i++
	}
	return oneDecimalBelowTen(v) + " " + iecUnits[i]
}

// oneDecimalBelowTen prints 1.2, 9.9, 12, 1023. A value that would round
// up to the next unit's size is left as it is: 1024 KiB is still exact.
func oneDecimalBelowTen(v float64) string {
	if v < 9.95 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// humanCount prints a count (packets, events) as the page does: 999, 1.2k,
// 45k, 2.5M, 3.1G.
func humanCount(n uint64) string {
	switch {
	case n < 1000:
		return strconv.FormatUint(n, 10)
	case n < 1e6:
		return oneDecimalBelowTen(float64(n)/1e3) + "k"
	case n < 1e9:
		return oneDecimalBelowTen(float64(n)/1e6) + "M"
	}
	return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + "G"
}

// humanRate prints a per-second rate: 0, <0.01 (not nothing), 0.35, 12.5,
// 1.2k.
func humanRate(v float64) string {
	switch {
	case v <= 0:
		return "0"
	case v < 0.01:
		return "<0.01"
	case v < 10:
		return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 2, 64), "0"), ".")
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return humanCount(uint64(v))
}

// humanDuration prints a duration short and rounded: 350ms, 1.5s, 42s,
// 3m20s, 2h5m, 3d4h.
func humanDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	if r := d.Round(100 * time.Millisecond); r < time.Minute {
		return strings.TrimSuffix(strconv.FormatFloat(r.Seconds(), 'f', 1, 64), ".0") + "s"
	}
	two := func(a int64, ua string, b int64, ub string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, ua)
		}
		return fmt.Sprintf("%d%s%d%s", a, ua, b, ub)
	}
	if r := d.Round(time.Second); r < time.Hour {
		s := int64(r / time.Second)
		return two(s/60, "m", s%60, "s")
	}
	if r := d.Round(time.Minute); r < 24*time.Hour {
		m := int64(r / time.Minute)
		return two(m/60, "h", m%60, "m")
	}
	h := int64(d.Round(time.Hour) / time.Hour)
	return two(h/24, "d", h%24, "h")
}

// humanTimeLayout is every time the CLI prints, in local time with
// milliseconds (the rejected events' table, api.RejectedCells, too); --from
// and --to accept it back.
const humanTimeLayout = "2006-01-02 15:04:05.000"

// humanTime prints t in loc, "-" for the zero time and the epoch (what the
// API sends for "none").
func humanTime(t time.Time, loc *time.Location) string {
	if t.IsZero() || t.Unix() == 0 {
		return "-"
	}
	return t.In(loc).Format(humanTimeLayout)
}

func protocolName(p uint16) string {
	if p > 255 {
		return strconv.Itoa(int(p))
	}
	return flowlog.ProtocolName(uint8(p))
}

// endpoint is a flow's end as people read it: the participant's name when
// known, else its address, and the port when the protocol has ports.
func endpoint(name, ip string, port uint16, proto uint16) string {
	host := name
	if host == "" {
		host = ip
		if strings.Contains(ip, ":") && port != 0 { // IPv6
			host = "[" + ip + "]"
		}
	}
	if host == "" {
		host = "?"
	}
	if port == 0 {
		return host
	}
	return host + ":" + strconv.Itoa(int(port))
}

// flowColumns are the columns of a flow: sizes right-aligned.
var flowColumns = []column{{title: "START"}, {title: "DURATION"}, {title: "HOST"}, {title: "PROTO"}, {title: "SRC"},
	{title: "DIR"}, {title: "DST"}, {title: "SENT", right: true}, {title: "RECV", right: true}, {title: "STATE"}}

// flowCells are a flow's table cells, in flowColumns order.
func flowCells(r *api.FlowRow, loc *time.Location) []string {
	dur, state := "active", r.State // active, finished or stale
	if state == "" {                // a collector from before the states
		state = map[bool]string{true: "active", false: "finished"}[r.Active]
	}
	if state == "stale" {
		dur = "stale"
	}
	if !r.Active && state != "stale" {
		dur = "-"
		if r.EndTs.Unix() > 0 && !r.EndTs.Before(r.StartTs) {
			dur = humanDuration(r.EndTs.Sub(r.StartTs))
		}
	}
	host := r.HostName
	if host == "" {
		host = r.HostID
	}
	dir := "-"
	switch r.Direction {
	case "egress":
		dir = "→"
	case "ingress":
		dir = "←"
	}
	return cleanCells([]string{
		humanTime(r.StartTs, loc), dur, host, protocolName(r.Protocol),
		endpoint(r.SrcEntityName, r.SrcIP, r.SrcPort, r.Protocol), dir,
		endpoint(r.DstEntityName, r.DstIP, r.DstPort, r.Protocol),
		humanBytes(r.BytesSent), humanBytes(r.BytesRecv), state,
	})
}

// flowStyle colours a flow's direction and state.
func flowStyle(col int, text string) string {
	switch {
	case col == 5 && text == "→":
		return ansiCyan
	case col == 5 && text == "←":
		return ansiMagenta
	case col == 9 && text == "active":
		return ansiGreen
	case col == 9:
		return ansiDim
	}
	return ""
}

// cleanCells sanitizes cells (see sanitize) and prints empty ones as "-".
func cleanCells(cells []string) []string {
	for i, c := range cells {
		cells[i] = sanitize(c)
		if cells[i] == "" {
			cells[i] = "-"
		}
	}
	return cells
}

// Colour.

const (
	ansiBold    = "1"
	ansiDim     = "2"
	ansiRed     = "31"
	ansiGreen   = "32"
	ansiYellow  = "33"
	ansiMagenta = "35"
	ansiCyan    = "36"
)

var colorModes = []string{"auto", "always", "never"}

// useColor decides --color: always and never say it; auto colours a
// terminal, unless NO_COLOR is set (https://no-color.org) or TERM is dumb.
func useColor(mode string, terminal bool) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	return terminal && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// isTerminal reports whether w is a terminal (a character device; /dev/null
// is one too, where colour does no harm).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Tables.

// column is a table column: its title, and whether its values (numbers)
// align right.
type column struct {
	title string
	right bool
}

// layout aligns rows under columns. Widths only grow (tail prints rows as
// they come, fitted to what came before); colour, when on, is added around
// the padded text so it never counts towards a width.
type layout struct {
	cols   []column
	widths []int
	color  bool
	style  func(col int, text string) string // an ANSI code or ""; may be nil
}

func newLayout(cols []column, color bool, style func(int, string) string) *layout {
	l := &layout{cols: cols, widths: make([]int, len(cols)), color: color, style: style}
	for i, c := range cols {
		l.widths[i] = utf8.RuneCountInString(c.title)
	}
	return l
}

// fit widens the columns to hold cells.
func (l *layout) fit(cells []string) {
	for i, c := range cells {
		l.widths[i] = max(l.widths[i], utf8.RuneCountInString(c))
	}
}

// line is cells padded to the widths (fitted first), two spaces apart,
// without trailing blanks.
func (l *layout) line(cells []string, header bool) string {
	l.fit(cells)
	var b strings.Builder
	for i, c := range cells {
		pad := strings.Repeat(" ", l.widths[i]-utf8.RuneCountInString(c))
		last := i == len(cells)-1
		if i > 0 {
			b.WriteString("  ")
		}
		if l.cols[i].right {
			b.WriteString(pad)
		}
		code := ""
		if l.color && header {
			code = ansiBold
		} else if l.color && l.style != nil {
			code = l.style(i, c)
		}
		if code != "" {
			b.WriteString("\x1b[" + code + "m" + c + "\x1b[0m")
		} else {
			b.WriteString(c)
		}
		if !l.cols[i].right && !last {
			b.WriteString(pad)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

func (l *layout) header() string {
	titles := make([]string, len(l.cols))
	for i, c := range l.cols {
		titles[i] = c.title
	}
	return l.line(titles, true)
}

// writeTable prints a header and rows, aligned.
func writeTable(w io.Writer, l *layout, rows [][]string) error {
	for _, r := range rows {
		l.fit(r)
	}
	var b strings.Builder
	b.WriteString(l.header())
	for _, r := range rows {
		b.WriteString(l.line(r, false))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
