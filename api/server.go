// Package api serves flows over HTTP in the shape Netmaker's own API uses, so
// that tools written for Netmaker's /api/v1/flows work against flowlog.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/flowlog/flowlog"
)

// flowsMessage is the Message Netmaker sends with a successful flow list.
const flowsMessage = "flows retrieved successfully"

// healthTimeout keeps a hung store from hanging the prober with it: a probe
// that gets no answer is as bad as a failed one.
const healthTimeout = 5 * time.Second

// Server is the HTTP API. It holds no state of its own; every request goes to
// the store.
type Server struct {
	store flowlog.Store
	log   *slog.Logger
	mux   *http.ServeMux
}

// New returns the API over store. A nil log means slog.Default().
func New(store flowlog.Store, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{store: store, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /api/v1/flows", s.listFlows)
	s.mux.HandleFunc("GET /healthz", s.health)
	return s
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
	Code    int
	Message string
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) {
	// r.URL.Query() drops pairs it cannot decode; a dropped filter would
	// widen the query behind the caller's back.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, "invalid query string: "+err.Error())
		return
	}
	filter, page, err := ParseFlowsQuery(q)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	flows, err := s.store.Flows(r.Context(), filter, page)
	if err != nil {
		if r.Context().Err() != nil {
			// The client left; nobody is there to read an answer.
			s.log.DebugContext(r.Context(), "flows request abandoned", "err", err)
			return
		}
		s.log.ErrorContext(r.Context(), "fetching flows", "err", err, "query", r.URL.RawQuery)
		s.writeError(w, r, http.StatusInternalServerError, "error fetching flows: "+err.Error())
		return
	}
	rows := make([]FlowRow, len(flows)) // never nil: clients expect [] not null
	for i, f := range flows {
		rows[i] = NewFlowRow(f)
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: flowsMessage, Response: rows})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(r.Context(), "health check failed", "err", err)
		s.writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.writeJSON(w, r, code, errorResponse{Code: code, Message: msg})
}

// writeJSON encodes before writing the status, so that an encoding failure
// can still become a 500 instead of a truncated 200.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.ErrorContext(r.Context(), "encoding response", "err", err)
		code = http.StatusInternalServerError
		body, _ = json.Marshal(errorResponse{Code: code, Message: "encoding response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}
