package api

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
)

// requestID names one failed request in the collector's log: a client is
// told only the id, never the engine's error text (which can carry SQL,
// paths and data), and an operator finds the whole story by it.
func requestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// internalError logs err under a new request id and answers code (500 or
// 503) with `<what> (request <id>)`: the client learns that it was our
// failure and how to refer to it, nothing of its inside.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, code int, what string, err error) {
	id := requestID()
	s.log.LogAttrs(r.Context(), slog.LevelError, what, slog.String("request_id", id), slog.Any("err", err),
		slog.String("path", r.URL.Path), slog.String("query", r.URL.RawQuery))
	w.Header().Set("X-Request-Id", id)
	s.writeError(w, r, code, what+" (request "+id+")")
}
