package flowlog_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// baseEvent is a DESTROY from node db-1 (10.10.0.7, IPv4-mapped as the
// ingest keeps it) to user alice (fd00::8), egress, tcp 51000 → 5432.
func baseEvent() flowlog.Event {
	return flowlog.Event{
		Type: flowlog.EventDestroy, FlowID: "f1", HostID: "h1", HostName: "web-1", NetworkID: "mesh1",
		Protocol: 6, SrcPort: 51000, DstPort: 5432, Direction: flowlog.DirEgress,
		Src: flowlog.Participant{IP: netip.MustParseAddr("::ffff:10.10.0.7"), Type: flowlog.ParticipantNode,
			ID: "n-7", Name: "db-1"},
		Dst: flowlog.Participant{IP: netip.MustParseAddr("fd00::8"), Type: flowlog.ParticipantUser,
			ID: "u-alice", Name: "alice@example.com"},
		Start: t0.Add(500 * time.Microsecond), // stored as t0 (milliseconds)
		End:   t0.Add(time.Second),
	}
}

func TestFilterMatch(t *testing.T) {
	N, U, X, Ext := flowlog.ParticipantNode, flowlog.ParticipantUser, flowlog.ParticipantExtClient, flowlog.ParticipantExternal
	pfx := netip.MustParsePrefix
	tests := []struct {
		name   string
		filter flowlog.Filter
		edit   func(*flowlog.Event)
		want   bool
	}{
		{"zero filter matches everything", flowlog.Filter{}, nil, true},

		{"network equal", flowlog.Filter{NetworkID: "mesh1"}, nil, true},
		{"network other", flowlog.Filter{NetworkID: "mesh2"}, nil, false},
		{"networks scope holds it", flowlog.Filter{Networks: []string{"mesh2", "mesh1"}}, nil, true},
		{"networks scope without it", flowlog.Filter{Networks: []string{"mesh2"}}, nil, false},
		{"empty networks scope matches nothing", flowlog.Filter{Networks: []string{}}, nil, false},
		{"scope and network both hold", flowlog.Filter{NetworkID: "mesh1", Networks: []string{"mesh1"}}, nil, true},
		{"scope bounds the network asked", flowlog.Filter{NetworkID: "mesh1", Networks: []string{"mesh2"}}, nil, false},
		{"host equal", flowlog.Filter{HostID: "h1"}, nil, true},
		{"host is the id, not the name", flowlog.Filter{HostID: "web-1"}, nil, false},
		{"node: the reporting host", flowlog.Filter{Node: "h1"}, nil, true},
		{"node: the src node", flowlog.Filter{Node: "n-7"}, nil, true},
		{"node: the dst node", flowlog.Filter{Node: "n-7"}, func(e *flowlog.Event) { e.Src, e.Dst = e.Dst, e.Src }, true},
		{"node: a user with that id is no node", flowlog.Filter{Node: "u-alice"}, nil, false},
		{"node: the name does not count", flowlog.Filter{Node: "db-1"}, nil, false},
		{"src entity", flowlog.Filter{SrcEntityID: "n-7"}, nil, true},
		{"src entity is not the dst", flowlog.Filter{SrcEntityID: "u-alice"}, nil, false},
		{"src entity is the id, not the name", flowlog.Filter{SrcEntityID: "db-1"}, nil, false},
		{"dst entity", flowlog.Filter{DstEntityID: "u-alice"}, nil, true},
		{"dst entity other", flowlog.Filter{DstEntityID: "n-7"}, nil, false},

		{"from equal (ms) is inside", flowlog.Filter{From: t0}, nil, true},
		{"from sub-ms later is still inside: both cut to ms", flowlog.Filter{From: t0.Add(900 * time.Microsecond)}, nil, true},
		{"from 1ms later", flowlog.Filter{From: t0.Add(time.Millisecond)}, nil, false},
		{"to equal (ms) is outside", flowlog.Filter{To: t0}, nil, false},
		{"to 1ms later", flowlog.Filter{To: t0.Add(time.Millisecond)}, nil, true},
		{"range around", flowlog.Filter{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)}, nil, true},
		{"range before", flowlog.Filter{From: t0.Add(-time.Hour), To: t0.Add(-time.Minute)}, nil, false},
		{"time is the start, not the end", flowlog.Filter{From: t0.Add(time.Second)}, nil, false},
		{"from in another zone", flowlog.Filter{From: t0.In(time.FixedZone("X", 7200))}, nil, true},

		{"src type in list", flowlog.Filter{SrcTypes: []flowlog.ParticipantType{U, N}}, nil, true},
		{"src type not in list", flowlog.Filter{SrcTypes: []flowlog.ParticipantType{U, X}}, nil, false},
		{"dst type in list", flowlog.Filter{DstTypes: []flowlog.ParticipantType{U}}, nil, true},
		{"dst type not in list", flowlog.Filter{DstTypes: []flowlog.ParticipantType{Ext}}, nil, false},
		{"src and dst types", flowlog.Filter{SrcTypes: []flowlog.ParticipantType{N}, DstTypes: []flowlog.ParticipantType{U}}, nil, true},
		{"protocol in list", flowlog.Filter{Protocols: []uint8{17, 6}}, nil, true},
		{"protocol not in list", flowlog.Filter{Protocols: []uint8{17, 1}}, nil, false},

		{"username by id (dst)", flowlog.Filter{Username: "u-alice"}, nil, true},
		{"username by name (dst)", flowlog.Filter{Username: "alice@example.com"}, nil, true},
		{"username by name (src)", flowlog.Filter{Username: "alice@example.com"}, func(e *flowlog.Event) {
			e.Src, e.Dst = e.Dst, e.Src
		}, true},
		{"username other", flowlog.Filter{Username: "bob"}, nil, false},
		{"username needs type user", flowlog.Filter{Username: "db-1"}, nil, false},
		{"username: a node named like the user does not count", flowlog.Filter{Username: "u-alice"}, func(e *flowlog.Event) {
			e.Dst.Type = N
		}, false},

		{"state all", flowlog.Filter{State: flowlog.StateAll}, nil, true},
		{"state finished, DESTROY", flowlog.Filter{State: flowlog.StateFinished}, nil, true},
		{"state active, DESTROY", flowlog.Filter{State: flowlog.StateActive}, nil, false},
		{"state active, START", flowlog.Filter{State: flowlog.StateActive}, func(e *flowlog.Event) {
			e.Type, e.End = flowlog.EventStart, time.Time{}
		}, true},
		{"state finished, START", flowlog.Filter{State: flowlog.StateFinished}, func(e *flowlog.Event) {
			e.Type, e.End = flowlog.EventStart, time.Time{}
		}, false},

		{"ip /32 of the mapped src", flowlog.Filter{IP: pfx("10.10.0.7/32")}, nil, true},
		{"ip v4 prefix, mapped src", flowlog.Filter{IP: pfx("10.10.0.0/16")}, nil, true},
		{"ip v4 prefix outside", flowlog.Filter{IP: pfx("10.11.0.0/16")}, nil, false},
		{"ip mapped prefix, mapped src", flowlog.Filter{IP: pfx("::ffff:10.10.0.0/112")}, nil, true},
		{"ip mapped prefix, plain v4 src", flowlog.Filter{IP: pfx("::ffff:10.10.0.0/112")}, func(e *flowlog.Event) {
			e.Src.IP = netip.MustParseAddr("10.10.3.3")
		}, true},
		{"ip mapped /96 is all of IPv4", flowlog.Filter{IP: pfx("::ffff:0.0.0.0/96")}, nil, true},
		{"ip v6 prefix, dst", flowlog.Filter{IP: pfx("fd00::/64")}, nil, true},
		{"ip v6 /128 other", flowlog.Filter{IP: pfx("fd00::9/128")}, nil, false},
		{"ip ::/0 holds v4 too, as in the store's IPv6 columns", flowlog.Filter{IP: pfx("::/0")}, func(e *flowlog.Event) {
			e.Src.IP, e.Dst.IP = netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("9.9.9.9")
		}, true},
		{"ip v6 prefix outside the mapped range", flowlog.Filter{IP: pfx("fd00::/8")}, func(e *flowlog.Event) {
			e.Dst.IP = netip.MustParseAddr("8.8.8.8")
		}, false},
		{"ip v4 prefix, plain v4 dst", flowlog.Filter{IP: pfx("8.8.0.0/16")}, func(e *flowlog.Event) {
			e.Dst.IP = netip.MustParseAddr("8.8.8.8")
		}, true},
		{"ip v4 /0 is all of IPv4, not IPv6", flowlog.Filter{IP: pfx("0.0.0.0/0")}, func(e *flowlog.Event) {
			e.Src.IP = netip.MustParseAddr("fd00::5")
		}, false},
		{"ip: a missing address is :: as stored, not IPv4", flowlog.Filter{IP: pfx("0.0.0.0/0")}, func(e *flowlog.Event) {
			e.Src.IP = netip.Addr{}
		}, false},
		{"ip: a missing address is :: as stored", flowlog.Filter{IP: pfx("::/128")}, func(e *flowlog.Event) {
			e.Src.IP = netip.Addr{}
		}, true},
		{"ip unmasked prefix", flowlog.Filter{IP: pfx("10.10.99.99/16")}, nil, true},

		{"port is the src port", flowlog.Filter{Port: 51000}, nil, true},
		{"port is the dst port", flowlog.Filter{Port: 5432}, nil, true},
		{"port other", flowlog.Filter{Port: 443}, nil, false},

		{"direction egress", flowlog.Filter{Direction: flowlog.DirEgress}, nil, true},
		{"direction ingress", flowlog.Filter{Direction: flowlog.DirIngress}, nil, false},

		{"participant src id", flowlog.Filter{Participant: "n-7"}, nil, true},
		{"participant src name", flowlog.Filter{Participant: "db-1"}, nil, true},
		{"participant dst id", flowlog.Filter{Participant: "u-alice"}, nil, true},
		{"participant dst name", flowlog.Filter{Participant: "alice@example.com"}, nil, true},
		{"participant any type (unlike username)", flowlog.Filter{Participant: "alice@example.com"}, func(e *flowlog.Event) {
			e.Dst.Type = Ext
		}, true},
		{"participant other", flowlog.Filter{Participant: "web-1"}, nil, false},
		{"participant is not a prefix match", flowlog.Filter{Participant: "db"}, nil, false},

		{"all together", flowlog.Filter{NetworkID: "mesh1", HostID: "h1", SrcEntityID: "n-7", DstEntityID: "u-alice",
			From: t0, To: t0.Add(time.Millisecond), SrcTypes: []flowlog.ParticipantType{N}, DstTypes: []flowlog.ParticipantType{U},
			Protocols: []uint8{6}, Username: "u-alice", State: flowlog.StateFinished, IP: pfx("fd00::8/128"),
			Port: 5432, Direction: flowlog.DirEgress, Participant: "db-1"}, nil, true},
		{"all together but one", flowlog.Filter{NetworkID: "mesh1", HostID: "h1", SrcEntityID: "n-7", DstEntityID: "u-alice",
			From: t0, To: t0.Add(time.Millisecond), SrcTypes: []flowlog.ParticipantType{N}, DstTypes: []flowlog.ParticipantType{U},
			Protocols: []uint8{6}, Username: "u-alice", State: flowlog.StateFinished, IP: pfx("fd00::8/128"),
			Port: 5432, Direction: flowlog.DirIngress, Participant: "db-1"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := baseEvent()
			if tt.edit != nil {
				tt.edit(&e)
			}
			if got := tt.filter.Match(&e); got != tt.want {
				t.Errorf("Match = %v, want %v\nfilter %+v\nevent  %+v", got, tt.want, tt.filter, e)
			}
		})
	}
}
