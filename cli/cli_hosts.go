package cli

import (
	"context"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/flowlog/flowlog/api/client"
)

// HostsCmd is `flowlog hosts`: every host that reported in a window, with
// its last report and whether it went quiet (/api/v1/hosts).
type HostsCmd struct {
	Conn clientFlags `embed:""`

	Network   string    `help:"Only hosts reporting in this network (network_id)." placeholder:"ID" env:"FLOWLOG_FILTER_NETWORK"`
	Host      string    `help:"Only this host: its id (node_id) or its name." placeholder:"ID|NAME" env:"FLOWLOG_FILTER_HOST"`
	Time      timeFlags `embed:"" set:"when=flows starting (default: the last 24h)"`
	Quiet     string    `help:"A host whose last report is older than this is quiet (default: the server's, 5m)." placeholder:"DURATION" env:"FLOWLOG_HOSTS_QUIET"`
	FailQuiet bool      `help:"Exit with status 4 when a host is quiet." env:"FLOWLOG_HOSTS_FAIL_QUIET"`

	io cliIO
}

func (c *HostsCmd) Help() string {
	return `Lists the hosts whose agents reported flows in the window (--from, default
the last 24h), by name, as a table (HOST, ID, STATE, LAST REPORT,
EV/S, FLOWS, OPEN, BYTES, REJECTED, AGENT; STATE is quiet when the last report is older
than --quiet; EV/S is events per second over the window; OPEN the flows still
open; REJECTED the events the collector refused from it; AGENT the wire
generation and agent software it reports with, v1.5+ or v1.4 for netclient
<= v1.4.x numbering, the latest first), as one JSON array
(--output json) or as one JSON object per line (--output jsonl).

    flowlog hosts --network mesh1
    flowlog hosts --since 1h --quiet 2m --fail-quiet     # a check for cron
` + exitCodesHelp("a host is quiet and --fail-quiet was given")
}

func (c *HostsCmd) Run(ctx context.Context) error {
	return c.io.finish("hosts", c.run(ctx))
}

var hostColumns = []column{{title: "HOST"}, {title: "ID"}, {title: "STATE"}, {title: "LAST REPORT"}, {title: "EV/S", right: true},
	{title: "FLOWS", right: true}, {title: "OPEN", right: true}, {title: "BYTES", right: true}, {title: "REJECTED", right: true}, {title: "AGENT"}}

func (c *HostsCmd) run(ctx context.Context) error {
	cl, err := c.Conn.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if s := strings.TrimSpace(c.Network); s != "" {
		q.Set("network_id", s)
	}
	if s := strings.TrimSpace(c.Host); s != "" {
		q.Set("node_id", s)
	}
	if err := c.Time.set(q, c.io.clock(), c.io.zone()); err != nil {
		return err
	}
	if s := strings.TrimSpace(c.Quiet); s != "" {
		d, err := span("quiet", s)
		if err != nil {
			return err
		}
		q.Set("quiet", d)
	}
	if err := resolveNames(ctx, cl, q); err != nil {
		return err
	}
	hosts, raws, err := cl.Hosts(ctx, q)
	if err != nil {
		return err
	}
	err = c.Conn.writeList(c.io.out(), raws, func(out io.Writer) error {
		return writeHostsTable(out, hosts, c.io.zone(), c.io.color(c.Conn.Color))
	})
	if err != nil {
		return err
	}
	if c.FailQuiet {
		var quiet []string
		for _, h := range hosts {
			if h.Quiet {
				quiet = append(quiet, hostName(&h))
			}
		}
		if len(quiet) > 0 {
			return exitf(exitEmpty, "quiet: %s", strings.Join(quiet, ", "))
		}
	}
	return nil
}

func hostName(h *client.Host) string {
	if h.HostName != "" {
		return h.HostName
	}
	return h.HostID
}

func writeHostsTable(w io.Writer, hosts []client.Host, loc *time.Location, color bool) error {
	cells := make([][]string, len(hosts))
	for i := range hosts {
		h := &hosts[i]
		state := "ok"
		if h.Quiet {
			state = "quiet"
		}
		cells[i] = cleanCells([]string{hostName(h), h.HostID, state, humanTime(h.LastReport, loc), humanRate(h.EventsPerSecond),
			humanCount(h.Flows), humanCount(h.Active), humanBytes(h.Bytes), humanCount(h.Rejected), agents(h.Agents)})
	}
	return writeTable(w, newLayout(hostColumns, color, hostStyle), cells)
}

// agents names what a host runs: each generation with its agent's
// product (the user-agent's first word: "flowlog-agent/v1.2.3",
// "grpc-go/1.64.0" for a stock netclient), the latest first.
func agents(l []client.Agent) string {
	var out []string
	for _, a := range l {
		s := a.Generation
		if f := strings.Fields(a.Agent); len(f) > 0 {
			s += " " + f[0]
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}

// hostStyle marks quiet hosts and hosts with rejected events.
func hostStyle(col int, text string) string {
	switch {
	case col == 2 && text == "quiet":
		return ansiRed + ";" + ansiBold
	case col == 2:
		return ansiGreen
	case col == 8 && text != "0":
		return ansiYellow
	}
	return ""
}

// span checks a duration flag the API reads as a span (1s to 365d: Go
// durations or whole days) and returns it as the API's text.
func span(flag, s string) (string, error) {
	var d Duration
	if err := d.UnmarshalText([]byte(s)); err != nil || time.Duration(d)%time.Second != 0 || time.Duration(d) > 365*24*time.Hour {
		return "", flagError(flag, "%q is not a duration from 1s to 365d such as 5m, 24h or 7d", s)
	}
	return s, nil
}
