package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CORS lets web pages served from other origins call the API, as Netmaker's
// server does for its dashboard (its CORS_ALLOWED_ORIGIN). Wrap it around
// Access, not inside: a browser's preflight (OPTIONS) carries no token.
// Answers to other origins carry no CORS headers, so browsers keep them
// same-origin as before.
type CORS struct {
	// Origins are the allowed origins ("https://dash.example.com"); "*"
	// allows any. Empty: CORS off.
	Origins []string
}

// corsHeaders are the request headers a cross-origin call may send: the
// bearer token, and what Netmaker's dashboard sends.
const corsHeaders = "Authorization, Content-Type, X-Requested-With, From-Ui"

// ParseCORSOrigins reads a comma-separated list of origins (a flag's
// value): each "*" or scheme://host[:port], nothing more.
func ParseCORSOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
				u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return nil, fmt.Errorf("invalid CORS origin %q: must be * or scheme://host[:port], such as https://dash.example.com", o)
			}
			o = u.Scheme + "://" + u.Host
		}
		out = append(out, o)
	}
	return out, nil
}

// Handler adds the CORS headers for allowed origins to next's answers and
// answers their preflights itself.
func (c CORS) Handler(next http.Handler) http.Handler {
	if len(c.Origins) == 0 {
		return next
	}
	anyOrigin := slices.Contains(c.Origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin == "" || !(anyOrigin || slices.Contains(c.Origins, origin)) {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
