package metrics

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// Probe answers a /healthz or /readyz request: 200 {"status":"ok"} when
// err is nil, else 503 {"status":"unavailable","error":"<reason>"} (the
// reason is logged at debug level, probes come often).
func Probe(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	code, body := http.StatusOK, map[string]string{"status": "ok"}
	if err != nil {
		log.DebugContext(r.Context(), "not ready", "reason", err)
		code, body = http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()}
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
