package api

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/netip"
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

	defaultTopLimit    = 10
	defaultMatrixLimit = 50
	maxAggLimit        = 1000
)

// Parameters. List parameters may repeat and may hold comma-separated
// values; the others must appear at most once, because silently picking one
// of two values hides a mistake.
var (
	// filterParams select flows, the same way on every endpoint that takes
	// them: Netmaker's names, then ours.
	filterParams = []string{"network_id", "from", "to", "src_entity_id", "dst_entity_id",
		"node_id", "username", "state", "ip", "src_ip", "dst_ip", "port", "direction", "participant"}
	listParams = []string{"src_type", "dst_type", "protocol", "asn", "country"}
	// pageParams belong to /api/v1/flows alone.
	pageParams = []string{"page", "per_page", "cursor"}
	// sortParams order a listing of flows (the list and its export).
	sortParams = []string{"sort", "order"}
	// countParams belong to the stored reads (list, aggregates), not the
	// live tail, which shows each event as it comes.
	countParams = []string{"observations"}
)

// paramSpec is the set of parameters one endpoint accepts.
type paramSpec struct {
	single []string // at most once each
	list   []string // repeatable, comma-separated
	noPage string   // when set, a paging parameter is refused with this reason
}

func (p *paramSpec) names() []string { return slices.Concat(p.single, p.list) }

func without(names []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(drop, n) })
}

// The parameters of each endpoint, by path. The OpenAPI test holds the
// document to these sets.
var (
	flowsParams = paramSpec{
		// Netmaker's order first, so its known list reads as before.
		single: []string{"network_id", "from", "to", "src_entity_id", "dst_entity_id", "node_id", "username",
			"page", "per_page", "state", "ip", "port", "direction", "participant", "cursor", "observations", "sort", "order", "src_ip", "dst_ip"},
		list: listParams,
	}
	streamParams = paramSpec{single: filterParams, list: listParams,
		noPage: "the stream has no pages"}
	topParams = paramSpec{single: slices.Concat(filterParams, countParams, []string{"by", "metric", "side", "limit", "prefix4", "prefix6"}), list: listParams,
		noPage: "aggregates have no pages"}
	matrixParams = paramSpec{single: slices.Concat(filterParams, countParams, []string{"limit"}), list: listParams,
		noPage: "aggregates have no pages"}
	seriesParams = paramSpec{single: slices.Concat(filterParams, countParams, []string{"step"}), list: listParams,
		noPage: "aggregates have no pages"}
	// /aggregates/active counts open flows: a state would contradict it.
	activeParams = paramSpec{single: slices.Concat(without(filterParams, "state"), countParams), list: listParams,
		noPage: "aggregates have no pages"}
)

// netmakerSingle are Netmaker's own single-valued parameters of
// /api/v1/flows. For them the endpoint behaves as Netmaker's controller does
// (pro/controllers/flows.go), which clients and UIs written for Netmaker rely
// on: the first value counts, page and per_page fall back to their defaults
// when invalid, per_page is clamped to 1000, to is inclusive, and from after
// to is an empty answer. Parameters nobody knows are ignored there (UIs add
// cache busters). Our own parameters stay strict: a bad value is a 400
// naming it.
var netmakerSingle = []string{"network_id", "from", "to", "src_entity_id", "dst_entity_id", "node_id", "username", "page", "per_page"}

