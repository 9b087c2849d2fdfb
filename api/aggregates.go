package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

// Time series limits: a fitted step gives at most fitPoints points; no
// series, fitted or asked for, may have more than maxPoints.
const (
	fitPoints      = 300
	maxPoints      = 10_000
	defaultSeries  = 24 * time.Hour
	maxStep        = 365 * 24 * time.Hour
	aggUnavailable = "aggregates are not available: the store does not implement them"
)

// fitSteps are the steps a series is fitted to, smallest first.
var fitSteps = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute,
	time.Hour, 6 * time.Hour, 24 * time.Hour}

// JSON shapes of the aggregates.

type talkerJSON struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	IP      string `json:"ip"`
	ASN     uint32 `json:"asn,omitempty"` // by=asn (the others: by=participant, by=ip)
	ASName  string `json:"as_name,omitempty"`
	Country string `json:"country,omitempty"` // by=country
	Prefix  string `json:"prefix,omitempty"`  // by=prefix
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

type participantJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

type edgeJSON struct {
	Src     participantJSON `json:"src"`
	Dst     participantJSON `json:"dst"`
	Bytes   uint64          `json:"bytes"`
	Packets uint64          `json:"packets"`
	Flows   uint64          `json:"flows"`
}

type pointJSON struct {
	T       string `json:"t"`
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

type seriesJSON struct {
	StepSeconds int64       `json:"step_seconds"`
	Points      []pointJSON `json:"points"`
}

type activeJSON struct {
	Flows uint64 `json:"flows"`
}

// Parsing.

// topBys are the groupings of /aggregates/top (asn, country and prefix: the
// network of external endpoints, from raw flows: rollups do not keep it).
var topBys = []string{"participant", "ip", "asn", "country", "prefix"}

func parseTopQuery(q url.Values) (flowlog.TopQuery, error) {
	var t flowlog.TopQuery
	if err := topParams.check(q); err != nil {
		return t, err
	}
	var err error
	if t.Filter, err = parseFilter(q); err != nil {
		return t, err
	}
	get := getter(q)
	by, err := parseChoice("by", get("by"), "participant", topBys, topBys)
	if err != nil {
		return t, err
	}
	t.ByIP, t.ByASN, t.ByCountry, t.ByPrefix = by == "ip", by == "asn", by == "country", by == "prefix"
	if t.PrefixLens, err = parsePrefixLens(q, t.ByPrefix); err != nil {
		return t, err
	}
	if t.Metric, err = parseChoice("metric", get("metric"), flowlog.MetricBytes, []string{"bytes", "packets", "flows"},
		[]flowlog.Metric{flowlog.MetricBytes, flowlog.MetricPackets, flowlog.MetricFlows}); err != nil {
		return t, err
	}
	if t.Side, err = parseChoice("side", get("side"), flowlog.SideAny, []string{"any", "src", "dst"},
		[]flowlog.Side{flowlog.SideAny, flowlog.SideSrc, flowlog.SideDst}); err != nil {
		return t, err
	}
	t.Limit, err = parseInt("limit", get("limit"), defaultTopLimit, 1, maxAggLimit)
	return t, err
}

// parsePrefixLens reads prefix4 and prefix6 (zero unless by=prefix, the
// only grouping they apply to).
func parsePrefixLens(q url.Values, byPrefix bool) (flowlog.PrefixLens, error) {
	get := getter(q)
	l := flowlog.DefaultPrefixLens
	var err error
	if l.V4, err = parseInt("prefix4", get("prefix4"), l.V4, 1, 32); err != nil {
		return l, err
	}
	if l.V6, err = parseInt("prefix6", get("prefix6"), l.V6, 1, 128); err != nil {
		return l, err
	}
	if !byPrefix {
		return flowlog.PrefixLens{}, nil
	}
	return l, nil
}

func parseMatrixQuery(q url.Values) (flowlog.Filter, int, error) {
	if err := matrixParams.check(q); err != nil {
		return flowlog.Filter{}, 0, err
	}
	f, err := parseFilter(q)
	if err != nil {
		return f, 0, err
	}
	limit, err := parseInt("limit", getter(q)("limit"), defaultMatrixLimit, 1, maxAggLimit)
	return f, limit, err
}

func parseActiveQuery(q url.Values) (flowlog.Filter, error) {
	if err := activeParams.check(q); err != nil {
		return flowlog.Filter{}, err
	}
	return parseFilter(q)
}

// seriesQuery is a parsed /aggregates/timeseries request: the filter (From
// and To always set), the step, and the dense range of buckets
// [first, first+n*step) that covers [From, To).
type seriesQuery struct {
	filter flowlog.Filter
	step   time.Duration
	first  time.Time
	n      int
}

// parseSeriesQuery reads from, to and step. to defaults to now, from to 24
// hours before to; without step, the smallest of fitSteps that gives at
// most fitPoints points is taken.
func parseSeriesQuery(q url.Values, now time.Time) (seriesQuery, error) {
	var s seriesQuery
	if err := seriesParams.check(q); err != nil {
		return s, err
	}
	f, err := parseFilter(q)
	if err != nil {
		return s, err
	}
	if f.To.IsZero() {
		f.To = now.UTC()
		if !f.From.IsZero() && !f.From.Before(f.To) {
			return s, fmt.Errorf("invalid from %q: must be before to (default: now, %s)",
				getter(q)("from"), f.To.Format(time.RFC3339Nano))
		}
	}
	if f.From.IsZero() {
		f.From = f.To.Add(-defaultSeries)
	}
	s.filter = f

	if text := getter(q)("step"); text != "" {
		if s.step, err = parseStep(text); err != nil {
			return s, err
		}
		s.first, s.n = buckets(f.From, f.To, s.step)
		if s.n > maxPoints {
			return s, fmt.Errorf("invalid step %q: gives %d points from %s to %s, at most %d allowed",
				text, s.n, f.From.Format(time.RFC3339Nano), f.To.Format(time.RFC3339Nano), maxPoints)
		}
		return s, nil
	}
	for _, step := range fitSteps {
		s.step = step
		if s.first, s.n = buckets(f.From, f.To, step); s.n <= fitPoints {
			break
		}
	}
	if s.n > maxPoints {
		return s, fmt.Errorf("invalid from %q: the range to %s needs %d points even with step 1d, at most %d allowed",
			f.From.Format(time.RFC3339Nano), f.To.Format(time.RFC3339Nano), s.n, maxPoints)
	}
	return s, nil
}

// parseStep accepts a Go duration ("10s", "5m", "1h30m") or a number of
// days ("1d"), of whole seconds, from 1s to 365d.
func parseStep(text string) (time.Duration, error) {
	bad := fmt.Errorf("invalid step %q: must be a whole number of seconds from 1s to 365d, such as 10s, 1m, 5m, 1h or 1d", text)
	var d time.Duration
	if days, ok := strings.CutSuffix(text, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 365 {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(text); err != nil {
			return 0, bad
		}
	}
	if d < time.Second || d > maxStep || d%time.Second != 0 {
		return 0, bad
	}
	return d, nil
}

// buckets returns the first bucket (from aligned down to a multiple of step
// since the Unix epoch, which for steps dividing a day is the UTC clock) and
// how many buckets reach to. The arithmetic is in seconds: a time.Duration
// overflows past 292 years, and RFC 3339 times span 10,000.
func buckets(from, to time.Time, step time.Duration) (time.Time, int) {
	s := int64(step / time.Second)
	first := alignDown(from, step)
	span := to.Unix() - first.Unix()
	if to.Nanosecond() > 0 {
		span++ // to is exclusive: a bucket holds its fraction of a second
	}
	return first, int((span + s - 1) / s)
}

func alignDown(t time.Time, step time.Duration) time.Time {
	s := int64(step / time.Second)
	u := t.Unix()
	q := u / s
	if u%s < 0 {
		q--
	}
	return time.Unix(q*s, 0).UTC()
}

// fill lays the aggregator's points on the dense grid of q: absent buckets
// are zeros, points are added to the bucket their time falls in, points
// outside the range are left out.
func (q *seriesQuery) fill(points []flowlog.Point) []pointJSON {
	s, first := int64(q.step/time.Second), q.first.Unix()
	out := make([]pointJSON, q.n)
	for i := range out {
		out[i].T = time.Unix(first+int64(i)*s, 0).UTC().Format(time.RFC3339)
	}
	for _, p := range points {
		d := p.T.Unix() - first
		if d < 0 {
			continue
		}
		i := d / s
		if i >= int64(q.n) {
			continue
		}
		out[i].Bytes = addSat(out[i].Bytes, p.Bytes)
		out[i].Packets = addSat(out[i].Packets, p.Packets)
		out[i].Flows = addSat(out[i].Flows, p.Flows)
	}
	return out
}

// addSat adds without wrapping: totals saturate at 2^64-1, as the store's do.
func addSat(a, b uint64) uint64 {
	if c := a + b; c >= a {
		return c
	}
	return math.MaxUint64
}

// Handlers.

func (s *Server) aggTop(w http.ResponseWriter, r *http.Request) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	tq, err := parseTopQuery(q)
	if !s.aggReady(w, r, err, &tq.Filter) {
		return
	}
	talkers, err := s.agg.Top(r.Context(), tq)
	if s.failed(w, r, err, "top talkers") {
		return
	}
	out := make([]talkerJSON, len(talkers))
	for i, t := range talkers {
		out[i] = talkerJSON{Bytes: t.Bytes, Packets: t.Packets, Flows: t.Flows}
		switch {
		case tq.ByIP:
			out[i].IP = ipString(t.IP)
		case tq.ByPrefix:
			out[i].Prefix = t.Prefix.String()
		case tq.ByASN, tq.ByCountry:
			out[i].ASN, out[i].ASName, out[i].Country = t.ASN, t.ASName, t.Country
		default:
			out[i].Type, out[i].ID, out[i].Name = t.Type.String(), t.ID, t.Name
		}
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "top talkers retrieved successfully", Response: out})
}

