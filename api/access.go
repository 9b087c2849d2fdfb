package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/auth"
)

// Access guards the HTTP listener with the readers file (auth.Readers):
//
//   - /, /assets/..., /healthz and /readyz are open: the page is static (it
//     sends the token it keeps in the browser with its API calls) and probes
//     carry no data.
//   - Everything else (/api/..., /metrics, any other path) needs
//     `Authorization: Bearer <token>` of a reader: 401 with
//     `WWW-Authenticate: Bearer` when missing or unknown.
//   - /metrics and /api/v1/rejected need an admin reader: 403 for a
//     read-only one.
//
// The reader goes into the request's context (ReaderFrom); every endpoint
// that reads flows bounds its filter to the reader's networks (Server.scope).
type Access struct {
	// Readers returns the readers in force (a reload swaps them). A nil
	// function leaves the API open: no token needed, no scope.
	Readers func() *auth.Readers
	Log     *slog.Logger // nil: slog.Default()
}

// Messages of the refusals (the Message of the JSON error).
const (
	msgNoToken      = "missing bearer token: send Authorization: Bearer <token> (a reader's token of the collector's --readers file)"
	msgUnknownToken = "unknown bearer token"
	msgNotAdmin     = "forbidden: %s needs a reader with role admin (reader %q has role %s)"
)

// adminPath says whether a (cleaned) path needs an admin reader: the
// collector's own metrics, and rejected events, which carry no network a
// reader's scope could bound.
func adminPath(p string) bool { return p == "/metrics" || p == RejectedPath }

type grantKey struct{}

// grant is what a request was authorized as: the reader, and how to tell
// later whether the readers in force still grant the same (a long-lived
// request, the live tail, asks now and then).
type grant struct {
	reader *auth.Reader
	valid  func() bool // nil: always
}

// WithReader returns ctx carrying the reader r.
func WithReader(ctx context.Context, r *auth.Reader) context.Context {
	return context.WithValue(ctx, grantKey{}, &grant{reader: r})
}

// ReaderFrom is the reader a request was authorized as (nil: the API is
// open, or the path needs no token).
func ReaderFrom(ctx context.Context) *auth.Reader {
	if g, _ := ctx.Value(grantKey{}).(*grant); g != nil {
		return g.reader
	}
	return nil
}

// stillGranted reports whether the readers in force still give the
// request's token the same reader, networks and role (true when the request
// needed no token): after a reload that removed or narrowed a token, its
// live tails end.
func stillGranted(ctx context.Context) bool {
	g, _ := ctx.Value(grantKey{}).(*grant)
	return g == nil || g.valid == nil || g.valid()
}

// sameGrant says whether b grants what a granted.
func sameGrant(a, b *auth.Reader) bool {
	return a.Name == b.Name && a.Role == b.Role && (a.Networks == nil) == (b.Networks == nil) && slices.Equal(a.Networks, b.Networks)
}

// openPath says whether a (cleaned) path is served without a token.
func openPath(p string) bool {
	switch p {
	case "/", "/healthz", "/readyz":
		return true
	}
	return strings.HasPrefix(p, "/assets/")
}

// Handler guards next.
func (a Access) Handler(next http.Handler) http.Handler {
	if a.Readers == nil {
		return next
	}
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Decided on the cleaned, decoded path ("/assets/..%2fapi/v1/flows"
		// is /api/v1/flows), and the router is handed that same path: the
		// mux matches escaped segments, so it would otherwise see an API
		// path where the guard saw a page, or the reverse.
		orig := r
		p := path.Clean("/" + r.URL.Path)
		if p != r.URL.Path || r.URL.RawPath != "" {
			r = r.Clone(r.Context())
			r.URL.Path, r.URL.RawPath = p, ""
		}
		if openPath(p) {
			next.ServeHTTP(w, r)
			return
		}
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			unauthorized(w, `Bearer realm="flowlog"`, msgNoToken)
			return
		}
		rd, ok := a.Readers().ByToken(token)
		if !ok {
			log.InfoContext(r.Context(), "HTTP request with an unknown bearer token refused", "path", p, "remote", r.RemoteAddr)
			unauthorized(w, `Bearer realm="flowlog", error="invalid_token"`, msgUnknownToken)
			return
		}
		if adminPath(p) && rd.Role != auth.RoleAdmin {
			writeAccessError(w, http.StatusForbidden, fmt.Sprintf(msgNotAdmin, p, rd.Name, rd.Role))
			return
		}
		g := &grant{reader: rd, valid: func() bool {
			now, ok := a.Readers().ByToken(token)
			return ok && sameGrant(rd, now)
		}}
		r2 := r.WithContext(context.WithValue(r.Context(), grantKey{}, g))
		next.ServeHTTP(w, r2)
		// The mux records the route on the request it was given; request
		// metrics outside this handler read it from theirs.
		orig.Pattern = r2.Pattern
	})
}

// bearer extracts the token of an "Authorization: Bearer <token>" header
// (the scheme is case-insensitive, RFC 7235).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

func unauthorized(w http.ResponseWriter, challenge, msg string) {
	w.Header().Set("WWW-Authenticate", challenge)
	writeAccessError(w, http.StatusUnauthorized, msg)
}

func writeAccessError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	body, _ := json.Marshal(errorResponse{Code: code, Message: msg})
	w.Write(append(body, '\n'))
}

// scope bounds f to the networks of the request's reader: f.Networks is set
// to them, and a network_id outside them is refused (403, naming it). It
// reports whether the request may go on. Every endpoint that reads flows
// calls it.
func (s *Server) scope(w http.ResponseWriter, r *http.Request, f *flowlog.Filter) bool {
	rd := ReaderFrom(r.Context())
	if rd == nil || rd.Networks == nil {
		return true
	}
	if f.NetworkID != "" && !rd.AllowsNetwork(f.NetworkID) {
		s.writeError(w, r, http.StatusForbidden, fmt.Sprintf("forbidden: network_id %q is not among this token's networks (%s)",
			f.NetworkID, strings.Join(rd.Networks, ", ")))
		return false
	}
	f.Networks = slices.Clone(rd.Networks)
	return true
}