// ParseFlowsQuery turns the query of /api/v1/flows into a filter and a page.
// An empty value means the parameter was not given, as in Netmaker, so that
// forms may send blank fields.
func ParseFlowsQuery(q url.Values) (flowlog.Filter, flowlog.Page, error) {
	q = netmakerLenient(q)
	p := flowlog.Page{Number: 1, PerPage: defaultPerPage}
	if err := flowsParams.check(q); err != nil {
		return flowlog.Filter{}, p, err
	}
	f, err := parseFilterFields(q)
	if err != nil {
		return f, p, err
	}
	if !f.To.IsZero() { // inclusive, at the store's millisecond precision
		f.To = f.To.Truncate(time.Millisecond).Add(time.Millisecond)
	}
	get := getter(q)
	p.Number = netmakerInt(get("page"), 1, math.MaxInt32) // bounded so that (page-1)*per_page cannot overflow an offset
	p.PerPage = netmakerInt(get("per_page"), defaultPerPage, maxPerPage)
	if p.Sort, err = flowlog.ParseSort(get("sort"), get("order")); err != nil {
		return f, p, err
	}
	if c := get("cursor"); c != "" {
		if get("page") != "" {
			return f, p, fmt.Errorf("invalid cursor: cannot be combined with page (a cursor already says where the page starts)")
		}
		cur, err := DecodeCursor(c)
		if err != nil {
			return f, p, err
		}
		if cur.Sort != p.Sort {
			return f, p, fmt.Errorf("invalid cursor: it continues a listing sorted by %s, this request sorts by %s (pass the same sort and order)", cur.Sort, p.Sort)
		}
		p.After = &cur
	}
	return f, p, nil
}

// parseSort reads sort and order (the export's: the list's come with its
// page).
func parseSort(q url.Values) (flowlog.Sort, error) {
	get := getter(q)
	return flowlog.ParseSort(get("sort"), get("order"))
}

// netmakerLenient is q as /api/v1/flows reads it: unknown parameters
// dropped, and only the first value of each of Netmaker's single
// parameters kept.
func netmakerLenient(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for name, vs := range q {
		switch {
		case slices.Contains(netmakerSingle, name):
			out[name] = vs[:1]
		case slices.Contains(flowsParams.names(), name):
			out[name] = vs
		}
	}
	return out
}

// netmakerInt is Netmaker's parseIntOrDefault, clamped to hi: not a
// number, or not positive, gives def.
func netmakerInt(s string, def, hi int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return def
	}
	return min(n, hi)
}

// emptyRange says whether f's time range holds nothing (from after to).
func emptyRange(f flowlog.Filter) bool {
	return !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To)
}

// parseStreamQuery parses the query of /api/v1/flows/stream: the filters of
// /api/v1/flows, no paging.
func parseStreamQuery(q url.Values) (flowlog.Filter, error) {
	if err := streamParams.check(q); err != nil {
		return flowlog.Filter{}, err
	}
	return parseFilter(q)
}

// parseFilter reads the filter parameters present in q; the caller has
// checked q's names against its endpoint's spec. A from not before to is an
// error (an aggregate or a tail over nothing is a mistake).
func parseFilter(q url.Values) (flowlog.Filter, error) {
	f, err := parseFilterFields(q)
	if err == nil && emptyRange(f) {
		err = fmt.Errorf("invalid from %q: must be before to %q", getter(q)("from"), getter(q)("to"))
	}
	return f, err
}

