package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/tail"
)

func TestCORS(t *testing.T) {
	rs := testReaders(t)
	api := Access{Readers: func() *auth.Readers { return rs }, Log: discardLog()}.Handler(
		New(Deps{Store: threeNetworks(), Hub: tail.NewHub(), Log: discardLog()}))
	h := CORS{Origins: []string{"https://dash.example.com"}}.Handler(api)
	req := func(method, origin, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/api/v1/flows", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if method == http.MethodOptions {
			r.Header.Set("Access-Control-Request-Method", "GET")
			r.Header.Set("Access-Control-Request-Headers", "authorization")
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	// A preflight from an allowed origin is answered without a token.
	rec := req(http.MethodOptions, "https://dash.example.com", "")
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "https://dash.example.com" ||
		rec.Header().Get("Access-Control-Allow-Headers") != corsHeaders || rec.Header().Get("Access-Control-Allow-Methods") != "GET, OPTIONS" {
		t.Errorf("preflight: %d %v", rec.Code, rec.Header())
	}
	// The call itself still needs its token, and carries the header.
	if rec := req(http.MethodGet, "https://dash.example.com", "one-token"); rec.Code != 200 ||
		rec.Header().Get("Access-Control-Allow-Origin") != "https://dash.example.com" || rec.Header().Get("Vary") != "Origin" {
		t.Errorf("GET: %d %v", rec.Code, rec.Header())
	}
	if rec := req(http.MethodGet, "https://dash.example.com", ""); rec.Code != 401 || rec.Header().Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("GET without token: %d %v (the browser must be able to read the 401)", rec.Code, rec.Header())
	}
	// Another origin gets no CORS headers (its preflight falls to Access).
	for _, m := range []string{http.MethodOptions, http.MethodGet} {
		if rec := req(m, "https://evil.example", "one-token"); rec.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s from another origin: %v", m, rec.Header())
		}
	}
	// "*" allows any; no origins: CORS off.
	any := CORS{Origins: []string{"*"}}.Handler(api)
	r := httptest.NewRequest(http.MethodGet, "/api/v1/flows", nil)
	r.Header.Set("Origin", "http://localhost:5173")
	r.Header.Set("Authorization", "Bearer one-token")
	rec = httptest.NewRecorder()
	any.ServeHTTP(rec, r)
	if rec.Header().Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Errorf("*: %v", rec.Header())
	}
	rec = httptest.NewRecorder()
	CORS{}.Handler(api).ServeHTTP(rec, r)
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("off: %v", rec.Header())
	}
}

func TestParseCORSOrigins(t *testing.T) {
	got, err := ParseCORSOrigins(" https://a.example , http://b.example:8080/ ,*,")
	if err != nil || len(got) != 3 || got[0] != "https://a.example" || got[1] != "http://b.example:8080" || got[2] != "*" {
		t.Fatalf("%q %v", got, err)
	}
	for _, bad := range []string{"a.example", "ftp://a.example", "https://a.example/path", "https://"} {
		if _, err := ParseCORSOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
