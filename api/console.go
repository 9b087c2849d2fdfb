package api

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

// The console's endpoints beyond Netmaker's and the aggregates: the hosts
// view, connections seen for the first time, suggestions for the filter
// fields, and the export of a whole filter.

const (
	defaultHostsWindow = 24 * time.Hour
	defaultQuiet       = 5 * time.Minute
	defaultNewWindow   = 24 * time.Hour
	defaultNewBaseline = 7 * 24 * time.Hour
	defaultNewLimit    = 100
	defaultStack       = 5
	maxStack           = 20
	defaultSuggest     = 20
	maxSuggest         = 200
	// exportPage flows are read per store query; each page extends the
	// write deadline, so a long export is not cut by --http-write-timeout
	// while it keeps moving.
	exportPage         = 1000
	exportPageDeadline = time.Minute
	insightsMissing    = "not available: the store does not implement hosts, new pairs and suggestions"
)

var (
	hostsParams   = paramSpec{single: []string{"network_id", "node_id", "from", "to", "quiet"}, noPage: "hosts have no pages"}
	newParams     = paramSpec{single: slices.Concat(without(filterParams, "from", "to", "state"), []string{"window", "baseline", "limit"}), list: listParams, noPage: "new pairs have no pages"}
	suggestParams = paramSpec{single: []string{"q", "network_id", "from", "to", "limit"}, noPage: "suggestions have no pages"}
	stackedParams = paramSpec{single: slices.Concat(filterParams, []string{"step", "by", "limit"}), list: listParams, noPage: "aggregates have no pages"}
	exportParams  = paramSpec{single: slices.Concat(filterParams, sortParams, []string{"format"}), list: listParams, noPage: "an export is every matching flow"}
)

// consoleRoutes are registered by New.
func (s *Server) consoleRoutes() []route {
	return []route{
		{"GET", "/api/v1/hosts", &hostsParams, s.hosts},
		{"GET", "/api/v1/new", &newParams, s.newPairs},
		{"GET", "/api/v1/suggest", &suggestParams, s.suggest},
		{"GET", "/api/v1/flows/export", &exportParams, s.export},
		{"GET", "/api/v1/aggregates/stacked", &stackedParams, s.stacked},
	}
}

type hostJSON struct {
	HostID          string   `json:"host_id"`
	HostName        string   `json:"host_name"`
	Networks        []string `json:"networks"`
	LastReport      string   `json:"last_report"`
	Quiet           bool     `json:"quiet"`
	Events          uint64   `json:"events"`
	EventsPerSecond float64  `json:"events_per_second"`
	Flows           uint64   `json:"flows"`
	Active          uint64   `json:"active"`
	Bytes           uint64   `json:"bytes"`
	Rejected        uint64   `json:"rejected"`
	// Agents: the software and wire generation the host reports through,
	// one per generation, the last seen first ([] before any was recorded).
	Agents []agentJSON `json:"agents"`
}

type agentJSON struct {
	Generation string `json:"generation"` // "v1.5+" or "v1.4"
	Agent      string `json:"agent"`      // the gRPC user-agent
	LastSeen   string `json:"last_seen"`
}

type endpointJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
	IP   string `json:"ip"`
}

type newPairJSON struct {
	Src      endpointJSON `json:"src"`
	Dst      endpointJSON `json:"dst"`
	DstPort  uint16       `json:"dst_port"`
	Protocol uint8        `json:"protocol"`
	First    string       `json:"first"`
	Last     string       `json:"last"`
	Bytes    uint64       `json:"bytes"`
	Packets  uint64       `json:"packets"`
	Flows    uint64       `json:"flows"`
}

type newPairsJSON struct {
	From         string        `json:"from"`
	To           string        `json:"to"`
	BaselineFrom string        `json:"baseline_from"`
	Pairs        []newPairJSON `json:"pairs"`
}

type suggestionJSON struct {
	Field string `json:"field"`
	Value string `json:"value"`
	Label string `json:"label"`
	Type  string `json:"type,omitempty"`
	Flows uint64 `json:"flows"`
}

