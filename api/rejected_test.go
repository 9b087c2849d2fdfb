package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/auth"
)

type fakeRejected struct {
	list   []flowlog.Rejected
	filter flowlog.RejectedFilter
	page   flowlog.Page
}

func (f *fakeRejected) Rejected(_ context.Context, rf flowlog.RejectedFilter, p flowlog.Page) ([]flowlog.Rejected, error) {
	f.filter, f.page = rf, p
	return f.list, nil
}

func TestRejectedListing(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	rj := &fakeRejected{list: []flowlog.Rejected{{Received: t0, Peer: "10.0.0.9:4000", HostID: "h1", Index: 2,
		Reason: "fits neither wire generation: ...", Class: "bad_type", Event: `{"undecoded_base64":"CAE="}`}}}
	s := New(Deps{Store: &fakeStore{}, Rejected: rj, Log: discardLog()})

	code, body := call(s, RejectedPath, url.Values{"host_id": {"h1"}, "reason": {"bad_type"},
		"from": {"2026-11-29T00:00:00Z"}, "to": {"2026-11-29T03:00:00Z"}, "page": {"2"}, "per_page": {"5"}})
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	want := flowlog.RejectedFilter{HostID: "h1", Class: "bad_type", From: t0.Add(-3 * time.Hour), To: t0}
	if rj.filter != want || rj.page != (flowlog.Page{Number: 2, PerPage: 5}) {
		t.Errorf("asked %+v %+v, want %+v page 2 of 5", rj.filter, rj.page, want)
	}
	var resp struct {
		Code     int
		Response []map[string]any
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Code != 200 || len(resp.Response) != 1 {
		t.Fatalf("%s: %v", body, err)
	}
	row := resp.Response[0]
	ev, _ := row["event"].(map[string]any)
	if row["host_id"] != "h1" || row["reason_class"] != "bad_type" || row["received_at"] != "2026-11-29T03:00:00Z" ||
		row["index"] != 2.0 || row["peer"] != "10.0.0.9:4000" || ev["undecoded_base64"] != "CAE=" {
		t.Errorf("row %v", row)
	}

	// Our own endpoint: strict, naming the parameter.
	for q, msg := range map[string]string{
		"reason=nope":    `invalid reason "nope": must be one of missing_field`,
		"node_id=h1":     `unknown parameter "node_id"`,
		"from=yesterday": `invalid from "yesterday"`,
		"per_page=0":     `invalid per_page "0"`,
		"from=2026-11-29T03:00:00Z&to=2026-11-29T02:00:00Z": `invalid from "2026-11-29T03:00:00Z": must not be after to`,
	} {
		v, _ := url.ParseQuery(q)
		if code, body := call(s, RejectedPath, v); code != http.StatusBadRequest || !strings.Contains(body, strings.ReplaceAll(msg, `"`, `\"`)) {
			t.Errorf("%s: %d %s, want 400 with %q", q, code, body, msg)
		}
	}
}

// Only admins list rejected events; the open API (no readers) lists them.
func TestRejectedNeedsAnAdmin(t *testing.T) {
	rj := &fakeRejected{}
	api := New(Deps{Store: &fakeStore{}, Rejected: rj, Log: discardLog()})
	rs := testReaders(t)
	h := Access{Readers: func() *auth.Readers { return rs }, Log: discardLog()}.Handler(api)
	if rec := get(t, h, RejectedPath, "one-token"); rec.Code != http.StatusForbidden {
		t.Errorf("read-only reader: %d %s", rec.Code, rec.Body)
	}
	if rec := get(t, h, RejectedPath, "noc-token"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"Response":[]`) {
		t.Errorf("admin: %d %s", rec.Code, rec.Body)
	}
	if rec := get(t, Access{}.Handler(api), RejectedPath, ""); rec.Code != http.StatusOK {
		t.Errorf("open API: %d %s", rec.Code, rec.Body)
	}
}

// What a client builds with RejectedQuery is what the endpoint reads back.
func TestRejectedQueryRoundTrip(t *testing.T) {
	f := flowlog.RejectedFilter{HostID: "h 1", Class: "bad_ip", From: time.Date(2026, 11, 29, 1, 0, 0, 5e6, time.UTC),
		To: time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)}
	p := flowlog.Page{Number: 3, PerPage: 20}
	gf, gp, err := parseRejectedQuery(RejectedQuery(f, p))
	if err != nil || gf != f || gp != p {
		t.Fatalf("got %+v %+v %v", gf, gp, err)
	}
	row := RejectedRow{ReceivedAt: f.From, Peer: "10.0.0.9:4000", Index: 3, ReasonClass: "bad_ip", Reason: "src.ip \"x\" is not an IP address"}
	if got := strings.Join(RejectedCells(&row, time.UTC), "|"); got != `2026-11-29 01:00:00.005|-|10.0.0.9:4000|3|bad_ip|src.ip "x" is not an IP address` {
		t.Errorf("cells %s", got)
	}
}
