package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/api/client"
)

// NewCmd is `flowlog new`: conversations (source, destination, destination
// port and protocol) seen in a window but never in the baseline before it
// (/api/v1/new): how lateral movement and misconfiguration show up.
type NewCmd struct {
	Conn  clientFlags `embed:""`
	Match matchFlags  `embed:"" group:"Filters"`

	Window   string `help:"The window to look for new pairs in, back from now (default: the server's, 24h)." placeholder:"DURATION" env:"FLOWLOG_NEW_WINDOW"`
	Baseline string `help:"How long before the window a pair must not have been seen (default: the server's, 7d)." placeholder:"DURATION" env:"FLOWLOG_NEW_BASELINE"`
	Limit    string `help:"Most pairs to list (default: the server's, 100)." placeholder:"N" env:"FLOWLOG_NEW_LIMIT"`
	FailNew  bool   `help:"Exit with status 4 when a new pair was found." env:"FLOWLOG_NEW_FAIL_NEW"`

	io cliIO
}

func (c *NewCmd) Help() string {
	return `Lists the conversations first seen in the window: pairs (source, destination,
destination port and protocol) with flows in the window but none in the baseline
before it, most flows first, as a table (#, SOURCE, DESTINATION, PORT/PROTO,
FIRST SEEN, FLOWS, BYTES) under a line naming the window and the baseline, as
one JSON object with the window and the pairs (--output json) or as one JSON
object per pair and line (--output jsonl).

    flowlog new --network mesh1
    flowlog new --window 1h --baseline 30d --dst-type node --fail-new   # an alert
` + exitCodesHelp("a new pair was found and --fail-new was given")
}

func (c *NewCmd) Run(ctx context.Context) error {
	return c.io.finish("new", c.run(ctx))
}

var newColumns = []column{{title: "#", right: true}, {title: "SOURCE"}, {title: "DESTINATION"}, {title: "PORT/PROTO"},
	{title: "FIRST SEEN"}, {title: "FLOWS", right: true}, {title: "BYTES", right: true}}

func (c *NewCmd) run(ctx context.Context) error {
	cl, err := c.Conn.client()
	if err != nil {
		return err
	}
	q, err := c.Match.query()
	if err != nil {
		return err
	}
	for _, f := range []struct{ flag, value string }{{"window", c.Window}, {"baseline", c.Baseline}} {
		if s := strings.TrimSpace(f.value); s != "" {
			if s, err = span(f.flag, s); err != nil {
				return err
			}
			q.Set(f.flag, s)
		}
	}
	if s := strings.TrimSpace(c.Limit); s != "" {
		n, err := positiveInt("limit", s, 1)
		if err != nil {
			return err
		}
		q.Set("limit", strconv.Itoa(n))
	}
	if err := resolveNames(ctx, cl, q); err != nil {
		return err
	}
	got, err := cl.NewPairs(ctx, q)
	if err != nil {
		return err
	}
	out := c.io.out()
	switch c.Conn.Output {
	case "json":
		err = writeJSONIndented(out, got.Raw)
	case "jsonl":
		err = writeJSONLines(out, got.RawPairs)
	default:
		err = writeNewTable(out, got, c.io.zone(), c.io.color(c.Conn.Color))
	}
	if err != nil {
		return exitf(exitUnavailable, "writing output: %v", err)
	}
	if c.FailNew && len(got.Pairs) > 0 {
		return exitf(exitEmpty, "new pairs found: %d", len(got.Pairs))
	}
	return nil
}

// String names one side of a pair: its name, else its id, else its address,
// with its type.
func (e *pairEnd) String() string {
	name := e.Name
	if name == "" {
		name = e.ID
	}
	if name == "" {
		name = e.IP
	}
	if name == "" {
		name = "?"
	}
	if e.Type != "" {
		name += " (" + e.Type + ")"
	}
	return name
}

type pairEnd client.Endpoint

// portProto is "443/tcp", or the protocol alone when it has no ports.
func portProto(port uint16, proto uint8) string {
	if !flowlog.HasPorts(proto) {
		return flowlog.ProtocolName(proto)
	}
	return strconv.Itoa(int(port)) + "/" + flowlog.ProtocolName(proto)
}

func writeNewTable(w io.Writer, got *client.NewPairs, loc *time.Location, color bool) error {
	if _, err := fmt.Fprintf(w, "New from %s to %s, not seen since %s\n",
		humanTime(got.From, loc), humanTime(got.To, loc), humanTime(got.BaselineFrom, loc)); err != nil {
		return err
	}
	cells := make([][]string, len(got.Pairs))
	for i := range got.Pairs {
		p := &got.Pairs[i]
		src, dst := pairEnd(p.Src), pairEnd(p.Dst)
		cells[i] = cleanCells([]string{strconv.Itoa(i + 1), src.String(), dst.String(), portProto(p.DstPort, p.Protocol),
			humanTime(p.First, loc), humanCount(p.Flows), humanBytes(p.Bytes)})
	}
	return writeTable(w, newLayout(newColumns, color, nil), cells)
}