// parseFilterFields is parseFilter without the range check.
func parseFilterFields(q url.Values) (flowlog.Filter, error) {
	var (
		f   flowlog.Filter
		err error
	)
	get := getter(q)

	f.NetworkID = get("network_id")
	f.SrcEntityID = get("src_entity_id")
	f.DstEntityID = get("dst_entity_id")
	f.Node = get("node_id")
	f.Username = get("username")
	f.Participant = get("participant")

	if f.From, err = parseTime("from", get("from")); err != nil {
		return f, err
	}
	if f.To, err = parseTime("to", get("to")); err != nil {
		return f, err
	}

	if f.SrcTypes, err = parseTypes("src_type", listValues(q, "src_type")); err != nil {
		return f, err
	}
	if f.DstTypes, err = parseTypes("dst_type", listValues(q, "dst_type")); err != nil {
		return f, err
	}
	if f.Protocols, err = parseProtocols(listValues(q, "protocol")); err != nil {
		return f, err
	}
	if f.ASNs, err = parseASNs(listValues(q, "asn")); err != nil {
		return f, err
	}
	if f.Countries, err = parseCountries(listValues(q, "country")); err != nil {
		return f, err
	}

	// Netmaker rejects this combination: username already means "src or dst
	// is this user", which a src/dst filter would contradict or narrow
	// in a way nobody can read off the URL.
	if f.Username != "" {
		for _, other := range []string{"src_type", "dst_type", "src_entity_id", "dst_entity_id"} {
			if len(listValues(q, other)) > 0 {
				return f, fmt.Errorf("invalid username %q: cannot be combined with %s", f.Username, other)
			}
		}
	}

	if s := get("state"); s != "" {
		st, ok := flowlog.ParseState(s)
		if !ok {
			return f, fmt.Errorf("invalid state %q: must be one of %s", s, strings.Join(flowlog.StateNames[:], ", "))
		}
		f.State = st
	}
	for _, a := range []struct {
		name string
		p    *netip.Prefix
	}{{"ip", &f.IP}, {"src_ip", &f.SrcIP}, {"dst_ip", &f.DstIP}} {
		if s := get(a.name); s != "" {
			if *a.p, err = parseIP(a.name, s); err != nil {
				return f, err
			}
		}
	}
	port, err := parseInt("port", get("port"), 0, 1, math.MaxUint16)
	if err != nil {
		return f, err
	}
	f.Port = uint16(port)
	if d := get("direction"); d != "" {
		var ok bool
		if f.Direction, ok = flowlog.ParseDirection(d); !ok {
			return f, fmt.Errorf("invalid direction %q: must be one of ingress, egress", d)
		}
	}
	// Only where the endpoint's spec knows it (checked by the caller).
	if f.Observations, err = parseChoice("observations", get("observations"), flowlog.ObserveOne, []string{"one", "all"},
		[]flowlog.Observations{flowlog.ObserveOne, flowlog.ObserveAll}); err != nil {
		return f, err
	}
	return f, nil
}

func getter(q url.Values) func(string) string {
	return func(name string) string { return strings.TrimSpace(q.Get(name)) }
}

// check refuses parameters the endpoint does not know and single parameters
// given twice, naming the first offender in alphabetical order.
func (p *paramSpec) check(q url.Values) error {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // the same query always reports the same parameter
	for _, name := range names {
		switch {
		case slices.Contains(p.list, name):
			for _, v := range q[name] {
				if err := notBlank(name, v); err != nil {
					return err
				}
			}
		case slices.Contains(p.single, name):
			if n := len(q[name]); n > 1 {
				return fmt.Errorf("invalid %s: given %d times, at most once allowed", name, n)
			}
			if err := notBlank(name, q[name][0]); err != nil {
				return err
			}
		case p.noPage != "" && slices.Contains(pageParams, name):
			return fmt.Errorf("invalid %s: %s", name, p.noPage)
		default:
			return fmt.Errorf("unknown parameter %q: known are %s", name, strings.Join(p.names(), ", "))
		}
	}
	return nil
}

