package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/api/client"
	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/internal/wiretest"
)

// The hosts view names what each host runs: a stock agent of the v1.4
// numbering and one of v1.5 (stock netclients send grpc-go's user-agent),
// each with its wire generation, in the API and in `flowlog hosts`.
func TestHostsShowStockAgentsWithTheirGeneration(t *testing.T) {
	needBinary(t)
	c := serve(t, t.TempDir())
	const network = "agents-net"
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i, gen := range []string{wiretest.GenLegacy, wiretest.GenCurrent} {
		exp := &stockExporter{addr: c.grpc, gen: gen}
		if err := exp.connect(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exp.conn.Close() })
		ids, starts, destroys := stockFlows(gen, network, fmt.Sprintf("stock-%d", i), 3, t0)
		for range 2 { // two flushes: still one sighting
			exp.flush(ids, starts)
		}
		exp.flush(ids, destroys)
		if len(exp.delivered) != 3 {
			t.Fatalf("%s agent: %d of 3 batches delivered", gen, len(exp.delivered))
		}
	}
	hosts := func() map[string]string {
		resp, err := http.Get(c.http + "/api/v1/hosts?network_id=" + network)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct{ Response []client.Host }
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, h := range r.Response {
			var l []string
			for _, a := range h.Agents {
				l = append(l, a.Generation+" "+strings.Fields(a.Agent + " -")[0])
			}
			out[h.HostID] = strings.Join(l, ", ")
		}
		return out
	}
	testutil.WaitFor(t, 0, "both stock agents with their generation in /api/v1/hosts", func() bool {
		h := hosts()
		return strings.HasPrefix(h["stock-0"], "v1.4 grpc-go/") && strings.HasPrefix(h["stock-1"], "v1.5+ grpc-go/")
	})
	if h := hosts(); strings.Contains(h["stock-0"], ",") || strings.Contains(h["stock-1"], ",") {
		t.Errorf("each host speaks one generation: %v", h)
	}
	code, out := exitOf(t, "hosts", "--server", c.http, "--network", network, "--color", "never")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasSuffix(lines[0], "AGENT") ||
		!regexp.MustCompile(`^stock-0\s.*\sv1\.4 grpc-go/\S+$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^stock-1\s.*\sv1\.5\+ grpc-go/\S+$`).MatchString(lines[2]) {
		t.Errorf("flowlog hosts: exit %d\n%s", code, out)
	}
}
