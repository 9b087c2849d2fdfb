package metrics

import (
	"net/http"
	"strconv"
	"time"
)

// InstrumentHTTP counts and times every request h answers by route: the
// pattern of the http.ServeMux that served it (read from r.Pattern after h
// returns, so muxes nested inside h count), "unmatched" when no pattern
// matched (404, 405). Never the raw path: its values are unbounded.
func (c *Collector) InstrumentHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		c.HTTPRequests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		c.HTTPDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code. Flushing goes through to the
// real writer; Unwrap lets http.ResponseController reach its other methods.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController.Flush calls: the live tail
// learns from its error that the client is gone.
func (w *statusWriter) FlushError() error {
	w.wrote = true
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush is for handlers that assert http.Flusher.
func (w *statusWriter) Flush() { w.FlushError() }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
