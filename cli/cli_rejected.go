package cli

import (
	"context"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/metrics"
)

// RejectedCmd is `flowlog rejected`: the events the collector refused
// (/api/v1/rejected, admin readers only), newest first, by page.
type RejectedCmd struct {
	Conn clientFlags `embed:""`

	Host   string    `help:"Only events claiming this host: its id (host_id) or its name." placeholder:"ID|NAME" env:"FLOWLOG_FILTER_HOST"`
	Reason string    `help:"Only events rejected for this class of reason: missing_field, bad_type, out_of_range, bad_ip, bad_timestamp, ... (flowlog_events_rejected_total's reason label)." placeholder:"CLASS" env:"FLOWLOG_REJECTED_REASON"`
	Time   timeFlags `embed:"" set:"when=events received"`
	Page   string    `help:"Which page of --limit events (default ${default})." default:"1" placeholder:"N" env:"FLOWLOG_REJECTED_PAGE"`
	Limit  string    `help:"Events per page (default ${default}, at most 1000)." default:"100" placeholder:"N" env:"FLOWLOG_REJECTED_LIMIT"`

	io cliIO
}

func (c *RejectedCmd) Help() string {
	return `Lists the events the collector rejected (each also named in its ack), newest
first, as a table (RECEIVED, HOST, PEER, INDEX, CLASS, REASON; INDEX is the
event's position in its envelope), as one JSON array (--output json, with each
event as received) or as one JSON object per line (--output jsonl). Needs an
admin reader's token (--token): a rejected event has no network to scope it by.
--from and --to bound the time the collector received them.

    flowlog rejected --since 1h
    flowlog rejected --host web-1 --reason bad_ip -o jsonl
` + exitCodesHelp("")
}

func (c *RejectedCmd) Run(ctx context.Context) error {
	return c.io.finish("rejected", c.run(ctx))
}

func (c *RejectedCmd) run(ctx context.Context) error {
	cl, err := c.Conn.client()
	if err != nil {
		return err
	}
	var f flowlog.RejectedFilter
	f.HostID = strings.TrimSpace(c.Host)
	if f.Class = strings.TrimSpace(c.Reason); f.Class != "" && !slices.Contains(metrics.RejectReasons, f.Class) {
		return flagError("reason", "%q is not one of %s", f.Class, strings.Join(metrics.RejectReasons, ", "))
	}
	if f.From, f.To, err = c.Time.window(c.io.clock(), c.io.zone()); err != nil {
		return err
	}
	var p flowlog.Page
	if p.Number, err = positiveInt("page", c.Page, 1); err != nil {
		return err
	}
	if p.PerPage, err = positiveInt("limit", c.Limit, 1); err != nil {
		return err
	}
	if p.PerPage > 1000 {
		return flagError("limit", "%d is more than 1000 events per page", p.PerPage)
	}
	q := api.RejectedQuery(f, p)
	if err := resolveNames(ctx, cl, q); err != nil {
		return err
	}
	rows, raws, err := cl.Rejected(ctx, q)
	if err != nil {
		return err
	}
	err = c.Conn.writeList(c.io.out(), raws, func(out io.Writer) error {
		return writeRejectedTable(out, rows, c.io.zone(), c.io.color(c.Conn.Color))
	})
	if err != nil {
		return err
	}
	return nil
}

func writeRejectedTable(w io.Writer, rows []api.RejectedRow, loc *time.Location, color bool) error {
	cols := make([]column, len(api.RejectedHeader))
	for i, t := range api.RejectedHeader {
		cols[i] = column{title: t, right: t == "INDEX"}
	}
	cells := make([][]string, len(rows))
	for i := range rows {
		cells[i] = cleanCells(api.RejectedCells(&rows[i], loc))
	}
	return writeTable(w, newLayout(cols, color, func(col int, _ string) string {
		if cols[col].title == "CLASS" {
			return ansiYellow
		}
		return ""
	}), cells)
}
