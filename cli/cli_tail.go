package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/api/client"
)

const (
	tailFirstBackoff = 500 * time.Millisecond
	tailMaxBackoff   = 30 * time.Second
	// tailSteady: a stream that lasted this long was healthy, so the next
	// reconnect starts again from the first backoff.
	tailSteady = 10 * time.Second
)

// TailCmd is `flowlog tail`: flows as the collector commits them, from its
// Server-Sent Events stream.
type TailCmd struct {
	Conn   clientFlags `embed:""`
	Filter filterFlags `embed:"" group:"Filters"`

	Last        string `help:"First print the last N flows that started (oldest first), then follow (default ${default})." default:"0" placeholder:"N" env:"FLOWLOG_TAIL_LAST"`
	Count       string `help:"Exit (status 0) after this many flows, those of --last included; 0 runs until interrupted (default ${default})." default:"0" placeholder:"N" env:"FLOWLOG_TAIL_COUNT"`
	NoReconnect bool   `help:"Exit with status 3 when the stream ends or breaks instead of reconnecting." env:"FLOWLOG_TAIL_NO_RECONNECT"`
	IdleTimeout string `help:"Reconnect when nothing, not even a keepalive, arrived for this long; 0 waits forever." default:"2m" env:"FLOWLOG_TAIL_IDLE_TIMEOUT"`

	io           cliIO
	firstBackoff time.Duration // 0: tailFirstBackoff; tests shorten it
	table        *layout       // table output: the columns' widths so far
}

func (c *TailCmd) Help() string {
	return `Prints flows as the collector commits them (a flow appears when it opens
and again when it ends), one line per flow with the columns of 'flowlog flows'
(START DURATION HOST PROTO SRC DIR DST SENT RECV STATE, aligned; a column
widens when a longer value comes), or one JSON object per line with --output
jsonl (json means jsonl here). --last N prints the N flows that started last
before following (a flow also in the stream is not printed twice). --to is
refused: the stream only has flows from now on. When the server
dropped events because this client read too slowly, "-- lost N events (client
too slow)" goes to stderr. A broken stream is reopened with exponential backoff
(0.5s doubling to 30s, reported on stderr) unless --no-reconnect is given; a
4xx answer is never retried. SIGINT or SIGTERM ends it with status 0.

    flowlog tail --network mesh1 --protocol tcp --last 20
    flowlog tail --host web-1 --color never
    flowlog tail -o jsonl --count 10 --no-reconnect
` + tailExitCodesHelp
}

// Run follows until ctx ends (main cancels it on SIGINT and SIGTERM).
func (c *TailCmd) Run(ctx context.Context) error {
	return c.io.finish("tail", c.run(ctx))
}

// tailState survives reconnects.
type tailState struct {
	count  int    // flows to print before exiting; 0: no limit
	seen   int    // flows printed
	lastID string // SSE id of the last event, sent back as Last-Event-ID
	last   int    // --last: flows to print before following
	// backlog holds the flows --last printed (flow id and version) until
	// the stream repeats them: those are skipped.
	backlog     map[string]bool
	backlogDone bool
}

// outputError is a failure to print: reconnecting would not help.
type outputError struct{ error }

