package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNotBuiltSaysHowToBuild(t *testing.T) {
	h := newHandler(fstest.MapFS{"README.txt": {Data: []byte("placeholder")}})
	r := get(t, h, "GET", "/", nil)
	if r.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(body(t, r)) != NotBuilt {
		t.Fatalf("/ without a build: %d", r.StatusCode)
	}
	if r := get(t, h, "GET", "/README.txt", nil); r.StatusCode != 404 {
		t.Fatalf("/README.txt: %d, want 404", r.StatusCode)
	}
}

func TestServesPageAndAssets(t *testing.T) {
	js := strings.Repeat("console.log('flowlog');\n", 200)
	h := newHandler(fstest.MapFS{
		"README.txt":          {Data: []byte("placeholder")},
		"index.html":          {Data: []byte(`<!doctype html><script type="module" src="./assets/index-abc.js"></script>`)},
		"assets/index-abc.js": {Data: []byte(js)},
	})

	r := get(t, h, "GET", "/", nil)
	if r.StatusCode != 200 || !strings.Contains(body(t, r), "index-abc.js") {
		t.Fatalf("/: %d", r.StatusCode)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("/ Cache-Control %q", cc)
	}
	if !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("/ without CSP")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("/ Content-Type %q", ct)
	}

	r = get(t, h, "GET", "/assets/index-abc.js", nil)
	if r.StatusCode != 200 || body(t, r) != js {
		t.Fatalf("asset: %d", r.StatusCode)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("asset Cache-Control %q", cc)
	}
	if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("asset Content-Type %q", ct)
	}
	etag := r.Header.Get("ETag")
	if r := get(t, h, "GET", "/assets/index-abc.js", map[string]string{"If-None-Match": etag}); r.StatusCode != 304 {
		t.Errorf("If-None-Match: %d, want 304", r.StatusCode)
	}

	r = get(t, h, "GET", "/assets/index-abc.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("ETag") == etag {
		t.Fatalf("gzip: encoding %q etag %q", r.Header.Get("Content-Encoding"), r.Header.Get("ETag"))
	}
	zr, err := gzip.NewReader(bytes.NewReader([]byte(body(t, r))))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); string(b) != js {
		t.Fatal("gzip body differs")
	}

	for _, p := range []string{"/api/v1/flowz", "/assets/nope.js", "/README.txt", "/../web.go"} {
		if r := get(t, h, "GET", p, nil); r.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
	if r := get(t, h, "POST", "/", nil); r.StatusCode != 405 {
		t.Errorf("POST /: %d, want 405", r.StatusCode)
	}
	if r := get(t, h, "HEAD", "/", nil); r.StatusCode != 200 {
		t.Errorf("HEAD /: %d", r.StatusCode)
	}
}

// The embedded directory always holds at least the committed placeholder.
func TestEmbedsDist(t *testing.T) {
	if _, err := dist.ReadFile("dist/README.txt"); err != nil {
		t.Fatal(err)
	}
	r := get(t, Handler(), "GET", "/", nil)
	if Built() != (r.StatusCode == 200) {
		t.Fatalf("Built()=%v but / answers %d", Built(), r.StatusCode)
	}
}
