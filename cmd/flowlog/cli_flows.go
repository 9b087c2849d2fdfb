package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowlog/flowlog/api"
)

// maxPerPage is the largest page /api/v1/flows serves.
const maxPerPage = 1000

// flowsCmd is `flowlog flows`: list flows, newest start first.
type flowsCmd struct {
	Conn   clientFlags `embed:""`
	Filter filterFlags `embed:"" group:"Filters"`

	Limit     string `help:"Most flows to list (default ${default}); above 1000 the pages are fetched one after another." default:"100" placeholder:"N" env:"FLOWLOG_FLOWS_LIMIT"`
	All       bool   `help:"List every matching flow, following the pages to the end (ignores --limit)." env:"FLOWLOG_FLOWS_ALL"`
	FailEmpty bool   `help:"Exit with status 4 when no flow matched." env:"FLOWLOG_FAIL_EMPTY"`

	io cliIO
}

func (c *flowsCmd) Help() string {
	return `Lists the flows a collector stored, newest start first, as a table (START,
DURATION, HOST, PROTO, SRC, DIR, DST, SENT, RECV, STATE; DIR is → for egress and
← for ingress, relative to HOST), as one JSON array (--output json) or as one
JSON object per line (--output jsonl).

    flowlog flows --network mesh1 --from 1h --protocol tcp
    flowlog flows --state active --ip 10.10.0.0/16 --port 443 -o jsonl
    flowlog flows --all --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z -o json
` + exitCodesHelp
}

func (c *flowsCmd) Run(ctx context.Context) error {
	return c.io.finish("flows", c.run(ctx))
}

func (c *flowsCmd) run(ctx context.Context) error {
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

	out := c.io.out()
	var (
		rows []api.FlowRow
		raws []json.RawMessage
	)
	n, err := cl.flows(ctx, q, limit, func(pr []api.FlowRow, pw []json.RawMessage) error {
		if c.Conn.Output == "jsonl" { // print as the pages arrive
			return writeJSONLines(out, pw)
		}
		rows, raws = append(rows, pr...), append(raws, pw...)
		return nil
	})
	if err != nil {
		return err
	}
	switch c.Conn.Output {
	case "json":
		err = writeJSONArray(out, raws)
	case "table":
		err = writeFlowTable(out, rows, c.io.zone())
	}
	if err != nil {
		return exitf(exitUnavailable, "writing output: %v", err)
	}
	if n == 0 && c.FailEmpty {
		return exitf(exitEmpty, "no flows matched")
	}
	return nil
}

// flows fetches up to limit flows (0: all) matching q, page after page, and
// hands each page to emit; it returns how many it handed over. Pages follow
// the server's cursor (Next); a server that sends no Next at all (Netmaker,
// older collectors) is paged by number with a constant per_page instead.
func (c *apiClient) flows(ctx context.Context, q url.Values, limit int,
	emit func([]api.FlowRow, []json.RawMessage) error) (int, error) {
	perPage := maxPerPage
	if limit > 0 {
		perPage = min(limit, maxPerPage)
	}
	var (
		n      int
		page   = 1
		cursor string
	)
	for {
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		want := perPage
		if cursor != "" && limit > 0 {
			want = min(limit-n, maxPerPage)
		}
		pq.Set("per_page", strconv.Itoa(want))
		if cursor != "" {
			pq.Set("cursor", cursor)
		} else if page > 1 {
			pq.Set("page", strconv.Itoa(page))
		}
		env, err := c.getJSON(ctx, "/api/v1/flows", pq)
		if err != nil {
			return n, err
		}
		raws, err := rawArray(env.Response)
		if err != nil {
			return n, exitf(exitUnavailable, "unreadable answer from %s: %v", c.url("/api/v1/flows", pq), err)
		}
		if limit > 0 && n+len(raws) > limit {
			raws = raws[:limit-n]
		}
		rows := make([]api.FlowRow, len(raws))
		for i, r := range raws {
			if err := json.Unmarshal(r, &rows[i]); err != nil {
				return n, exitf(exitUnavailable, "unreadable flow in the answer: %v", err)
			}
		}
		if err := emit(rows, raws); err != nil {
			return n, exitf(exitUnavailable, "writing output: %v", err)
		}
		n += len(rows)
		if len(rows) == 0 || (limit > 0 && n >= limit) {
			return n, nil
		}
		if env.Next != nil {
			next := strings.TrimSpace(*env.Next)
			if next == "" {
				return n, nil
			}
			if next == cursor {
				return n, exitf(exitUnavailable, "server sent the same cursor twice (%q); stopping", next)
			}
			cursor = next
			continue
		}
		if len(rows) < want {
			return n, nil
		}
		page++
	}
}

// writeFlowTable prints flows aligned under flowColumns.
func writeFlowTable(w io.Writer, rows []api.FlowRow, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(flowColumns, "\t"))
	for i := range rows {
		fmt.Fprintln(tw, strings.Join(flowCells(&rows[i], loc), "\t"))
	}
	return tw.Flush()
}