func (c *TailCmd) run(ctx context.Context) error {
	cl, err := c.Conn.client()
	if err != nil {
		return err
	}
	q, err := c.Filter.query(c.io.clock(), c.io.zone())
	if err != nil {
		return err
	}
	if strings.TrimSpace(c.Filter.Time.To) != "" {
		return flagError("to", "tail follows flows as they come and would wait forever for the end of a range; use 'flowlog flows --to'")
	}
	st := &tailState{}
	if st.count, err = positiveInt("count", c.Count, 0); err != nil {
		return err
	}
	if st.last, err = positiveInt("last", c.Last, 0); err != nil {
		return err
	}
	if err := resolveNames(ctx, cl, q); err != nil {
		return err
	}
	c.table = newLayout(flowColumns, c.io.color(c.Conn.Color), flowStyle)
	idle, err := time.ParseDuration(strings.TrimSpace(c.IdleTimeout))
	if err != nil || idle < 0 {
		return flagError("idle-timeout", "%q is not a duration such as 2m (0 to wait forever)", c.IdleTimeout)
	}
	first := c.firstBackoff
	if first <= 0 {
		first = tailFirstBackoff
	}

	for attempt := 0; ; attempt++ {
		begun := time.Now()
		err := c.stream(ctx, cl, q, st, idle)
		if err == nil || ctx.Err() != nil { // --count reached, or interrupted
			return nil
		}
		var oe outputError
		if errors.As(err, &oe) {
			return exitf(exitUnavailable, "writing output: %v", oe.error)
		}
		if c.NoReconnect || exitCode(err) == exitRefused || exitCode(err) == exitUsage {
			return err
		}
		if time.Since(begun) >= tailSteady {
			attempt = 0
		}
		wait := backoff(attempt, first, tailMaxBackoff)
		fmt.Fprintf(c.io.errOut(), "-- %v; reconnecting in %s\n", err, wait.Round(10*time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// stream reads one connection of the event stream. It returns nil once
// --count flows were printed, else why the stream ended.
func (c *TailCmd) stream(parent context.Context, cl *client.Client, q url.Values, st *tailState, idle time.Duration) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	// Why this function cancelled ctx: 1 no headers within --timeout,
	// 2 silent for --idle-timeout.
	var why atomic.Int32
	headers := time.AfterFunc(cl.Timeout(), func() { why.CompareAndSwap(0, 1); cancel() })
	body, err := cl.Stream(ctx, q, st.lastID)
	headers.Stop()
	if err != nil {
		if why.Load() == 1 {
			return exitf(exitUnavailable, "no answer from %s within %s (--timeout)", cl.Host(), cl.Timeout())
		}
		return err
	}
	defer body.Close()
	// The backlog is read once the stream is open, so that no flow falls
	// between the two; one in both is printed once (tailState.backlog).
	if !st.backlogDone && st.last > 0 {
		if done, err := c.printBacklog(ctx, cl, q, st); err != nil || done {
			return err
		}
	}
	st.backlogDone = true
	if idle > 0 {
		t := time.AfterFunc(idle, func() { why.CompareAndSwap(0, 2); cancel() })
		defer t.Stop()
		return c.readEvents(body, st, func() { t.Reset(idle) }, func() error {
			if why.Load() == 2 {
				return exitf(exitUnavailable, "stream silent for %s (--idle-timeout)", idle)
			}
			return nil
		})
	}
	return c.readEvents(body, st, func() {}, func() error { return nil })
}

// readEvents parses Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html)
// and handles each: "flow" prints a flow, "lost" reports dropped events on
// stderr, comments (": keepalive") and other events are skipped. alive is
// called for every line read; silent tells whether the idle timer ended the
// stream.
func (c *TailCmd) readEvents(body io.Reader, st *tailState, alive func(), silent func() error) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var (
		event   string
		data    bytes.Buffer
		hasData bool
	)
	for sc.Scan() {
		alive()
		line := sc.Bytes()
		if len(line) == 0 { // blank line: dispatch
			if hasData {
				done, err := c.dispatch(event, data.Bytes(), st)
				if err != nil || done {
					return err
				}
			}
			event, hasData = "", false
			data.Reset()
			continue
		}
		if line[0] == ':' { // comment, e.g. keepalive
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "id":
			if !bytes.ContainsRune(value, 0) {
				st.lastID = string(value)
			}
		}
	}
	if err := silent(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return exitf(exitUnavailable, "stream broken: %v", err)
	}
	return exitf(exitUnavailable, "stream ended by the server")
}

// print prints one flow (data: as the server sent it); done means --count
// was reached.
func (c *TailCmd) print(row *api.FlowRow, data []byte, st *tailState) (done bool, err error) {
	var line bytes.Buffer
	if c.Conn.Output == "table" {
		line.WriteString(c.table.line(flowCells(row, c.io.zone()), false))
	} else {
		if err := json.Compact(&line, data); err != nil {
			return false, outputError{err}
		}
		line.WriteByte('\n')
	}
	if _, err := c.io.out().Write(line.Bytes()); err != nil {
		return false, outputError{err}
	}
	st.seen++
	return st.count > 0 && st.seen >= st.count, nil
}

// backlogKey identifies one state of a flow: its id and version.
func backlogKey(r *api.FlowRow) string {
	return r.FlowID + "@" + r.Version.UTC().Format(time.RFC3339Nano)
}

// printBacklog prints the --last flows, oldest first, and remembers them;
// done means --count was reached.
func (c *TailCmd) printBacklog(ctx context.Context, cl *client.Client, q url.Values, st *tailState) (done bool, err error) {
	var rows []api.FlowRow
	var raws []json.RawMessage
	if _, err := cl.Flows(ctx, q, st.last, func(p client.Page) error {
		rows, raws = append(rows, p.Rows...), append(raws, p.Raw...)
		return nil
	}); err != nil {
		return false, err
	}
	for i := range rows { // widths from the whole backlog, not its first line
		c.table.fit(flowCells(&rows[i], c.io.zone()))
	}
	st.backlog = make(map[string]bool, len(rows))
	for i := len(rows) - 1; i >= 0; i-- {
		st.backlog[backlogKey(&rows[i])] = true
		if done, err := c.print(&rows[i], raws[i], st); err != nil || done {
			return done, err
		}
	}
	return false, nil
}

// dispatch handles one event; done means --count was reached.
func (c *TailCmd) dispatch(event string, data []byte, st *tailState) (done bool, err error) {
	switch event {
	case "flow", "message", "":
		var row api.FlowRow
		if err := json.Unmarshal(data, &row); err != nil {
			fmt.Fprintf(c.io.errOut(), "-- skipping unreadable flow event: %v\n", err)
			return false, nil
		}
		if k := backlogKey(&row); st.backlog[k] {
			delete(st.backlog, k)
			return false, nil
		}
		return c.print(&row, data, st)
	case "lost":
		var l struct {
			Lost uint64 `json:"lost"`
		}
		if json.Unmarshal(data, &l) == nil {
			fmt.Fprintf(c.io.errOut(), "-- lost %d events (client too slow)\n", l.Lost)
		} else {
			fmt.Fprintf(c.io.errOut(), "-- lost events (client too slow)\n")
		}
	}
	return false, nil
}