func (s *Server) aggMatrix(w http.ResponseWriter, r *http.Request) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	f, limit, err := parseMatrixQuery(q)
	if !s.aggReady(w, r, err, &f) {
		return
	}
	edges, err := s.agg.Matrix(r.Context(), f, limit)
	if s.failed(w, r, err, "traffic matrix") {
		return
	}
	out := make([]edgeJSON, len(edges))
	for i, e := range edges {
		out[i] = edgeJSON{
			Src:   participantJSON{Type: e.Src.Type.String(), ID: e.Src.ID, Name: e.Src.Name},
			Dst:   participantJSON{Type: e.Dst.Type.String(), ID: e.Dst.ID, Name: e.Dst.Name},
			Bytes: e.Bytes, Packets: e.Packets, Flows: e.Flows,
		}
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "traffic matrix retrieved successfully", Response: out})
}

func (s *Server) aggSeries(w http.ResponseWriter, r *http.Request) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	sq, err := parseSeriesQuery(q, s.now())
	if !s.aggReady(w, r, err, &sq.filter) {
		return
	}
	points, err := s.agg.Series(r.Context(), sq.filter, sq.step)
	if s.failed(w, r, err, "time series") {
		return
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "time series retrieved successfully",
		Response: seriesJSON{StepSeconds: int64(sq.step / time.Second), Points: sq.fill(points)}})
}

