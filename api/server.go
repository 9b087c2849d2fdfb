// Package api serves flows over HTTP in the shape Netmaker's own API uses, so
// that tools written for Netmaker's /api/v1/flows work against flowlog; and,
// beyond Netmaker, aggregates, a live tail (Server-Sent Events) and the
// OpenAPI document of it all (openapi.json).
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/tail"
)

// flowsMessage is the Message Netmaker sends with a successful flow list.
const flowsMessage = "flows retrieved successfully"

// healthTimeout keeps a hung store from hanging the prober with it: a probe
// that gets no answer is as bad as a failed one.
const healthTimeout = 5 * time.Second

// Defaults of the live tail.
const (
	DefaultStreamBuffer = tail.DefaultBuffer // events waiting for one stream client
	DefaultKeepalive    = 15 * time.Second

	DefaultMaxTails          = 1000
	DefaultMaxTailsPerReader = 100
)

//go:embed openapi.json
var openAPIDoc []byte

// Deps is what the API serves from.
type Deps struct {
	Store Reader             // required
	Agg   flowlog.Aggregator // nil: the aggregate endpoints answer 501
	Hub   *tail.Hub          // nil: the live tail answers 501
	// Rejected lists rejected events (/api/v1/rejected, admin readers
	// only); nil: that endpoint answers 501.
	Rejected flowlog.RejectedReader
	Log      *slog.Logger // nil: slog.Default()
	UI       http.Handler // nil: none; otherwise served for every GET outside /api/ and /healthz

	StreamBuffer int           // events buffered per live-tail client (default DefaultStreamBuffer)
	Keepalive    time.Duration // between keepalive comments on the live tail (default DefaultKeepalive)
	// MaxTails bounds the live tails open at once, MaxTailsPerReader those
	// of one reader (one client address when the API is open); more are
	// answered 429. Defaults DefaultMaxTails, DefaultMaxTailsPerReader;
	// negative: no bound.
	MaxTails          int
	MaxTailsPerReader int
}

// Reader is what the API reads flows from (flowlog.Store is one); the
// aggregates come from a flowlog.Aggregator.
type Reader interface {
	Flows(ctx context.Context, f flowlog.Filter, p flowlog.Page) ([]flowlog.Flow, error)
	Ping(ctx context.Context) error
}

// Server is the HTTP API. It holds no state of its own: queries go to the
// store, live flows come from the hub.
type Server struct {
	store     Reader
	agg       flowlog.Aggregator
	rejected  flowlog.RejectedReader
	hub       *tail.Hub
	log       *slog.Logger
	mux       *http.ServeMux
	buffer    int
	keepalive time.Duration
	now       func() time.Time
	routes    []route
	tails     *tailLimits
}

// route is one endpoint; the OpenAPI test holds the document to this list.
type route struct {
	method, path string
	params       *paramSpec // nil: takes no parameters
	handler      http.HandlerFunc
}

// New returns the API over d.
func New(d Deps) *Server {
	s := &Server{store: d.Store, agg: d.Agg, rejected: d.Rejected, hub: d.Hub, log: d.Log, mux: http.NewServeMux(),
		buffer: d.StreamBuffer, keepalive: d.Keepalive, now: time.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.buffer < 1 {
		s.buffer = DefaultStreamBuffer
	}
	if s.keepalive <= 0 {
		s.keepalive = DefaultKeepalive
	}
	s.tails = &tailLimits{max: orDefault(d.MaxTails, DefaultMaxTails), perReader: orDefault(d.MaxTailsPerReader, DefaultMaxTailsPerReader)}
	s.routes = []route{
		{"GET", "/api/v1/flows", &flowsParams, s.listFlows},
		{"GET", "/api/v1/flows/stream", &streamParams, s.stream},
		{"GET", "/api/v1/aggregates/top", &topParams, s.aggTop},
		{"GET", "/api/v1/aggregates/matrix", &matrixParams, s.aggMatrix},
		{"GET", "/api/v1/aggregates/timeseries", &seriesParams, s.aggSeries},
		{"GET", "/api/v1/aggregates/active", &activeParams, s.aggActive},
		{"GET", RejectedPath, &rejectedParams, s.listRejected},
		{"GET", "/api/v1/openapi.json", nil, s.openAPI},
		{"GET", "/healthz", nil, s.health},
	}
	s.routes = append(s.routes, s.consoleRoutes()...) // console.go
	for _, rt := range s.routes {
		s.mux.HandleFunc(rt.method+" "+rt.path, rt.handler)
	}
	// Unknown API paths get a JSON 404 rather than the UI's page; as a GET
	// pattern it leaves other methods on known paths to the mux's 405.
	s.mux.HandleFunc("GET /api/", s.notFound)
	if d.UI != nil {
		s.mux.Handle("GET /", d.UI)
	}
	return s
}

// orDefault is v, or d when v is zero (a negative v stays: no bound).
func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Netmaker's models.SuccessResponse and models.ErrorResponse: untagged Go
// structs, hence the capitalised keys.
type successResponse struct {
	Code     int
	Message  string
	Response any
}

type errorResponse struct {
	Code     int
	Message  string
	Response any // always null, as in Netmaker's error bodies
}

// flowsResponse is Netmaker's envelope plus Next, the cursor of the next
// page ("" on the last page), which Netmaker's clients ignore.
type flowsResponse struct {
	Code     int
	Message  string
	Response []FlowRow
	Next     string
}

// query decodes the query string strictly: r.URL.Query() drops pairs it
// cannot decode, and a dropped filter would widen the query behind the
// caller's back.
func (s *Server) query(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, "invalid query string: "+err.Error())
		return nil, false
	}
	return q, true
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	filter, page, err := ParseFlowsQuery(q)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !s.scope(w, r, &filter) {
		return
	}
	if emptyRange(filter) { // Netmaker answers from > to with no flows
		s.writeJSON(w, r, http.StatusOK, flowsResponse{Code: http.StatusOK, Message: flowsMessage, Response: []FlowRow{}})
		return
	}
	flows, err := s.store.Flows(r.Context(), filter, page)
	if s.failed(w, r, err, "flows") {
		return
	}
	rows := make([]FlowRow, len(flows)) // never nil: clients expect [] not null
	for i, f := range flows {
		rows[i] = NewFlowRow(f)
	}
	resp := flowsResponse{Code: http.StatusOK, Message: flowsMessage, Response: rows}
	// A full page may have a successor; a short one is the last. (A full
	// last page costs the client one more request that comes back empty.)
	if n := len(flows); n > 0 && n == page.PerPage {
		last := flows[n-1]
		resp.Next = EncodeCursor(*page.Sort.CursorOf(&last))
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		id := requestID()
		s.log.WarnContext(r.Context(), "health check failed", "request_id", id, "err", err)
		w.Header().Set("X-Request-Id", id)
		s.writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "store not answering (request " + id + ")"})
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, http.StatusNotFound, "no such endpoint: "+r.URL.Path+" (see /api/v1/openapi.json)")
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.writeJSON(w, r, code, errorResponse{Code: code, Message: msg})
}

// writeJSON encodes before writing the status, so that an encoding failure
// can still become a 500 instead of a truncated 200.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		id := requestID()
		s.log.ErrorContext(r.Context(), "encoding response", "request_id", id, "err", err)
		code = http.StatusInternalServerError
		w.Header().Set("X-Request-Id", id)
		body, _ = json.Marshal(errorResponse{Code: code, Message: "internal error encoding the response (request " + id + ")"})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}
