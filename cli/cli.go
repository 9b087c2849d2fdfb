// Package cli is the collector's command-line client: `flowlog flows`,
// `top`, `tail`, `hosts`, `new` and `rejected` (FlowsCmd, TopCmd, TailCmd,
// HostsCmd, NewCmd, RejectedCmd, with their flags) ask a collector's HTTP API
// through api/client and print the answer as an aligned table (coloured on a
// terminal), JSON or JSON lines. This file holds what they share: connection
// and filter flags, exit codes; format.go the human formats and tables,
// resolve.go names given where ids are expected; one file per command.
//
// Exit codes, the same for every command and repeated in their --help
// (exitCodesHelp) so that scripts can rely on them:
//
//	0  success, including an empty result
//	1  usage: an unknown flag or a bad flag value; the message names the flag
//	2  the server refused the request (HTTP 4xx); its Message is printed
//	3  the server is unreachable, did not answer within --timeout, answered
//	   5xx or something unreadable; for tail: the stream ended and
//	   --no-reconnect was given
//	4  what --fail-empty, --fail-quiet or --fail-new asked about was found
//
// Kong itself rejects unknown flags and missing flag values before a command
// runs (main prints them with ParseFailed, status 1); every flag whose value
// can be wrong is a string checked here, so that a bad value exits 1 with a
// message naming the flag. The commands print their error themselves
// (cliIO.finish) and main exits with the code it carries.
package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/api/client"
)

const (
	exitOK          = 0
	exitUsage       = 1
	exitRefused     = 2
	exitUnavailable = 3
	exitEmpty       = 4
)

// exitCodesHelp ends the --help of the commands that answer once, status
// 4 meaning four ("": no status 4); tailExitCodesHelp that of tail.
func exitCodesHelp(four string) string {
	s := `
Exit status:

    0  success, including an empty result
    1  unknown flag or bad flag value (the message names the flag)
    2  the server refused the request (HTTP 4xx); its message is printed
    3  server unreachable, no answer within --timeout, HTTP 5xx or an unreadable answer
`
	if four != "" {
		s += "    4  " + four + "\n"
	}
	return s + formatsHelp
}

// formatsHelp ends every --help: the units and times of the tables.
const formatsHelp = `
Sizes are IEC, as on the web page (1 KiB = 1024 B); counts are k, M, G;
times are local, with milliseconds. Tables are coloured on a terminal
(--color; NO_COLOR=1 turns it off).`

const tailExitCodesHelp = `
Exit status:

    0  interrupted (SIGINT, SIGTERM) or --count flows printed
    1  unknown flag or bad flag value (the message names the flag)
    2  the server refused the request (HTTP 4xx); its message is printed
    3  with --no-reconnect: server unreachable, no answer within --timeout,
       HTTP 5xx, an unreadable answer, or the stream ended or went silent
` + formatsHelp

// exitError is an error with the status the process should exit with
// (main honours it, ExitCode); printed says the command printed it already.
type exitError struct {
	code    int
	msg     string
	printed bool
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }
func (e *exitError) Printed() bool { return e.printed }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// flagError is a usage error that names the flag.
func flagError(flag, format string, args ...any) error {
	return exitf(exitUsage, "--%s: %s", flag, fmt.Sprintf(format, args...))
}

// exitCode is the status err calls for: its own, 2 when the server refused
// the request, else 3.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	var ce *client.Error
	if errors.As(err, &ce) && ce.Refused {
		return exitRefused
	}
	return exitUnavailable
}

// cliIO is what the commands print to; zero values mean the process's own
// (tests inject buffers, a clock and a zone).
type cliIO struct {
	stdout, stderr io.Writer
	now            func() time.Time
	loc            *time.Location
	terminal       bool // with stdout injected: whether it is a terminal
}

// color tells whether tables are coloured under --color mode.
func (o *cliIO) color(mode string) bool {
	terminal := o.terminal
	if o.stdout == nil {
		terminal = isTerminal(os.Stdout)
	}
	return useColor(mode, terminal)
}

func (o *cliIO) out() io.Writer {
	if o.stdout == nil {
		return os.Stdout
	}
	return o.stdout
}

func (o *cliIO) errOut() io.Writer {
	if o.stderr == nil {
		return os.Stderr
	}
	return o.stderr
}

func (o *cliIO) clock() time.Time {
	if o.now == nil {
		return time.Now()
	}
	return o.now()
}

func (o *cliIO) zone() *time.Location {
	if o.loc == nil {
		return time.Local
	}
	return o.loc
}

