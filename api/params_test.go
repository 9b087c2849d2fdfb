package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

func TestFlowsParamsMapToFilter(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	t1 := time.Date(2026, 11, 24, 11, 30, 0, 0, time.UTC)
	defPage := flowlog.Page{Number: 1, PerPage: 100}
	P := flowlog.ParticipantNode
	U := flowlog.ParticipantUser
	X := flowlog.ParticipantExtClient
	E := flowlog.ParticipantEgressRoute
	Ext := flowlog.ParticipantExternal
	pfx := netip.MustParsePrefix

	tests := []struct {
		name   string
		query  string
		filter flowlog.Filter
		page   flowlog.Page
	}{
		{"defaults", "", flowlog.Filter{State: flowlog.StateAll}, defPage},
		{"blank values mean absent", "network_id=&from=&page=&per_page=&src_type=&state=",
			flowlog.Filter{}, defPage},
		{"network_id", "network_id=net-1", flowlog.Filter{NetworkID: "net-1"}, defPage},
		{"from", "from=2026-11-24T10:00:00Z", flowlog.Filter{From: t0}, defPage},
		{"to is inclusive", "to=2026-11-24T11:30:00Z", flowlog.Filter{To: t1.Add(time.Millisecond)}, defPage},
		{"from and to", "from=2026-11-24T10:00:00Z&to=2026-11-24T11:30:00Z",
			flowlog.Filter{From: t0, To: t1.Add(time.Millisecond)}, defPage},
		{"from equal to: that millisecond", "from=2026-11-24T10:00:00Z&to=2026-11-24T10:00:00.0005Z",
			flowlog.Filter{From: t0, To: t0.Add(time.Millisecond)}, defPage},
		{"from with offset is made UTC", "from=2026-11-24T12:00:00%2B02:00",
			flowlog.Filter{From: t0}, defPage},
		{"from RFC3339Nano", "from=2026-11-24T10:00:00.123456789Z",
			flowlog.Filter{From: t0.Add(123456789)}, defPage},
		{"src_type", "src_type=node", flowlog.Filter{SrcTypes: []flowlog.ParticipantType{P}}, defPage},
		{"src_type repeated", "src_type=node&src_type=user",
			flowlog.Filter{SrcTypes: []flowlog.ParticipantType{P, U}}, defPage},
		{"src_type comma", "src_type=extclient,egress_route,external",
			flowlog.Filter{SrcTypes: []flowlog.ParticipantType{X, E, Ext}}, defPage},
		{"src_type mixed, spaces, duplicates, trailing comma", "src_type=node,%20user,&src_type=node",
			flowlog.Filter{SrcTypes: []flowlog.ParticipantType{P, U}}, defPage},
		{"dst_type", "dst_type=user,external", flowlog.Filter{DstTypes: []flowlog.ParticipantType{U, Ext}}, defPage},
		{"dst_type repeated", "dst_type=egress_route&dst_type=node",
			flowlog.Filter{DstTypes: []flowlog.ParticipantType{E, P}}, defPage},
		{"src_entity_id", "src_entity_id=node-a", flowlog.Filter{SrcEntityID: "node-a"}, defPage},
		{"dst_entity_id", "dst_entity_id=alice", flowlog.Filter{DstEntityID: "alice"}, defPage},
		{"protocol number", "protocol=6", flowlog.Filter{Protocols: []uint8{6}}, defPage},
		{"protocol names", "protocol=tcp,udp,icmp,icmpv6", flowlog.Filter{Protocols: []uint8{6, 17, 1, 58}}, defPage},
		{"protocol repeated, case, bounds", "protocol=TCP&protocol=0&protocol=255",
			flowlog.Filter{Protocols: []uint8{6, 0, 255}}, defPage},
		{"node_id is a node or a host", "node_id=host-7", flowlog.Filter{Node: "host-7"}, defPage},
		{"username", "username=alice", flowlog.Filter{Username: "alice"}, defPage},
		{"username with other filters", "username=alice&network_id=n&protocol=udp&node_id=h",
			flowlog.Filter{Username: "alice", NetworkID: "n", Protocols: []uint8{17}, Node: "h"}, defPage},
		{"page", "page=3", flowlog.Filter{}, flowlog.Page{Number: 3, PerPage: 100}},
		{"per_page", "per_page=25", flowlog.Filter{}, flowlog.Page{Number: 1, PerPage: 25}},
		{"per_page bounds", "page=2&per_page=1000", flowlog.Filter{}, flowlog.Page{Number: 2, PerPage: 1000}},
		{"per_page 1", "per_page=1", flowlog.Filter{}, flowlog.Page{Number: 1, PerPage: 1}},
		// Netmaker's parameters, as Netmaker's controller reads them.
		{"per_page clamped", "per_page=5000", flowlog.Filter{}, flowlog.Page{Number: 1, PerPage: 1000}},
		{"per_page 0 defaulted", "per_page=0", flowlog.Filter{}, defPage},
		{"per_page negative defaulted", "per_page=-3", flowlog.Filter{}, defPage},
		{"per_page not a number defaulted", "per_page=abc", flowlog.Filter{}, defPage},
		{"page 0 is 1", "page=0", flowlog.Filter{}, defPage},
		{"page negative is 1", "page=-2", flowlog.Filter{}, defPage},
		{"page not a number is 1", "page=x", flowlog.Filter{}, defPage},
		{"page huge is bounded", "page=99999999999", flowlog.Filter{}, flowlog.Page{Number: 2147483647, PerPage: 100}},
		{"unknown parameters ignored", "_=1764000000&netwrok_id=n1&network_id=n2", flowlog.Filter{NetworkID: "n2"}, defPage},
		{"first of repeated values", "network_id=a&network_id=b&node_id=x&node_id=y", flowlog.Filter{NetworkID: "a", Node: "x"}, defPage},
		{"state all", "state=all", flowlog.Filter{State: flowlog.StateAll}, defPage},
		{"state active", "state=active", flowlog.Filter{State: flowlog.StateActive}, defPage},
		{"state finished", "state=finished", flowlog.Filter{State: flowlog.StateFinished}, defPage},
		{"ip address v4", "ip=10.10.0.7", flowlog.Filter{IP: pfx("10.10.0.7/32")}, defPage},
		{"ip address v6", "ip=fd00::1", flowlog.Filter{IP: pfx("fd00::1/128")}, defPage},
		{"ip mapped address is v4", "ip=::ffff:10.10.0.7", flowlog.Filter{IP: pfx("10.10.0.7/32")}, defPage},
		{"ip prefix", "ip=10.10.0.0/16", flowlog.Filter{IP: pfx("10.10.0.0/16")}, defPage},
		{"ip prefix host bits cleared", "ip=10.10.3.4/16", flowlog.Filter{IP: pfx("10.10.0.0/16")}, defPage},
		{"ip mapped prefix is v4", "ip=::ffff:10.0.0.0/104", flowlog.Filter{IP: pfx("10.0.0.0/8")}, defPage},
		{"ip v6 prefix", "ip=fd00::/64", flowlog.Filter{IP: pfx("fd00::/64")}, defPage},
		{"ip everything", "ip=0.0.0.0/0", flowlog.Filter{IP: pfx("0.0.0.0/0")}, defPage},
		{"port", "port=443", flowlog.Filter{Port: 443}, defPage},
		{"port bounds", "port=65535", flowlog.Filter{Port: 65535}, defPage},
		{"port 1", "port=1", flowlog.Filter{Port: 1}, defPage},
		{"direction ingress", "direction=ingress", flowlog.Filter{Direction: flowlog.DirIngress}, defPage},
		{"direction egress", "direction=egress", flowlog.Filter{Direction: flowlog.DirEgress}, defPage},
		{"participant", "participant=db-1", flowlog.Filter{Participant: "db-1"}, defPage},
		{"participant trimmed, with username", "participant=%20db%201%20&username=alice",
			flowlog.Filter{Participant: "db 1", Username: "alice"}, defPage},
		{"cursor", "cursor=MTc5NTUxNDQwMDAwMDpmLTE", flowlog.Filter{},
			flowlog.Page{Number: 1, PerPage: 100, After: &flowlog.Cursor{Start: t0, FlowID: "f-1"}}},
		{"cursor padded, per_page", "cursor=MTc5NTUxNDQwMDAwMDpmLTE%3D&per_page=10", flowlog.Filter{},
			flowlog.Page{Number: 1, PerPage: 10, After: &flowlog.Cursor{Start: t0, FlowID: "f-1"}}},
		{"cursor with blank page", "cursor=MTc5NTUxNDQwMDAwMDpmLTE&page=", flowlog.Filter{},
			flowlog.Page{Number: 1, PerPage: 100, After: &flowlog.Cursor{Start: t0, FlowID: "f-1"}}},
		{"cursor: flow id with a colon", "cursor=" + EncodeCursor(flowlog.Cursor{Start: t1, FlowID: "a:b"}), flowlog.Filter{},
			flowlog.Page{Number: 1, PerPage: 100, After: &flowlog.Cursor{Start: t1, FlowID: "a:b"}}},
		{"everything", "network_id=n1&from=2026-11-24T10:00:00Z&to=2026-11-24T11:30:00Z" +
			"&src_type=node&dst_type=user,extclient&src_entity_id=s&dst_entity_id=d&protocol=udp" +
			"&node_id=h1&page=4&per_page=50&state=active&ip=fd00::/8&port=53&direction=ingress&participant=p",
			flowlog.Filter{NetworkID: "n1", From: t0, To: t1.Add(time.Millisecond),
				SrcTypes: []flowlog.ParticipantType{P}, DstTypes: []flowlog.ParticipantType{U, X},
				SrcEntityID: "s", DstEntityID: "d", Protocols: []uint8{17}, Node: "h1",
				State: flowlog.StateActive, IP: pfx("fd00::/8"), Port: 53, Direction: flowlog.DirIngress, Participant: "p"},
			flowlog.Page{Number: 4, PerPage: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{}
			rec := serve(t, New(Deps{Store: st, Log: discardLog()}), "/api/v1/flows?"+tt.query)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, body %s", rec.Code, rec.Body)
			}
			if st.flowsCalls != 1 {
				t.Fatalf("store.Flows called %d times, want 1", st.flowsCalls)
			}
			if !reflect.DeepEqual(st.filter, tt.filter) {
				t.Errorf("filter\n got %+v\nwant %+v", st.filter, tt.filter)
			}
			if !reflect.DeepEqual(st.page, tt.page) {
				t.Errorf("page got %+v, want %+v", st.page, tt.page)
			}
		})
	}
}

