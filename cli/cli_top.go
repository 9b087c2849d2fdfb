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

	By        string `help:"Group by participant (type, id, name), by ip, or external endpoints by prefix (--prefix4, --prefix6) (default ${default})." default:"participant" placeholder:"participant|ip|prefix" env:"FLOWLOG_TOP_BY"`
	Prefix4   string `name:"prefix4" help:"--by prefix: length of an IPv4 endpoint's prefix (1-32; default 24)." placeholder:"BITS" env:"FLOWLOG_TOP_PREFIX4"`
	Prefix6   string `name:"prefix6" help:"--by prefix: length of an IPv6 endpoint's prefix (1-128; default 48)." placeholder:"BITS" env:"FLOWLOG_TOP_PREFIX6"`
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
    flowlog top --by prefix --prefix4 16 --side dst     # the internet by network
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
		{"by", c.By, "participant ip prefix"}, {"metric", c.Metric, "bytes packets flows"}, {"side", c.Side, "any src dst"},
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
	for _, p := range []struct {
		flag, value string
		max         int
	}{{"prefix4", c.Prefix4, 32}, {"prefix6", c.Prefix6, 128}} {
		if p.value == "" {
			continue
		}
		if c.By != "prefix" {
			return flagError(p.flag, "only with --by prefix")
		}
		n, err := positiveInt(p.flag, p.value, 1)
		if err == nil && n > p.max {
			err = flagError(p.flag, "%d is longer than an address (at most %d)", n, p.max)
		}
		if err != nil {
			return err
		}
		q.Set(p.flag, strconv.Itoa(n))
	}
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

// who names a talker: its prefix or address when grouped by them, else "name (type)",
// falling back to the id and then the address.
func who(t *client.Talker, byIP bool) string {
	if t.Prefix != "" {
		return t.Prefix
	}
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
