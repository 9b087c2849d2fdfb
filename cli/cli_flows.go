package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/flowlog/flowlog"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/api/client"
)

// FlowsCmd is `flowlog flows`: list flows, newest start first or sorted.
type FlowsCmd struct {
	Conn   clientFlags `embed:""`
	Filter filterFlags `embed:"" group:"Filters"`

	Limit     string `help:"Most flows to list (default ${default}); above 1000 the pages are fetched one after another." default:"100" placeholder:"N" env:"FLOWLOG_FLOWS_LIMIT"`
	All       bool   `help:"List every matching flow, following the pages to the end (ignores --limit)." env:"FLOWLOG_FLOWS_ALL"`
	FailEmpty bool   `help:"Exit with status 4 when no flow matched." env:"FLOWLOG_FAIL_EMPTY"`
	Sort      string `help:"Order the flows by start (default), bytes (sent + received) or duration (open flows: until now, the longest); the server sorts, so --limit takes the first of that order." placeholder:"start|bytes|duration" env:"FLOWLOG_FLOWS_SORT"`
	Order     string `help:"desc (default: newest, biggest, longest first) or asc." placeholder:"desc|asc" env:"FLOWLOG_FLOWS_ORDER"`

	io cliIO
}

func (c *FlowsCmd) Help() string {
	return `Lists the flows a collector stored, newest start first, as a table (START,
DURATION, HOST, PROTO, SRC, DIR, DST, SENT, RECV, STATE; DIR is → for egress and
← for ingress, relative to HOST), as one JSON array (--output json) or as one
JSON object per line (--output jsonl). Hosts and participants can be given by
name (--host web-1) where ids are expected.

    flowlog flows --network mesh1 --since 1h --protocol tcp --host web-1
    flowlog flows --state active --ip 10.10.0.0/16 --port 443 -o jsonl
    flowlog flows --all --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z -o json
    flowlog flows --since 1d --sort bytes --limit 10          # the 10 biggest
` + exitCodesHelp("nothing matched and --fail-empty was given")
}

func (c *FlowsCmd) Run(ctx context.Context) error {
	return c.io.finish("flows", c.run(ctx))
}

func (c *FlowsCmd) run(ctx context.Context) error {
	cl, err := c.Conn.client()
	if err != nil {
		return err
	}
	q, err := c.Filter.query(c.io.clock(), c.io.zone())
	if err != nil {
		return err
	}
	limit := 0 // every flow
	if !c.All {
		if limit, err = positiveInt("limit", c.Limit, 1); err != nil {
			return err
		}
	}

	if err := c.sort(q); err != nil {
		return err
	}
	if err := resolveNames(ctx, cl, q); err != nil {
		return err
	}
	out := c.io.out()
	var (
		rows []api.FlowRow
		raws []json.RawMessage
	)
	n, err := cl.Flows(ctx, q, limit, func(p client.Page) error {
		if c.Conn.Output == "jsonl" { // print as the pages arrive
			if err := writeJSONLines(out, p.Raw); err != nil {
				return exitf(exitUnavailable, "writing output: %v", err)
			}
			return nil
		}
		rows, raws = append(rows, p.Rows...), append(raws, p.Raw...)
		return nil
	})
	if err != nil {
		return err
	}
	switch c.Conn.Output {
	case "json":
		err = writeJSONArray(out, raws)
	case "table":
		err = writeFlowTable(out, rows, c.io.zone(), c.io.color(c.Conn.Color))
	}
	if err != nil {
		return exitf(exitUnavailable, "writing output: %v", err)
	}
	if n == 0 && c.FailEmpty {
		return exitf(exitEmpty, "no flows matched")
	}
	return nil
}

// sort checks --sort and --order as the server does and adds them to q.
func (c *FlowsCmd) sort(q url.Values) error {
	key, order := strings.TrimSpace(c.Sort), strings.TrimSpace(c.Order)
	if _, err := flowlog.ParseSort(key, ""); err != nil {
		return flagError("sort", "%q is not one of %s", key, strings.Join(flowlog.SortKeyNames[:], ", "))
	}
	if _, err := flowlog.ParseSort("", order); err != nil {
		return flagError("order", "%q is not asc or desc", order)
	}
	for name, v := range map[string]string{"sort": key, "order": order} {
		if v != "" {
			q.Set(name, v)
		}
	}
	return nil
}

// writeFlowTable prints flows aligned under flowColumns.
func writeFlowTable(w io.Writer, rows []api.FlowRow, loc *time.Location, color bool) error {
	cells := make([][]string, len(rows))
	for i := range rows {
		cells[i] = flowCells(&rows[i], loc)
	}
	return writeTable(w, newLayout(flowColumns, color, flowStyle), cells)
}