// finish prints err the way the client commands do and returns it as an
// exitError with its status, marked printed, for main to exit with.
func (o *cliIO) finish(cmd string, err error) error {
	if err == nil {
		return nil
	}
	code := exitCode(err)
	// Messages can carry the server's text: no control characters.
	fmt.Fprintf(o.errOut(), "flowlog %s: %s\n", cmd, sanitize(err.Error()))
	if code == exitUsage {
		fmt.Fprintf(o.errOut(), "see 'flowlog %s --help'\n", cmd)
	}
	return &exitError{code: code, msg: err.Error(), printed: true}
}

// clientFlags say where the collector is and how to print its answer.
type clientFlags struct {
	Server  string `help:"Collector's HTTP API: URL, or host:port for plain http." default:"http://127.0.0.1:8080" env:"FLOWLOG_SERVER"`
	Token   string `help:"A reader's bearer token (the collector's --readers file), sent as 'Authorization: Bearer TOKEN' when set." env:"FLOWLOG_READER_TOKEN"`
	Timeout string `help:"How long to wait for an answer (tail: for the stream to open), e.g. 10s." default:"10s" env:"FLOWLOG_TIMEOUT"`
	Output  string `short:"o" help:"Output format: table, json or jsonl (one JSON object per line)." default:"table" env:"FLOWLOG_OUTPUT"`
	Color   string `help:"Colour the table: auto (on a terminal, unless NO_COLOR is set), always or never." default:"auto" placeholder:"auto|always|never" env:"FLOWLOG_COLOR"`
}

var outputFormats = []string{"table", "json", "jsonl"}

// client checks the flags and returns the API client they describe.
func (f *clientFlags) client() (*client.Client, error) {
	if !slices.Contains(outputFormats, f.Output) {
		return nil, flagError("output", "%q is not one of table, json, jsonl", f.Output)
	}
	if !slices.Contains(colorModes, f.Color) {
		return nil, flagError("color", "%q is not one of auto, always, never", f.Color)
	}
	timeout, err := time.ParseDuration(f.Timeout)
	if err != nil || timeout <= 0 {
		return nil, flagError("timeout", "%q is not a positive duration such as 10s or 1m", f.Timeout)
	}
	cl, err := client.New(f.Server, f.Token, timeout)
	if err != nil {
		return nil, flagError("server", "%v", err)
	}
	return cl, nil
}

// timeFlags are the time range of a query; --since and --until are their
// aliases (hubble's words). The command says what the range bounds with
// the tag set:"when=...".
type timeFlags struct {
	From string `aliases:"since" help:"Only ${when} at or after this time (alias --since): RFC 3339 (2026-11-24T10:00:00Z), local ('2026-11-24 10:00:00.250', 2026-11-24), or a duration back from now (30m, 1h, 7d)." placeholder:"TIME" env:"FLOWLOG_FILTER_FROM"`
	To   string `aliases:"until" help:"Only ${when} up to this time (alias --until; same forms as --from)." placeholder:"TIME" env:"FLOWLOG_FILTER_TO"`
}

