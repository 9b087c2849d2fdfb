package testutil

import (
	"io"
	"net/http"
	"regexp"
	"testing"
)

// HTTPText GETs url and returns its status and body.
func HTTPText(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// WantSamples wants each "name{labels} value" line in a Prometheus
// exposition text.
func WantSamples(t testing.TB, text string, samples ...string) {
	t.Helper()
	for _, s := range samples {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s) + `$`).MatchString(text) {
			t.Errorf("/metrics lacks %q", s)
		}
	}
}
