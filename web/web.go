// Package web embeds the collector's web page (built from this directory by
// `make web`: Vite, TypeScript, uPlot) and serves it.
//
// dist/ is the build output. Only dist/README.txt is committed, so that this
// package compiles before the first front-end build; such a binary answers
// `/` with "the web UI was not built: run make web".
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// NotBuilt is the answer to `/` when the binary was built without the page.
const NotBuilt = "the web UI was not built: run make web"

// csp allows only the page's own origin: scripts, styles and API calls are
// same-origin, nothing is fetched from the internet. Inline styles are
// allowed because the chart and graph libraries size their elements with
// them.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the page: index.html at `/` (revalidated on every load),
// the content-hashed files under /assets/ (cached for a year), gzip when the
// client accepts it. Everything else is 404, so a mistyped API path is not
// answered with HTML. Mount it as the fallback of the API's mux.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees dist exists
	}
	return newHandler(sub)
}

// Built reports whether the binary carries the built page.
func Built() bool {
	_, err := fs.Stat(dist, "dist/index.html")
	return err == nil
}

type asset struct {
	body, gz []byte
	ctype    string
	etag     string
}

type handler struct {
	fsys   fs.FS
	once   sync.Once
	assets map[string]*asset // by URL path: "/" and "/assets/..."
}

func newHandler(fsys fs.FS) *handler { return &handler{fsys: fsys} }

// load reads and compresses the files once, at the first request, so that
// commands other than serve pay nothing.
func (h *handler) load() {
	h.assets = map[string]*asset{}
	add := func(urlPath, name string) {
		body, err := fs.ReadFile(h.fsys, name)
		if err != nil {
			return
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		a.ctype = mime.TypeByExtension(path.Ext(name))
		if a.ctype == "" {
			a.ctype = http.DetectContentType(body)
		}
		if compressible(a.ctype) && len(body) > 1024 {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			zw.Write(body)
			zw.Close()
			if b.Len() < len(body) {
				a.gz = b.Bytes()
			}
		}
		h.assets[urlPath] = a
	}
	add("/", "index.html")
	fs.WalkDir(h.fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			add("/"+p, p)
		}
		return nil
	})
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.Contains(ctype, "javascript") ||
		strings.Contains(ctype, "json") || strings.Contains(ctype, "svg")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.once.Do(h.load)
	p := r.URL.Path
	if p == "/index.html" {
		p = "/"
	}
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	a, ok := h.assets[p]
	if !ok {
		if p == "/" {
			hdr.Set("Cache-Control", "no-store")
			http.Error(w, NotBuilt, http.StatusServiceUnavailable)
			return
		}
		http.NotFound(w, r)
		return
	}
	if p == "/" {
		// Revalidated on each load, so a new build's asset names are seen.
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("Content-Security-Policy", csp)
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("X-Frame-Options", "DENY")
	} else {
		// Vite names assets by content hash: a name never changes meaning.
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	hdr.Set("Content-Type", a.ctype)
	body, etag := a.body, a.etag
	if a.gz != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			hdr.Set("Content-Encoding", "gzip")
			body, etag = a.gz, strings.TrimSuffix(etag, `"`)+`-gz"`
		}
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			return strings.ReplaceAll(params, " ", "") != "q=0"
		}
	}
	return false
}