// window parses --from and --to; a zero time was not given.
func (f *timeFlags) window(now time.Time, loc *time.Location) (from, to time.Time, err error) {
	if from, err = parseWhen("from", f.From, now, loc); err != nil {
		return
	}
	if to, err = parseWhen("to", f.To, now, loc); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		err = flagError("from", "%s is not before --to %s", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	return
}

// set adds the window to q as from and to.
func (f *timeFlags) set(q url.Values, now time.Time, loc *time.Location) error {
	from, to, err := f.window(now, loc)
	if err != nil {
		return err
	}
	if !from.IsZero() {
		q.Set("from", from.UTC().Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		q.Set("to", to.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// matchFlags are the filters of /api/v1/flows other than time and state
// (what /api/v1/new takes). Ids may be given as names (resolve.go).
type matchFlags struct {
	Network     string   `help:"Only this network (network_id)." placeholder:"ID" env:"FLOWLOG_FILTER_NETWORK"`
	SrcType     []string `name:"src-type" help:"Source type (repeatable, or comma-separated): node, user, extclient, egress_route, external." placeholder:"TYPE" env:"FLOWLOG_FILTER_SRC_TYPE"`
	DstType     []string `name:"dst-type" help:"Destination type (as --src-type)." placeholder:"TYPE" env:"FLOWLOG_FILTER_DST_TYPE"`
	SrcEntity   string   `name:"src-entity" help:"Source participant: its id or its name." placeholder:"ID|NAME" env:"FLOWLOG_FILTER_SRC_ENTITY"`
	DstEntity   string   `name:"dst-entity" help:"Destination participant: its id or its name." placeholder:"ID|NAME" env:"FLOWLOG_FILTER_DST_ENTITY"`
	Protocol    []string `help:"Protocol (repeatable, or comma-separated): a name (tcp, udp, icmp, ...) or a number 0-255." placeholder:"PROTO" env:"FLOWLOG_FILTER_PROTOCOL"`
	Host        string   `help:"Only flows reported by this host: its id (node_id) or its name." placeholder:"ID|NAME" env:"FLOWLOG_FILTER_HOST"`
	User        string   `help:"Only flows whose source or destination is this user (username); not with --src-*/--dst-*." placeholder:"NAME" env:"FLOWLOG_FILTER_USER"`
	IP          string   `name:"ip" help:"Only flows whose source or destination is this address or in this CIDR." placeholder:"ADDR|CIDR" env:"FLOWLOG_FILTER_IP"`
	SrcIP       string   `name:"src-ip" help:"Only flows whose source is this address or in this CIDR." placeholder:"ADDR|CIDR" env:"FLOWLOG_FILTER_SRC_IP"`
	DstIP       string   `name:"dst-ip" help:"Only flows whose destination is this address or in this CIDR." placeholder:"ADDR|CIDR" env:"FLOWLOG_FILTER_DST_IP"`
	Port        string   `help:"Only flows whose source or destination port is this one (1-65535)." placeholder:"PORT" env:"FLOWLOG_FILTER_PORT"`
	Direction   string   `help:"Only flows the reporting host accepted (ingress) or opened (egress)." placeholder:"ingress|egress" env:"FLOWLOG_FILTER_DIRECTION"`
	Participant string   `help:"Only flows with this participant (id or name) as source or destination." placeholder:"ID|NAME" env:"FLOWLOG_FILTER_PARTICIPANT"`
}

// filterFlags mirror the query parameters of /api/v1/flows.
type filterFlags struct {
	Time  timeFlags  `embed:"" set:"when=flows starting"`
	Match matchFlags `embed:""`
	State string     `help:"Only open flows (active), ended ones (finished), open ones nobody reported for --stale-after (stale), or all." placeholder:"all|active|finished|stale" env:"FLOWLOG_FILTER_STATE"`
	// Observations: a connection both ends report is one flow (the
	// initiator's observation) unless all are asked for.
	Observations string `help:"A connection both of its hosts report: its initiator's observation only (one) or every host's (all)." placeholder:"one|all" env:"FLOWLOG_FILTER_OBSERVATIONS"`
}

// query checks the filters and returns them as query parameters; relative
// times are taken back from now, times without a zone are in loc.
func (f *filterFlags) query(now time.Time, loc *time.Location) (url.Values, error) {
	q, err := f.Match.query()
	if err != nil {
		return nil, err
	}
	if err := f.Time.set(q, now, loc); err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(f.State); s != "" {
		if _, ok := flowlog.ParseState(s); !ok {
			return nil, flagError("state", "%q is not one of %s", s, strings.Join(flowlog.StateNames[:], ", "))
		}
		q.Set("state", s)
	}
	if s := strings.TrimSpace(f.Observations); s != "" {
		if s != "one" && s != "all" {
			return nil, flagError("observations", "%q is not one or all", s)
		}
		q.Set("observations", s)
	}
	return q, nil
}

// query checks the filters and returns them as query parameters.
func (f *matchFlags) query() (url.Values, error) {
	q := url.Values{}
	set := func(name, v string) {
		if v = strings.TrimSpace(v); v != "" {
			q.Set(name, v)
		}
	}
	set("network_id", f.Network)
	set("src_entity_id", f.SrcEntity)
	set("dst_entity_id", f.DstEntity)
	set("node_id", f.Host)
	set("username", f.User)
	set("participant", f.Participant)

	types := flowlog.ParticipantTypeNames[1:]
	for _, l := range []struct {
		flag, param string
		values      []string
	}{{"src-type", "src_type", f.SrcType}, {"dst-type", "dst_type", f.DstType}} {
		for _, v := range splitList(l.values) {
			if !slices.Contains(types, v) {
				return nil, flagError(l.flag, "%q is not one of %s", v, strings.Join(types, ", "))
			}
			q.Add(l.param, v)
		}
	}
	for _, v := range splitList(f.Protocol) {
		if _, err := flowlog.ParseProtocol(v); err != nil {
			return nil, flagError("protocol", "%v", err)
		}
		q.Add("protocol", strings.ToLower(v))
	}
	if f.User != "" && (len(f.SrcType) > 0 || len(f.DstType) > 0 || f.SrcEntity != "" || f.DstEntity != "") {
		return nil, flagError("user", "cannot be combined with --src-type, --dst-type, --src-entity or --dst-entity")
	}
	for _, a := range []struct{ flag, param, value string }{{"ip", "ip", f.IP}, {"src-ip", "src_ip", f.SrcIP}, {"dst-ip", "dst_ip", f.DstIP}} {
		if s := strings.TrimSpace(a.value); s != "" {
			if _, ok := flowlog.ParseAddrPrefix(s); !ok {
				return nil, flagError(a.flag, "%q is neither an IP address nor a CIDR such as 10.10.0.0/16", s)
			}
			q.Set(a.param, s)
		}
	}
	if s := strings.TrimSpace(f.Port); s != "" {
		// As the API: port 0 would mean "no filter" there, so it refuses it.
		if n, err := strconv.ParseUint(s, 10, 16); err != nil || n == 0 {
			return nil, flagError("port", "%q is not a port number 1-65535", s)
		}
		q.Set("port", s)
	}
	if s := strings.TrimSpace(f.Direction); s != "" {
		if _, ok := flowlog.ParseDirection(s); !ok {
			return nil, flagError("direction", "%q is not ingress or egress", s)
		}
		q.Set("direction", s)
	}
	return q, nil
}

// splitList accepts both --x a --x b and --x a,b (kong already splits flag
// values at commas; env values and stray blanks are handled here).
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// localLayouts are the times without a zone --from and --to accept, in
// local time (with fractions of a second: Go accepts them after the
// seconds): the table's times can be pasted back.
var localLayouts = []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

// parseWhen reads an RFC 3339 time, a local time (localLayouts), "now", or
// a duration back from now ("30m", "1h", "7d"). The zero time means not given.
func parseWhen(flag, s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return time.Time{}, nil
	case "now":
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	var d Duration // Go durations and whole days
	if err := d.UnmarshalText([]byte(strings.TrimPrefix(s, "-"))); err == nil {
		return now.Add(-time.Duration(d)), nil
	}
	return time.Time{}, flagError(flag, "%q is not an RFC 3339 time (2026-11-24T10:00:00Z), a local time (2026-11-24 10:00) or a duration back from now (30m, 1h, 7d)", s)
}

// Duration is a time.Duration that also accepts whole days ("30d"), the
// natural unit of a retention and of "how far back".
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return fmt.Errorf("invalid duration %q: want a positive number of days like 30d, or a Go duration like 720h", s)
		}
		*d = Duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("invalid duration %q: want a positive Go duration like 500ms or 720h, or days like 30d", s)
	}
	*d = Duration(v)
	return nil
}

// positiveInt reads a count flag.
func positiveInt(flag, s string, min int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < min {
		return 0, flagError(flag, "%q is not a whole number >= %d", s, min)
	}
	return n, nil
}

// writeList prints an answer's elements as --output asks: one JSON array,
// JSON lines, or the table that table writes.
func (f *clientFlags) writeList(w io.Writer, raws []json.RawMessage, table func(io.Writer) error) error {
	var err error
	switch f.Output {
	case "json":
		err = writeJSONArray(w, raws)
	case "jsonl":
		err = writeJSONLines(w, raws)
	default:
		err = table(w)
	}
	if err != nil {
		return exitf(exitUnavailable, "writing output: %v", err)
	}
	return nil
}

// writeJSONArray prints elements as one indented JSON array ([] when empty).
func writeJSONArray(w io.Writer, elems []json.RawMessage) error {
	if elems == nil {
		elems = []json.RawMessage{}
	}
	b, err := json.MarshalIndent(elems, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeJSONLines prints each element compacted on its own line.
func writeJSONLines(w io.Writer, elems []json.RawMessage) error {
	var buf bytes.Buffer
	for _, e := range elems {
		if err := json.Compact(&buf, e); err != nil {
			return err
		}
		buf.WriteByte('\n')
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// sanitize keeps names that come from agents' configs from moving the
// terminal's cursor or breaking the table: control characters (tabs and
// escapes included) become '?'.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// backoff is the wait before reconnect attempt n (0-based): doubling from
// first up to max, with ±20% jitter so that many clients do not return at once.
func backoff(n int, first, max time.Duration) time.Duration {
	d := first
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// writeJSONIndented prints one JSON value indented.
func writeJSONIndented(w io.Writer, v json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, v, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