func TestFlowsParamsBadValues(t *testing.T) {
	const types = "node, user, extclient, egress_route, external"
	tests := []struct {
		query, message string
	}{
		{"network_id=%0A", `invalid network_id "\n": only whitespace (leave it empty or out to mean any)`},
		{"node_id=%20%09", `invalid node_id " \t": only whitespace (leave it empty or out to mean any)`},
		{"protocol=tcp&protocol=%20", `invalid protocol " ": only whitespace (leave it empty or out to mean any)`},
		{"observations=some", `invalid observations "some": must be one of one, all`},
		{"from=yesterday", `invalid from "yesterday": must be an RFC 3339 time such as 2026-11-24T10:00:00Z`},
		{"from=2026-11-24", `invalid from "2026-11-24": must be an RFC 3339 time such as 2026-11-24T10:00:00Z`},
		{"to=1764000000", `invalid to "1764000000": must be an RFC 3339 time such as 2026-11-24T10:00:00Z`},
		{"src_type=host", `invalid src_type "host": must be one of ` + types},
		{"src_type=node,Node", `invalid src_type "Node": must be one of ` + types},
		{"dst_type=user&dst_type=nobody", `invalid dst_type "nobody": must be one of ` + types},
		{"protocol=256", `invalid protocol "256": must be a number 0..255 or one of icmp, tcp, udp, gre, esp, ah, icmpv6, sctp`},
		{"protocol=-1", `invalid protocol "-1": must be a number 0..255 or one of icmp, tcp, udp, gre, esp, ah, icmpv6, sctp`},
		{"protocol=tcp,quic", `invalid protocol "quic": must be a number 0..255 or one of icmp, tcp, udp, gre, esp, ah, icmpv6, sctp`},
		{"username=alice&src_type=node", `invalid username "alice": cannot be combined with src_type`},
		{"username=alice&dst_type=user", `invalid username "alice": cannot be combined with dst_type`},
		{"username=alice&src_entity_id=x", `invalid username "alice": cannot be combined with src_entity_id`},
		{"username=alice&dst_entity_id=x", `invalid username "alice": cannot be combined with dst_entity_id`},
		{"state=open", `invalid state "open": must be one of all, active, finished, stale`},
		{"network_id=%zz", `invalid query string: invalid URL escape "%zz"`},
		{"ip=10.0.0", `invalid ip "10.0.0": must be an IP address or a CIDR prefix such as 10.0.0.0/8 or fd00::/64`},
		{"ip=10.0.0.0/33", `invalid ip "10.0.0.0/33": must be an IP address or a CIDR prefix such as 10.0.0.0/8 or fd00::/64`},
		{"ip=fe80::1%25eth0", `invalid ip "fe80::1%eth0": must be an IP address or a CIDR prefix such as 10.0.0.0/8 or fd00::/64`},
		{"ip=db-1", `invalid ip "db-1": must be an IP address or a CIDR prefix such as 10.0.0.0/8 or fd00::/64`},
		{"ip=10.0.0.1&ip=10.0.0.2", "invalid ip: given 2 times, at most once allowed"},
		{"port=0", `invalid port "0": must be between 1 and 65535`},
		{"port=65536", `invalid port "65536": must be between 1 and 65535`},
		{"port=https", `invalid port "https": must be between 1 and 65535`},
		{"direction=in", `invalid direction "in": must be one of ingress, egress`},
		{"direction=Egress", `invalid direction "Egress": must be one of ingress, egress`},
		{"participant=a&participant=b", "invalid participant: given 2 times, at most once allowed"},
		{"cursor=MTc5NTUxNDQwMDAwMDpmLTE&page=2",
			"invalid cursor: cannot be combined with page (a cursor already says where the page starts)"},
		{"cursor=!!", `invalid cursor "!!": not a cursor from an answer's Next`},
		{"cursor=" + b64("1795514400000"), `invalid cursor "MTc5NTUxNDQwMDAwMA": not a cursor from an answer's Next`},
		{"cursor=" + b64("1795514400000:"), `invalid cursor "MTc5NTUxNDQwMDAwMDo": not a cursor from an answer's Next`},
		{"cursor=" + b64("x:f-1"), `invalid cursor "eDpmLTE": not a cursor from an answer's Next`},
		{"cursor=" + b64("+1:f-1"), `invalid cursor "KzE6Zi0x": not a cursor from an answer's Next`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			st := &fakeStore{}
			rec := serve(t, New(Deps{Store: st, Log: discardLog()}), "/api/v1/flows?"+tt.query)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			want := map[string]any{"Code": float64(400), "Message": tt.message, "Response": nil}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body\n got %v\nwant %v", got, want)
			}
			if st.flowsCalls != 0 {
				t.Errorf("store.Flows called %d times on a bad request", st.flowsCalls)
			}
		})
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []flowlog.Cursor{
		{Start: time.Date(2026, 11, 24, 10, 0, 0, 123_000_000, time.UTC), FlowID: "7f1c0e2a-00000042-1795514400"},
		{Start: time.Unix(0, 0).UTC(), FlowID: "x"},
		{Start: time.UnixMilli(-5).UTC(), FlowID: "neg:ative/id?&="},
	} {
		s := EncodeCursor(c)
		if strings.ContainsAny(s, "+/=") {
			t.Errorf("cursor %q is not URL-safe", s)
		}
		got, err := DecodeCursor(s)
		if err != nil || !got.Start.Equal(c.Start) || got.FlowID != c.FlowID || got.Start.Location() != time.UTC {
			t.Errorf("round trip of %+v: got %+v, %v", c, got, err)
		}
	}
	// Sub-millisecond precision is not kept: the store has milliseconds.
	c := flowlog.Cursor{Start: time.Date(2026, 11, 24, 10, 0, 0, 123_456_789, time.UTC), FlowID: "f"}
	if got, _ := DecodeCursor(EncodeCursor(c)); !got.Start.Equal(c.Start.Truncate(time.Millisecond)) {
		t.Errorf("got %v", got.Start)
	}
}

// from after to is an empty answer, as in Netmaker, without a query.
func TestFlowsFromAfterToIsEmpty(t *testing.T) {
	st := &fakeStore{flows: []flowlog.Flow{{}}}
	rec := serve(t, New(Deps{Store: st, Log: discardLog()}), "/api/v1/flows?from=2026-11-24T11:00:00Z&to=2026-11-24T10:00:00Z")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"Response":[]`) || st.flowsCalls != 0 {
		t.Errorf("%d %s (store asked %d times)", rec.Code, rec.Body, st.flowsCalls)
	}
}
