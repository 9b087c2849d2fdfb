package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// limitedServer serves h behind l on loopback.
func limitedServer(t *testing.T, l HTTPLimits, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	l.Apply(srv.Config)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// rawRequest writes req on a new connection and returns the status line of
// the answer, or the read error.
func rawRequest(t *testing.T, addr, req string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestHTTPLimitsRefuseBodies(t *testing.T) {
	srv := limitedServer(t, HTTPLimits{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		name, req, want string
	}{
		{"GET", "GET /api/v1/flows HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"GET, empty body", "GET /api/v1/flows HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 200 OK"},
		{"GET, empty chunked body", "GET /api/v1/flows HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 200 OK"},
		{"GET with a body", "GET /api/v1/flows HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 413 Request Entity Too Large"},
		{"POST with a body", "POST /api/v1/flows HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 413 Request Entity Too Large"},
		{"chunked body", "GET /api/v1/flows HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "HTTP/1.1 413 Request Entity Too Large"},
	} {
		if got, err := rawRequest(t, addr, tc.req); got != tc.want {
			t.Errorf("%s: got %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
	resp, err := http.Post(srv.URL+"/api/v1/flows", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e errorResponse
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code != 413 || e.Message != bodyRefused {
		t.Fatalf("413 body: %+v %v", e, err)
	}
}

func TestHTTPLimitsHeaders(t *testing.T) {
	srv := limitedServer(t, HTTPLimits{MaxHeaderBytes: 4 << 10, ReadHeaderTimeout: 300 * time.Millisecond},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	addr := srv.Listener.Addr().String()
	big := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"
	if got, _ := rawRequest(t, addr, big); got != "HTTP/1.1 431 Request Header Fields Too Large" {
		t.Errorf("16 KiB header over a 4 KiB limit: got %q", got)
	}
	// A client sending its headers slowly is cut off.
	start := time.Now()
	got, err := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n")
	if d := time.Since(start); got != "" || err == nil || d > 5*time.Second {
		t.Errorf("unfinished headers: got %q %v after %v, want the connection closed after ~300ms", got, err, d)
	}
}

// A non-streaming answer gets WriteTimeout: its context ends then and a
// client still waiting gets no answer; the live tail is exempt.
func TestHTTPLimitsWriteTimeoutSparesTheStream(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ctxEnded := make(chan time.Duration, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
			ctxEnded <- time.Since(start)
		case <-time.After(5 * time.Second):
			ctxEnded <- -1
		}
		io.WriteString(w, "too late")
	})
	mux.HandleFunc("GET /quick", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /api/v1/flows/stream", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := range 8 { // 8 x 100ms: well past the write timeout
			fmt.Fprintf(w, "tick %d\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	srv := limitedServer(t, HTTPLimits{WriteTimeout: timeout}, mux)

	if _, err := http.Get(srv.URL + "/slow"); err == nil {
		t.Error("slow answer past the write timeout: want the client to get an error, got an answer")
	}
	if d := <-ctxEnded; d < 0 || d > timeout+time.Second {
		t.Fatalf("slow handler's context ended after %v, want ~%v", d, timeout)
	}

	// The stream outlives the write timeout, also on a connection that
	// served a request with a deadline before.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	resp, err := client.Get(srv.URL + "/quick")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = client.Get(srv.URL + "/api/v1/flows/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || strings.Count(string(body), "tick") != 8 {
		t.Fatalf("stream past the write timeout: got %q %v, want 8 ticks", body, err)
	}
}

// The store's refusals of a costly read say what to do, with the right
// status: a page too deep is the request's fault (400, use the cursor), a
// query stopped by the engine's limits is not only (503, narrow or retry).
func TestStoreLimitsAnsweredClearly(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w: page 2000000 of 1000 starts 1999999000 flows deep, beyond the 100000 that offset paging reaches: use cursor paging", flowlog.ErrPageTooDeep), 400},
		{fmt.Errorf("%w: the query was stopped: Code: 159. Timeout exceeded; narrow the time range or the filters, or retry later", flowlog.ErrQueryLimit), 503},
	} {
		s := New(Deps{Store: &fakeStore{err: c.err}, Log: discardLog()})
		rec := serve(t, s, "/api/v1/flows?page=2000000&per_page=1000")
		want := strings.SplitN(c.err.Error(), ": ", 2)[1][:20]
		if c.code == 503 {
			want = queryLimitMessage
		}
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%v: %d %s, want %d with the store's message", c.err, rec.Code, rec.Body, c.code)
		}
	}
}
