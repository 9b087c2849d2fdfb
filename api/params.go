package api

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

const (
	defaultPerPage = 100
	maxPerPage     = 1000
)

// Parameters of /api/v1/flows: Netmaker's names, plus state. List parameters
// may repeat and may hold comma-separated values; the others must appear at
// most once, because silently picking one of two values hides a mistake.
var (
	singleParams = []string{"network_id", "from", "to", "src_entity_id", "dst_entity_id",
		"node_id", "username", "page", "per_page", "state"}
	listParams = []string{"src_type", "dst_type", "protocol"}
)

var protocolNames = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}

var stateNames = map[string]flowlog.State{
	"all":      flowlog.StateAll,
	"active":   flowlog.StateActive,
	"finished": flowlog.StateFinished,
}

// ParseFlowsQuery turns the query of /api/v1/flows into a filter and a page.
// An empty value means the parameter was not given, as in Netmaker, so that
// forms may send blank fields. Unlike Netmaker, a bad value is an error
// rather than ignored or clamped: a typo must not silently widen a query.
func ParseFlowsQuery(q url.Values) (flowlog.Filter, flowlog.Page, error) {
	var (
		f   flowlog.Filter
		p   = flowlog.Page{Number: 1, PerPage: defaultPerPage}
		err error
	)
	if err := checkNames(q); err != nil {
		return f, p, err
	}
	get := func(name string) string { return strings.TrimSpace(q.Get(name)) }

	f.NetworkID = get("network_id")
	f.SrcEntityID = get("src_entity_id")
	f.DstEntityID = get("dst_entity_id")
	f.HostID = get("node_id")
	f.Username = get("username")

	if f.From, err = parseTime("from", get("from")); err != nil {
		return f, p, err
	}
	if f.To, err = parseTime("to", get("to")); err != nil {
		return f, p, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, p, fmt.Errorf("invalid from %q: must be before to %q", get("from"), get("to"))
	}

	if f.SrcTypes, err = parseTypes("src_type", listValues(q, "src_type")); err != nil {
		return f, p, err
	}
	if f.DstTypes, err = parseTypes("dst_type", listValues(q, "dst_type")); err != nil {
		return f, p, err
	}
	if f.Protocols, err = parseProtocols(listValues(q, "protocol")); err != nil {
		return f, p, err
	}

	// Netmaker rejects this combination: username already means "src or dst
	// is this user", which a src/dst filter would contradict or narrow
	// in a way nobody can read off the URL.
	if f.Username != "" {
		for _, other := range []string{"src_type", "dst_type", "src_entity_id", "dst_entity_id"} {
			if len(listValues(q, other)) > 0 {
				return f, p, fmt.Errorf("invalid username %q: cannot be combined with %s", f.Username, other)
			}
		}
	}

	if s := get("state"); s != "" {
		st, ok := stateNames[s]
		if !ok {
			return f, p, fmt.Errorf("invalid state %q: must be one of all, active, finished", s)
		}
		f.State = st
	}

	// page is bounded so that (page-1)*per_page cannot overflow an offset.
	if p.Number, err = parseInt("page", get("page"), 1, 1, math.MaxInt32); err != nil {
		return f, p, err
	}
	if p.PerPage, err = parseInt("per_page", get("per_page"), defaultPerPage, 1, maxPerPage); err != nil {
		return f, p, err
	}
	return f, p, nil
}

func checkNames(q url.Values) error {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // the same query always reports the same parameter
	for _, name := range names {
		switch {
		case slices.Contains(listParams, name):
		case slices.Contains(singleParams, name):
			if n := len(q[name]); n > 1 {
				return fmt.Errorf("invalid %s: given %d times, at most once allowed", name, n)
			}
		default:
			return fmt.Errorf("unknown parameter %q: known are %s, %s", name,
				strings.Join(singleParams, ", "), strings.Join(listParams, ", "))
		}
	}
	return nil
}

// listValues accepts both ?k=a&k=b and ?k=a,b; blanks are dropped so that a
// trailing comma or an empty form field does not become a value.
func listValues(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	// RFC3339Nano also accepts RFC3339 without fractional seconds.
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid %s %q: must be an RFC 3339 time such as 2026-11-24T10:00:00Z", name, s)
	}
	return t.UTC(), nil
}

func parseTypes(name string, values []string) ([]flowlog.ParticipantType, error) {
	var out []flowlog.ParticipantType
	for _, v := range values {
		t, ok := flowlog.ParseParticipantType(v)
		if !ok {
			return nil, fmt.Errorf("invalid %s %q: must be one of %s", name, v,
				strings.Join(flowlog.ParticipantTypeNames[1:], ", "))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func parseProtocols(values []string) ([]uint8, error) {
	var out []uint8
	for _, v := range values {
		n, ok := protocolNames[strings.ToLower(v)]
		if !ok {
			u, err := strconv.ParseUint(v, 10, 8)
			if err != nil {
				return nil, fmt.Errorf("invalid protocol %q: must be a number 0..255 or one of tcp, udp, icmp, icmpv6", v)
			}
			n = uint8(u)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func parseInt(name, s string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("invalid %s %q: must be between %d and %d", name, s, lo, hi)
	}
	return n, nil
}
