package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// HTTPLimits bound what one HTTP client can hold: a connection, a goroutine,
// a store query. Zero values take the defaults below (SECURITY.md).
type HTTPLimits struct {
	ReadHeaderTimeout time.Duration // request line and headers (default 10s: slow-header clients)
	ReadTimeout       time.Duration // the whole request, body included (default 30s)
	// WriteTimeout bounds a non-streaming answer from the end of its headers
	// to its last byte, the store query included (its context ends then
	// too). The live tail is exempt: it sets a deadline per write itself
	// (stream.go) and ends a client that stops reading.
	WriteTimeout   time.Duration // default 2m
	IdleTimeout    time.Duration // keep-alive connection between requests (default 2m)
	MaxHeaderBytes int           // request line and headers (default 64 KiB)
	// Streaming says which requests are long-lived (exempt from
	// WriteTimeout). Default: the live tail, GET /api/v1/flows/stream, and
	// the export, GET /api/v1/flows/export (console.go: a deadline per page).
	Streaming func(*http.Request) bool
}

// Defaults of HTTPLimits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

func (l *HTTPLimits) defaults() {
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	dur(&l.ReadTimeout, DefaultReadTimeout)
	dur(&l.WriteTimeout, DefaultWriteTimeout)
	dur(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.Streaming == nil {
		l.Streaming = func(r *http.Request) bool {
			return r.URL.Path == "/api/v1/flows/stream" || r.URL.Path == "/api/v1/flows/export"
		}
	}
}

// Apply sets hs's timeouts and header limit and wraps its handler with
// Handler. hs.WriteTimeout stays zero: a server-wide write deadline would
// end every live tail after it; deadlines are set per request instead.
func (l HTTPLimits) Apply(hs *http.Server) {
	l.defaults()
	hs.ReadHeaderTimeout = l.ReadHeaderTimeout
	hs.ReadTimeout = l.ReadTimeout
	hs.IdleTimeout = l.IdleTimeout
	hs.MaxHeaderBytes = l.MaxHeaderBytes
	hs.WriteTimeout = 0
	hs.Handler = l.Handler(hs.Handler)
}

// bodyRefused is the answer to a request that carries a body.
const bodyRefused = "request bodies are not accepted: the API is read-only (GET)"

// Handler refuses requests with a body (413: the API only answers GETs) and
// gives each non-streaming request a write deadline and a context that end
// WriteTimeout from now.
func (l HTTPLimits) Handler(next http.Handler) http.Handler {
	l.defaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasBody(r) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Connection", "close") // the unread body would be taken for the next request
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			json.NewEncoder(w).Encode(errorResponse{Code: http.StatusRequestEntityTooLarge, Message: bodyRefused})
			return
		}
		if l.Streaming(r) { // it sets a deadline per write itself
			next.ServeHTTP(w, r)
			return
		}
		// net/http clears the deadline after each request.
		deadline := time.Now().Add(l.WriteTimeout)
		if err := http.NewResponseController(w).SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// hasBody reports whether r carries a body: a declared length, or a chunked
// body with at least one byte (an empty chunked body is no body).
func hasBody(r *http.Request) bool {
	if r.ContentLength > 0 {
		return true
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return false
	}
	var b [1]byte
	n, err := io.ReadFull(r.Body, b[:])
	return n > 0 || (err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF))
}
