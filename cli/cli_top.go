package cli

import (
	"context"
	"io"
	"strconv"
	"strings"

	"github.com/flowlog/flowlog/api/client"
)

// TopCmd is `flowlog top`: the biggest talkers among the matching flows.
type TopCmd struct {
	Conn   clientFlags `embed:""`
	Filter filterFlags `embed:"" group:"Filters"`

	By        string `help:"Group by participant (type, id, name) or by ip (default ${default})." default:"participant" placeholder:"participant|ip" env:"FLOWLOG_TOP_BY"`
	Metric    string `help:"Rank by bytes, packets (sent plus received) or flows (default ${default})." default:"bytes" placeholder:"bytes|packets|flows" env:"FLOWLOG_TOP_METRIC"`
	Side      string `help:"Count a flow for its source (src), its destination (dst) or both (any) (default ${default})." default:"any" placeholder:"any|src|dst" env:"FLOWLOG_TOP_SIDE"`
	Limit     string `help:"How many to list (default ${default})." default:"10" placeholder:"N" env:"FLOWLOG_TOP_LIMIT"`
	FailEmpty bool   `help:"Exit with status 4 when no flow matched." env:"FLOWLOG_FAIL_EMPTY"`

	io cliIO
}

func (c *TopCmd) Help() string {
	return `Lists who moved the most among the flows matching the filters, as a table
(RANK, WHO, BYTES, PACKETS, FLOWS; WHO is "name (type)" or an address;
packets and flows counted in k, M, G), as one JSON array (--output json) or as one JSON object per line (--output jsonl).

    flowlog top --network mesh1 --from 24h
    flowlog top --by ip --metric flows --side dst --limit 20
` + exitCodesHelp("nothing matched and --fail-empty was given")
}

func (c *TopCmd) Run(ctx context.Context) error {
	return c.io.finish("top", c.run(ctx))
}

func (c *TopCmd) run(ctx context.Context) error {
	cl, err := c.Conn.client()
	if err != nil {
		return err
	}
	q, err := c.Filter.query(c.io.clock(), c.io.zone())
	if err != nil {
		return err
	}
	for _, f := range []struct{ flag, value, allowed string }{
		{"by", c.By, "participant ip"}, {"metric", c.Metric, "bytes packets flows"}, {"side", c.Side, "any src dst"},
	} {
		if !strings.Contains(" "+f.allowed+" ", " "+f.value+" ") {
			return flagError(f.flag, "%q is not one of %s", f.value, strings.ReplaceAll(f.allowed, " ", ", "))
		}
		q.Set(f.flag, f.value)
	}
	limit, err := positiveInt("limit", c.Limit, 1)
	if err != nil {
		return err
	}
	q.Set("limit", strconv.Itoa(limit))
	if err := resolveNames(ctx, cl, q); err != nil {
		return err
	}

	rows, raws, err := cl.Top(ctx, q)
	if err != nil {
		return err
	}
	err = c.Conn.writeList(c.io.out(), raws, func(out io.Writer) error {
		return writeTopTable(out, rows, c.By == "ip", c.io.color(c.Conn.Color))
	})
	if err != nil {
		return err
	}
	if len(rows) == 0 && c.FailEmpty {
		return exitf(exitEmpty, "no flows matched")
	}
	return nil
}

// who names a talker: its address when grouped by ip, else "name (type)",
// falling back to the id and then the address.
func who(t *client.Talker, byIP bool) string {
	if byIP && t.IP != "" {
		return t.IP
	}
	name := t.Name
	if name == "" {
		name = t.ID
	}
	switch {
	case name != "" && t.Type != "":
		return name + " (" + t.Type + ")"
	case name != "":
		return name
	case t.IP != "":
		return t.IP
	case t.Type != "":
		return "(" + t.Type + ")"
	}
	return "-"
}

var topColumns = []column{{title: "RANK", right: true}, {title: "WHO"}, {title: "BYTES", right: true},
	{title: "PACKETS", right: true}, {title: "FLOWS", right: true}}

func writeTopTable(w io.Writer, rows []client.Talker, byIP, color bool) error {
	cells := make([][]string, len(rows))
	for i := range rows {
		t := &rows[i]
		cells[i] = cleanCells([]string{strconv.Itoa(i + 1), who(t, byIP), humanBytes(t.Bytes), humanCount(t.Packets), humanCount(t.Flows)})
	}
	return writeTable(w, newLayout(topColumns, color, nil), cells)
}