// msTime is the API's time with milliseconds, in UTC.
func msTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// insights parses the filter, then the endpoint's own parameters with
// parse (which may set the filter's window); a 400 on error. It scopes the
// filter and finds the store's Insights (501 without), and reports whether
// to go on.
func (s *Server) insights(w http.ResponseWriter, r *http.Request, spec *paramSpec, f *flowlog.Filter, parse func(get func(string) string) error) (flowlog.Insights, bool) {
	q, ok := s.query(w, r)
	if !ok {
		return nil, false
	}
	err := spec.check(q)
	if err == nil {
		*f, err = parseFilter(q)
	}
	if err == nil {
		err = parse(getter(q))
	}
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if !s.scope(w, r, f) {
		return nil, false
	}
	ins, ok := s.store.(flowlog.Insights)
	if !ok {
		s.writeError(w, r, http.StatusNotImplemented, r.URL.Path+": "+insightsMissing)
		return nil, false
	}
	return ins, true
}

// insightFailed is failed, with a 501 for a store that turns out not to
// have the view (a wrapper of a store without it).
func (s *Server) insightFailed(w http.ResponseWriter, r *http.Request, err error, what string) bool {
	if errors.Is(err, errors.ErrUnsupported) {
		s.writeError(w, r, http.StatusNotImplemented, r.URL.Path+": "+insightsMissing)
		return true
	}
	return s.failed(w, r, err, what)
}

// span parses a duration parameter as the step of a series is parsed
// ("30m", "24h", "7d").
func span(name, text string, def time.Duration) (time.Duration, error) {
	if text == "" {
		return def, nil
	}
	d, err := parseStep(text)
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q: must be a duration from 1s to 365d, such as 30m, 24h or 7d", name, text)
	}
	return d, nil
}

func (s *Server) hosts(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	var quiet time.Duration
	f := &flowlog.Filter{}
	ins, ok := s.insights(w, r, &hostsParams, f, func(get func(string) string) error {
		var err error
		quiet, err = span("quiet", get("quiet"), defaultQuiet)
		return err
	})
	if !ok {
		return
	}
	if f.From.IsZero() {
		f.From = now.Add(-defaultHostsWindow)
	}
	to := f.To
	if to.IsZero() {
		to = now
	}
	hosts, err := ins.Hosts(r.Context(), *f)
	if s.insightFailed(w, r, err, "hosts") {
		return
	}
	secs := to.Sub(f.From).Seconds()
	out := make([]hostJSON, len(hosts))
	for i, h := range hosts {
		nets := h.Networks
		if nets == nil {
			nets = []string{}
		}
		out[i] = hostJSON{HostID: h.HostID, HostName: h.HostName, Networks: nets, LastReport: msTime(h.LastReport),
			Quiet: now.Sub(h.LastReport) > quiet, Events: h.Events, Flows: h.Flows, Active: h.Active, Bytes: h.Bytes, Rejected: h.Rejected}
		if secs > 0 {
			out[i].EventsPerSecond = float64(h.Events) / secs
		}
		out[i].Agents = make([]agentJSON, len(h.Agents))
		for j, a := range h.Agents {
			out[i].Agents[j] = agentJSON{Generation: a.Generation, Agent: a.Agent, LastSeen: msTime(a.LastSeen)}
		}
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "hosts retrieved successfully", Response: out})
}

func (s *Server) newPairs(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	var q flowlog.NewPairsQuery
	ins, ok := s.insights(w, r, &newParams, &q.Filter, func(get func(string) string) error {
		window, err := span("window", get("window"), defaultNewWindow)
		if err != nil {
			return err
		}
		baseline, err := span("baseline", get("baseline"), defaultNewBaseline)
		if err != nil {
			return err
		}
		if q.Limit, err = parseInt("limit", get("limit"), defaultNewLimit, 1, maxAggLimit); err != nil {
			return err
		}
		q.Filter.To = now.Truncate(time.Millisecond)
		q.Filter.From = q.Filter.To.Add(-window)
		q.BaselineFrom = q.Filter.From.Add(-baseline)
		return nil
	})
	if !ok {
		return
	}
	pairs, err := ins.NewPairs(r.Context(), q)
	if s.insightFailed(w, r, err, "new pairs") {
		return
	}
	out := newPairsJSON{From: msTime(q.Filter.From), To: msTime(q.Filter.To), BaselineFrom: msTime(q.BaselineFrom), Pairs: make([]newPairJSON, len(pairs))}
	ep := func(p flowlog.Participant) endpointJSON {
		return endpointJSON{Type: p.Type.String(), ID: p.ID, Name: p.Name, IP: ipString(p.IP)}
	}
	for i, p := range pairs {
		out.Pairs[i] = newPairJSON{Src: ep(p.Src), Dst: ep(p.Dst), DstPort: p.DstPort, Protocol: p.Protocol,
			First: msTime(p.First), Last: msTime(p.Last), Bytes: p.Bytes, Packets: p.Packets, Flows: p.Flows}
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "new pairs retrieved successfully", Response: out})
}