func (s *Server) aggActive(w http.ResponseWriter, r *http.Request) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	f, err := parseActiveQuery(q)
	if !s.aggReady(w, r, err, &f) {
		return
	}
	n, err := s.agg.Active(r.Context(), f)
	if s.failed(w, r, err, "active flows") {
		return
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "active flows counted successfully",
		Response: activeJSON{Flows: n}})
}

// aggReady answers a query that did not parse (err, 400), scopes f to the
// caller's networks (see scope) and answers when the store has no
// aggregates (501); it reports whether the handler goes on.
func (s *Server) aggReady(w http.ResponseWriter, r *http.Request, err error, f *flowlog.Filter) bool {
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return false
	}
	if !s.scope(w, r, f) {
		return false
	}
	if s.agg == nil {
		s.writeError(w, r, http.StatusNotImplemented, aggUnavailable)
		return false
	}
	return true
}

// failed answers a store error (500, or nothing when the client left) and
// reports whether there was one.
// queryLimitMessage answers a read the store stopped for its cost.
const queryLimitMessage = "the query was stopped by the collector's limits (time, memory or rows read); narrow the time range or the filters, or retry later"

func (s *Server) failed(w http.ResponseWriter, r *http.Request, err error, what string) bool {
	if err == nil {
		return false
	}
	if r.Context().Err() != nil {
		// The client left; nobody is there to read an answer.
		s.log.DebugContext(r.Context(), what+" request abandoned", "err", err)
		return true
	}
	switch {
	case errors.Is(err, flowlog.ErrPageTooDeep): // our own words: the request's fault
		s.writeError(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, flowlog.ErrQueryLimit): // the engine's words stay in the log
		s.log.WarnContext(r.Context(), "query over the store's limits", "err", err, "path", r.URL.Path, "query", r.URL.RawQuery)
		s.writeError(w, r, http.StatusServiceUnavailable, "error fetching "+what+": "+queryLimitMessage)
	default:
		s.internalError(w, r, http.StatusInternalServerError, "internal error fetching "+what, err)
	}
	return true
}
