package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/internal/testutil"
)

// answer is a fake collector API answering every request with code and body.
func answer(t *testing.T, code int, body any) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// exitOf runs the binary and returns its exit status and output.
func exitOf(t *testing.T, args ...string) (int, string) {
	t.Helper()
	needBinary(t)
	out, err := exec.Command(binary, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// The CLI's documented statuses survive main: it exits with the code the
// command's error carries.
func TestCLIExitCodesOfBinary(t *testing.T) {
	needBinary(t)
	bad := answer(t, 400, map[string]any{"Code": 400, "Message": "invalid state"})
	empty := answer(t, 200, map[string]any{"Code": 200, "Message": "ok", "Response": []any{}, "Next": ""})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"flows", "--server", empty.URL}, 0},
		{[]string{"flows", "--server", empty.URL, "--port", "x"}, 1},
		{[]string{"flows", "--bogus-flag"}, 1},
		{[]string{"flows", "--server", bad.URL}, 2},
		{[]string{"top", "--server", down.URL}, 3},
		{[]string{"flows", "--server", empty.URL, "--fail-empty"}, 4},
	} {
		if code, out := exitOf(t, tc.args...); code != tc.code {
			t.Errorf("%q: exit %d, want %d\n%s", tc.args, code, tc.code, out)
		}
	}
}

// `flowlog --version` names the build.
func TestVersionFlag(t *testing.T) {
	needBinary(t)
	code, out := exitOf(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "flowlog ") {
		t.Fatalf("--version: exit %d, %q", code, out)
	}
}

// A collector whose listen address is taken exits non-zero, at once: a
// supervisor's Restart=on-failure must see the failure.
func TestServeExitsNonZeroWhenTheAddressIsTaken(t *testing.T) {
	needBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, flag := range []string{"--grpc-addr", "--http-addr"} {
		args := []string{"serve", "--data", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", flag, ln.Addr().String()}
		// No engine is needed: the listeners bind before the store opens,
		// and an address in use ends the run before it would load.
		done := make(chan struct{})
		var code int
		var out string
		go func() { code, out = exitOf(t, args...); close(done) }()
		select {
		case <-done:
		case <-time.After(testutil.DefaultWait):
			t.Fatalf("%s in use: still running after %s", flag, testutil.DefaultWait)
		}
		if code == 0 || !strings.Contains(out, "address already in use") {
			t.Errorf("%s in use: exit %d\n%s", flag, code, out)
		}
	}
}