// notBlank refuses a value of only whitespace (network_id=%0A): an empty
// value means "not given", as in Netmaker, but whitespace is a value gone
// wrong, and reading it as absent would widen the query.
func notBlank(name, v string) error {
	if v != "" && strings.TrimSpace(v) == "" {
		return fmt.Errorf("invalid %s %q: only whitespace (leave it empty or out to mean any)", name, v)
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
	if t.IsZero() {
		// 0001-01-01T00:00:00Z is Go's zero time, which a Filter reads as
		// "not given" (a time series would then cover the last day only).
		// A nanosecond later selects the same flows.
		t = t.Add(time.Nanosecond)
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
		n, err := flowlog.ParseProtocol(v)
		if err != nil {
			return nil, fmt.Errorf("invalid protocol %q: must be a number 0..255 or one of %s", v, flowlog.ProtocolNameList())
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// parseASNs accepts AS numbers as 13335 or AS13335 (any case). AS 0 is
// refused: it is no AS, and every mesh endpoint would match it.
func parseASNs(values []string) ([]uint32, error) {
	var out []uint32
	for _, v := range values {
		digits := v
		if len(v) > 2 && strings.EqualFold(v[:2], "as") {
			digits = v[2:]
		}
		n, err := strconv.ParseUint(digits, 10, 32)
		if err != nil || n == 0 || digits[0] == '+' {
			return nil, fmt.Errorf("invalid asn %q: must be an AS number 1..4294967295, such as 13335 or AS13335", v)
		}
		if !slices.Contains(out, uint32(n)) {
			out = append(out, uint32(n))
		}
	}
	return out, nil
}

// parseCountries accepts ISO 3166 alpha-2 codes (any case; stored upper).
func parseCountries(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		cc := strings.ToUpper(v)
		if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
			return nil, fmt.Errorf("invalid country %q: must be an ISO 3166 two-letter code such as US or DE", v)
		}
		if !slices.Contains(out, cc) {
			out = append(out, cc)
		}
	}
	return out, nil
}

// parseIP accepts an address (a /32 or /128) or a CIDR prefix, whose host
// bits are cleared (10.1.2.3/8 is 10.0.0.0/8). IPv4-mapped IPv6 forms are
// turned into IPv4: the store and the live tail compare IPv4 unmapped.
func parseIP(name, s string) (netip.Prefix, error) {
	p, ok := flowlog.ParseAddrPrefix(s)
	if !ok {
		return p, fmt.Errorf("invalid %s %q: must be an IP address or a CIDR prefix such as 10.0.0.0/8 or fd00::/64", name, s)
	}
	return p, nil
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

// parseChoice maps a value to one of choices (in the order the message
// lists them); "" gives def.
func parseChoice[T any](name, s string, def T, names []string, values []T) (T, error) {
	if s == "" {
		return def, nil
	}
	if i := slices.Index(names, s); i >= 0 {
		return values[i], nil
	}
	return def, fmt.Errorf("invalid %s %q: must be one of %s", name, s, strings.Join(names, ", "))
}

// EncodeCursor renders the position after a flow as the opaque cursor of
// /api/v1/flows: base64url (unpadded) of "<start unix ms>:<flow id>" in
// the default order (newest start first, the cursors Next always had), or
// "<sort>-<order>:<value>:<start unix ms>:<flow id>" in another.
func EncodeCursor(c flowlog.Cursor) string {
	s := strconv.FormatInt(c.Start.UnixMilli(), 10) + ":" + c.FlowID
	if c.Sort != (flowlog.Sort{}) {
		s = c.Sort.Key.String() + "-" + c.Sort.Order() + ":" + strconv.FormatUint(c.Value, 10) + ":" + s
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(s string) (flowlog.Cursor, error) {
	bad := fmt.Errorf("invalid cursor %q: not a cursor from an answer's Next", s)
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return flowlog.Cursor{}, bad
	}
	var c flowlog.Cursor
	text := string(b)
	if text != "" && (text[0] < '0' || text[0] > '9') && text[0] != '-' { // a sorted listing's
		order, rest, ok1 := strings.Cut(text, ":")
		value, rest, ok2 := strings.Cut(rest, ":")
		key, dir, ok3 := strings.Cut(order, "-")
		if !ok1 || !ok2 || !ok3 {
			return c, bad
		}
		if c.Sort, err = flowlog.ParseSort(key, dir); err != nil || c.Sort == (flowlog.Sort{}) {
			return c, bad
		}
		if c.Value, err = strconv.ParseUint(value, 10, 64); err != nil || value != strconv.FormatUint(c.Value, 10) {
			return c, bad
		}
		text = rest
	}
	msText, id, ok := strings.Cut(text, ":")
	if !ok || id == "" {
		return flowlog.Cursor{}, bad
	}
	ms, err := strconv.ParseInt(msText, 10, 64)
	if err != nil || msText != strconv.FormatInt(ms, 10) {
		return flowlog.Cursor{}, bad
	}
	c.Start, c.FlowID = time.UnixMilli(ms).UTC(), id
	return c, nil
}
