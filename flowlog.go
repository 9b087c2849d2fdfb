// Package flowlog holds the domain of the flow-log system: the events agents
// report, the flows people query, and the interface every store implements.
// Packages talk to each other through these types, never through each
// other's internals (see README "Packages").
package flowlog

import (
	"context"
	"net/netip"
	"time"
)

// EventType is the lifecycle stage of a flow event (wire values of
// netmaker.flow.EventType).
type EventType uint8

const (
	EventUnspecified EventType = 0
	EventStart       EventType = 1
	EventDestroy     EventType = 2
)

// ParticipantType says what an endpoint is (wire values of
// netmaker.flow.ParticipantType). The names are those Netmaker's API returns.
type ParticipantType uint8

const (
	ParticipantUnspecified ParticipantType = 0
	ParticipantNode        ParticipantType = 1
	ParticipantUser        ParticipantType = 2
	ParticipantExtClient   ParticipantType = 3
	ParticipantEgressRoute ParticipantType = 4
	ParticipantExternal    ParticipantType = 5
)

// ParticipantTypeNames are the API names of participant types, by wire value.
var ParticipantTypeNames = [...]string{"unspecified", "node", "user", "extclient", "egress_route", "external"}

func (t ParticipantType) String() string {
	if int(t) < len(ParticipantTypeNames) {
		return ParticipantTypeNames[t]
	}
	return "unknown"
}

// ParseParticipantType accepts an API name ("node") or a wire enum name
// ("PARTICIPANT_NODE").
func ParseParticipantType(s string) (ParticipantType, bool) {
	for i, n := range ParticipantTypeNames {
		if s == n || s == wireParticipantNames[i] {
			return ParticipantType(i), true
		}
	}
	return 0, false
}

var wireParticipantNames = [...]string{"PARTICIPANT_UNSPECIFIED", "PARTICIPANT_NODE", "PARTICIPANT_USER",
	"PARTICIPANT_EXTCLIENT", "PARTICIPANT_EGRESS_ROUTE", "PARTICIPANT_EXTERNAL"}

// Direction of a flow relative to the reporting host (wire values of
// netmaker.flow.Direction).
type Direction uint8

const (
	DirUnspecified Direction = 0
	DirIngress     Direction = 1
	DirEgress      Direction = 2
)

// DirectionNames are the API names of directions, by wire value.
var DirectionNames = [...]string{"unspecified", "ingress", "egress"}

func (d Direction) String() string {
	if int(d) < len(DirectionNames) {
		return DirectionNames[d]
	}
	return "unknown"
}

// Participant is one enriched endpoint of a flow.
type Participant struct {
	IP   netip.Addr
	Type ParticipantType
	ID   string
	Name string
}

// Event is one validated START or DESTROY report: the unit the store writes.
// A flow is the set of events sharing FlowID; the one with the highest
// Version wins when they are merged.
type Event struct {
	Type      EventType
	FlowID    string
	HostID    string
	HostName  string
	NetworkID string
	Protocol  uint8
	SrcPort   uint16
	DstPort   uint16
	ICMPType  uint8
	ICMPCode  uint8
	Direction Direction
	Src, Dst  Participant
	Start     time.Time // always set
	End       time.Time // zero while the flow is active (START)

	BytesSent, BytesRecv     uint64
	PacketsSent, PacketsRecv uint64
	Status                   uint32
	Version                  int64
}

// Rejected is an event that failed validation, kept with its reason so that
// nothing an agent sent is silently lost.
type Rejected struct {
	Received time.Time
	Peer     string // remote address of the stream
	HostID   string // as claimed by the event, possibly empty
	Index    int    // position in its envelope
	Reason   string
	Event    string // the original event, protobuf JSON
}

// Flow is the merged view of a flow: its latest version.
type Flow struct {
	Event
	Active bool // no DESTROY seen yet
}

// State selects flows by whether they have ended.
type State uint8

const (
	StateAll      State = iota
	StateActive         // START seen, no DESTROY yet
	StateFinished       // DESTROY seen
)

// Filter selects flows. Zero values mean "any".
type Filter struct {
	NetworkID   string
	From, To    time.Time // flows whose start is in [From, To)
	SrcTypes    []ParticipantType
	DstTypes    []ParticipantType
	SrcEntityID string
	DstEntityID string
	Protocols   []uint8
	HostID      string // the reporting host (Netmaker's node_id)
	Username    string // src or dst is this user
	State       State
}

// Page is an offset page of results, 1-based.
type Page struct {
	Number  int
	PerPage int
}

// Batch is what one group commit writes: valid events and rejected ones.
type Batch struct {
	Events   []Event
	Rejected []Rejected
}

// Store is where flows live. Both engines (embedded chDB and ClickHouse
// server) implement it with the same SQL.
type Store interface {
	// Insert writes the batch durably; when it returns nil every row is
	// committed. It is safe to call again with the same rows (retries
	// converge to one row per flow and version).
	Insert(ctx context.Context, b *Batch) error
	// Flows returns the merged flows matching f, newest start first.
	Flows(ctx context.Context, f Filter, p Page) ([]Flow, error)
	// Ping reports whether the store can serve queries.
	Ping(ctx context.Context) error
	Close() error
}
