package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/flowlog/flowlog/tail"
)

// The OpenAPI document is written by hand; these tests keep it from
// drifting from the code: every route is documented and every documented
// path is routed, each operation documents exactly the parameters its parser
// knows, and every documented example and enum value is accepted.

func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// resolve follows a local $ref ("#/components/parameters/x").
func resolve(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, ok := cur.(map[string]any)[part]
		if !ok {
			t.Fatalf("$ref %s does not resolve", ref)
		}
		cur = next
	}
	return resolve(t, doc, cur)
}

// allRefsResolve walks the document.
func allRefsResolve(t *testing.T, doc map[string]any, v any) {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["$ref"]; ok {
			resolve(t, doc, x)
		}
		for _, e := range x {
			allRefsResolve(t, doc, e)
		}
	case []any:
		for _, e := range x {
			allRefsResolve(t, doc, e)
		}
	}
}

func testServer() *Server {
	return New(Deps{Store: &fakeStore{}, Agg: &fakeAgg{}, Rejected: &fakeRejected{}, Hub: tail.NewHub(), Log: discardLog()})
}

func TestOpenAPIDocument(t *testing.T) {
	doc := loadDoc(t)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	allRefsResolve(t, doc, doc)

	rec := serve(t, testServer(), "/api/v1/openapi.json")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(openAPIDoc) {
		t.Errorf("GET /api/v1/openapi.json: %d %q, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
}

func TestOpenAPIRoutesMatchMux(t *testing.T) {
	doc := loadDoc(t)
	s := testServer()
	paths := doc["paths"].(map[string]any)

	documented := map[string]bool{}
	for path, item := range paths {
		for method := range item.(map[string]any) {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, rt := range s.routes {
		routed[rt.method+" "+rt.path] = true
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !routed[d] {
			t.Errorf("openapi.json documents %s, which is not routed", d)
		}
		// And the mux really sends it to that route.
		method, path, _ := strings.Cut(d, " ")
		if _, pattern := s.mux.Handler(httptest.NewRequest(method, path, nil)); pattern != d {
			t.Errorf("%s is served by mux pattern %q", d, pattern)
		}
	}
}

func TestOpenAPIParametersMatchParsers(t *testing.T) {
	doc := loadDoc(t)
	s := testServer()
	paths := doc["paths"].(map[string]any)
	for _, rt := range s.routes {
		item, _ := paths[rt.path].(map[string]any)
		op := resolve(t, doc, item[strings.ToLower(rt.method)])
		if op == nil {
			t.Errorf("%s %s is not in openapi.json", rt.method, rt.path)
			continue
		}
		var names []string
		params := map[string]map[string]any{}
		for _, p := range asSlice(op["parameters"]) {
			p := resolve(t, doc, p)
			name, _ := p["name"].(string)
			if p["in"] != "query" {
				t.Errorf("%s: parameter %s is in %v, not query", rt.path, name, p["in"])
			}
			if _, dup := params[name]; dup {
				t.Errorf("%s: parameter %s documented twice", rt.path, name)
			}
			names = append(names, name)
			params[name] = p
		}
		var known []string
		if rt.params != nil {
			known = rt.params.names()
		}
		sort.Strings(names)
		known = slices.Sorted(slices.Values(known))
		if !slices.Equal(names, known) {
			t.Errorf("%s: documented parameters\n %v\nparser knows\n %v", rt.path, names, known)
		}

		responses := op["responses"].(map[string]any)
		if _, ok := responses["200"]; !ok {
			t.Errorf("%s: no 200 response documented", rt.path)
		}
		if len(known) > 0 {
			if _, ok := responses["400"]; !ok {
				t.Errorf("%s: takes parameters but documents no 400", rt.path)
			}
		}

		for name, p := range params {
			values := docValues(t, doc, p)
			if len(values) == 0 {
				t.Errorf("%s: parameter %s has no example", rt.path, name)
			}
			for _, v := range values {
				q := url.Values{name: {v}}
				if code, body := call(s, rt.path, q); code != http.StatusOK {
					t.Errorf("%s?%s: documented value refused: %d %s", rt.path, q.Encode(), code, body)
				}
			}
		}
		// The parser is strict, so "accepted" above means something; the
		// flow list ignores unknown parameters, as Netmaker's does, but not
		// bad values of documented ones.
		if rt.params != nil {
			want := http.StatusBadRequest
			if rt.path == "/api/v1/flows" {
				want = http.StatusOK
			}
			if code, _ := call(s, rt.path, url.Values{"no_such_parameter": {"1"}}); code != want {
				t.Errorf("%s: an unknown parameter got %d, want %d", rt.path, code, want)
			}
		}
	}
}

// docValues are the values the document shows for a parameter: its example
// and every value of its enum (or of its items' enum).
func docValues(t *testing.T, doc map[string]any, p map[string]any) []string {
	var out []string
	if ex, ok := p["example"]; ok {
		out = append(out, fmt.Sprint(ex))
	}
	schema := resolve(t, doc, p["schema"])
	if items, ok := schema["items"]; ok {
		schema = resolve(t, doc, items)
	}
	for _, e := range asSlice(schema["enum"]) {
		out = append(out, fmt.Sprint(e))
	}
	if d, ok := schema["default"]; ok {
		out = append(out, fmt.Sprint(d))
	}
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// call runs one request; the stream is called with its context already
// cancelled, so that it answers its headers and ends.
func call(s *Server, path string, q url.Values) (int, string) {
	ctx, cancel := context.WithCancel(context.Background())
	if path != "/api/v1/flows/stream" {
		defer cancel()
	} else {
		cancel()
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, path+"?"+q.Encode(), nil))
	return rec.Code, rec.Body.String()
}

// The document says what Access does: a bearer scheme required everywhere
// but on the open paths, 401 documented wherever a token is needed, 403
// wherever a network can be asked for; and the documented refusals are the
// real ones.
func TestOpenAPISecurity(t *testing.T) {
	doc := loadDoc(t)
	scheme := resolve(t, doc, doc["components"].(map[string]any)["securitySchemes"].(map[string]any)["bearer"])
	if scheme["type"] != "http" || scheme["scheme"] != "bearer" {
		t.Errorf("bearer scheme: %v", scheme)
	}
	if sec := asSlice(doc["security"]); len(sec) != 1 || sec[0].(map[string]any)["bearer"] == nil {
		t.Errorf("top-level security: %v", doc["security"])
	}
	s := testServer()
	paths := doc["paths"].(map[string]any)
	for _, rt := range s.routes {
		op := resolve(t, doc, paths[rt.path].(map[string]any)[strings.ToLower(rt.method)])
		responses := op["responses"].(map[string]any)
		sec, overrides := op["security"]
		open := overrides && len(asSlice(sec)) == 0
		if open != openPath(rt.path) {
			t.Errorf("%s: documented open %v, Access open %v", rt.path, open, openPath(rt.path))
		}
		if _, ok := responses["401"]; ok == open {
			t.Errorf("%s: 401 documented %v, open %v", rt.path, ok, open)
		}
		scoped := rt.params != nil && slices.Contains(rt.params.names(), "network_id")
		if _, ok := responses["403"]; ok != (scoped || adminPath(rt.path)) {
			t.Errorf("%s: 403 documented %v, takes network_id %v, admin only %v", rt.path, ok, scoped, adminPath(rt.path))
		}
	}
	rs := resolve(t, doc, doc["components"].(map[string]any)["responses"])
	for name, want := range map[string]string{"Unauthorized": msgNoToken} {
		ex := resolve(t, doc, rs[name])["content"].(map[string]any)["application/json"].(map[string]any)["example"].(map[string]any)
		if ex["Message"] != want {
			t.Errorf("%s example %q, want %q", name, ex["Message"], want)
		}
	}
}