func (s *Server) suggest(w http.ResponseWriter, r *http.Request) {
	var text string
	var limit int
	f := &flowlog.Filter{}
	ins, ok := s.insights(w, r, &suggestParams, f, func(get func(string) string) error {
		text = get("q")
		var err error
		limit, err = parseInt("limit", get("limit"), defaultSuggest, 1, maxSuggest)
		return err
	})
	if !ok {
		return
	}
	got, err := ins.Suggest(r.Context(), *f, text, limit)
	if s.insightFailed(w, r, err, "suggestions") {
		return
	}
	out := make([]suggestionJSON, len(got))
	for i, g := range got {
		out[i] = suggestionJSON{Field: g.Field, Value: g.Value, Label: g.Label, Type: g.Type, Flows: g.Flows}
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "suggestions retrieved successfully", Response: out})
}

type stackJSON struct {
	Key     string      `json:"key"` // "": every other group
	Bytes   uint64      `json:"bytes"`
	Packets uint64      `json:"packets"`
	Flows   uint64      `json:"flows"`
	Points  []pointJSON `json:"points"`
}

type stackedJSON struct {
	StepSeconds int64       `json:"step_seconds"`
	By          string      `json:"by"`
	Groups      []stackJSON `json:"groups"`
}

// stacked is /aggregates/timeseries split by a key: the top groups by bytes,
// biggest first, then the rest ("" key) when there is any; each group's
// points on the same dense grid as the time series.
func (s *Server) stacked(w http.ResponseWriter, r *http.Request) {
	var sq seriesQuery
	var by string
	var limit int
	ins, ok := s.insights(w, r, &stackedParams, &sq.filter, func(get func(string) string) error {
		var err error
		if by, err = parseChoice("by", get("by"), "protocol", flowlog.StackKeys, flowlog.StackKeys); err != nil {
			return err
		}
		if limit, err = parseInt("limit", get("limit"), defaultStack, 1, maxStack); err != nil {
			return err
		}
		q, _ := url.ParseQuery(r.URL.RawQuery) // parsed once already by insights
		q.Del("by")
		q.Del("limit")
		sq, err = parseSeriesQuery(q, s.now())
		return err
	})
	if !ok {
		return
	}
	points, err := ins.SeriesBy(r.Context(), sq.filter, sq.step, by, limit)
	if s.insightFailed(w, r, err, "stacked series") {
		return
	}
	byKey := map[string][]flowlog.Point{}
	totals := map[string]flowlog.Totals{}
	for _, p := range points {
		byKey[p.Key] = append(byKey[p.Key], flowlog.Point{T: p.T, Totals: p.Totals})
		t := totals[p.Key]
		t.Bytes, t.Packets, t.Flows = t.Bytes+p.Bytes, t.Packets+p.Packets, t.Flows+p.Flows
		totals[p.Key] = t
	}
	out := stackedJSON{StepSeconds: int64(sq.step / time.Second), By: by, Groups: []stackJSON{}}
	for k, pts := range byKey {
		t := totals[k]
		out.Groups = append(out.Groups, stackJSON{Key: k, Bytes: t.Bytes, Packets: t.Packets, Flows: t.Flows, Points: sq.fill(pts)})
	}
	// Biggest first, the rest last.
	slices.SortFunc(out.Groups, func(a, b stackJSON) int {
		if c := cmp.Compare(boolInt(a.Key == ""), boolInt(b.Key == "")); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "stacked series retrieved successfully", Response: out})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// exportColumns are the CSV header: FlowRow's JSON names, in its order.
var exportColumns = []string{"flow_id", "host_id", "host_name", "network_id", "protocol", "src_port", "dst_port", "icmp_type", "icmp_code",
	"direction", "src_ip", "src_type", "src_entity_id", "src_entity_name", "dst_ip", "dst_type", "dst_entity_id", "dst_entity_name",
	"start_ts", "end_ts", "bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "status", "version", "active",
	"src_asn", "src_as_name", "src_country", "dst_asn", "dst_as_name", "dst_country"}

func csvRecord(r FlowRow) []string {
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	end := ""
	if !r.Active {
		end = msTime(r.EndTs)
	}
	return []string{r.FlowID, r.HostID, r.HostName, r.NetworkID, u(uint64(r.Protocol)), u(uint64(r.SrcPort)), u(uint64(r.DstPort)),
		u(uint64(r.ICMPType)), u(uint64(r.ICMPCode)), r.Direction, r.SrcIP, r.SrcType, r.SrcEntityID, r.SrcEntityName,
		r.DstIP, r.DstType, r.DstEntityID, r.DstEntityName, msTime(r.StartTs), end,
		u(r.BytesSent), u(r.BytesRecv), u(r.PacketsSent), u(r.PacketsRecv), u(uint64(r.Status)), msTime(r.Version), strconv.FormatBool(r.Active),
		u(uint64(r.SrcASN)), r.SrcASName, r.SrcCountry, u(uint64(r.DstASN)), r.DstASName, r.DstCountry}
}

// export streams every flow of the filter in the listing's order (sort,
// order; default newest first), page by page
// (keyset paging, so the export is consistent while flows arrive): CSV with
// a header, or JSON lines of FlowRow. A store error after the first byte
// aborts the response, so the client sees a truncated transfer, not a
// short file that looks complete.
func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	format := getter(q)("format")
	err := exportParams.check(q)
	if err == nil && format != "" && format != "csv" && format != "jsonl" {
		err = fmt.Errorf("invalid format %q: must be one of csv, jsonl", format)
	}
	var f flowlog.Filter
	if err == nil {
		f, err = parseFilter(q)
	}
	var order flowlog.Sort
	if err == nil {
		order, err = parseSort(q)
	}
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !s.scope(w, r, &f) {
		return
	}
	if format == "" {
		format = "csv"
	}
	rc := http.NewResponseController(w)
	page := flowlog.Page{PerPage: exportPage, Sort: order}
	var cw *csv.Writer
	started := false
	for {
		rc.SetWriteDeadline(time.Now().Add(exportPageDeadline)) // not every writer supports it
		flows, err := s.store.Flows(r.Context(), f, page)
		if err != nil {
			if !started {
				s.failed(w, r, err, "flows")
				return
			}
			s.log.WarnContext(r.Context(), "export aborted", "err", err)
			panic(http.ErrAbortHandler)
		}
		if !started {
			started = true
			name := "flows-" + s.now().UTC().Format("20060102T150405Z") + "." + format
			if format == "csv" {
				w.Header().Set("Content-Type", "text/csv; charset=utf-8")
				cw = csv.NewWriter(w)
				cw.Write(exportColumns)
			} else {
				w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
			}
			w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
			w.Header().Set("Cache-Control", "no-store")
		}
		for _, fl := range flows {
			row := NewFlowRow(fl)
			if cw != nil {
				cw.Write(csvRecord(row))
			} else {
				b, _ := json.Marshal(row)
				w.Write(append(b, '\n'))
			}
		}
		if cw != nil {
			cw.Flush()
		}
		if len(flows) < page.PerPage || r.Context().Err() != nil {
			if cw != nil && len(flows) == 0 && page.After == nil {
				cw.Flush() // the header alone: nothing matched
			}
			rc.Flush()
			return
		}
		rc.Flush()
		last := flows[len(flows)-1]
		page.After = order.CursorOf(&last)
	}
}
