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
	// The network of an external endpoint, named by the collector at ingest
	// (package ipdb): AS number and name, country (ISO 3166 alpha-2). Zero
	// when unknown, and always for mesh participants.
	ASN     uint32
	ASName  string
	Country string
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
	// Start is set, except on a DESTROY whose agent had no kernel timestamp
	// (year 1 on the wire): the store then gives it its flow's start.
	Start time.Time
	End   time.Time // zero while the flow is active (START)
	// EndApprox: End is when the collector received the DESTROY, not when
	// the kernel saw the flow end (the agent had no kernel timestamp).
	EndApprox bool

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
	Class    string // the reason's class (ingest.Reason*: missing_field, bad_type, ...)
	Event    string // the original event, protobuf JSON
}

// RejectedFilter selects rejected events. Zero values mean "any".
type RejectedFilter struct {
	HostID   string    // as the event claimed it
	Class    string    // class of the reason (missing_field, bad_type, ...)
	From, To time.Time // received in [From, To], both inclusive
}

// RejectedReader lists rejected events, newest first, by page number.
type RejectedReader interface {
	Rejected(ctx context.Context, f RejectedFilter, p Page) ([]Rejected, error)
}

// Flow is the merged view of a flow: its latest version.
type Flow struct {
	Event
	Active bool // no DESTROY seen yet, and an event within the stale horizon
	Stale  bool // no DESTROY seen, but no event for longer than the stale horizon
}

// MaxVersion is the largest version (and the largest time, in Unix
// milliseconds) anything stores or prints: 9999-12-31T23:59:59.999Z, the
// last instant RFC 3339 (and Go's JSON) can write.
const MaxVersion = 253402300799999

// State selects flows by whether they have ended.
type State uint8

const (
	StateAll      State = iota
	StateActive         // START seen, no DESTROY yet, an event within the stale horizon
	StateFinished       // DESTROY seen
	StateStale          // START seen, no DESTROY, no event for longer than the stale horizon
)

// Observations says which observations of a connection a query sees when
// both of its ends report it (one as egress, the other as ingress).
type Observations uint8

const (
	// ObserveOne: each connection once, as its initiator's (egress)
	// observation; an ingress observation counts only when no egress
	// observation of the same connection exists.
	ObserveOne Observations = iota
	ObserveAll              // every observation, each host's report of the connection
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
	HostID      string // the reporting host
	// Node is Netmaker's node_id: a Netmaker node id or a host id. A flow is
	// the node's if its host reported it (host_id) or one of its endpoints
	// is that node (a participant of type node with that id: stock agents
	// name mesh nodes by their Netmaker node id).
	Node     string
	Username string // src or dst is this user
	State    State

	// Beyond Netmaker's parameters:
	IP          netip.Prefix // either endpoint inside (an address is a /32 or /128); zero = any
	SrcIP       netip.Prefix // the source inside; zero = any
	DstIP       netip.Prefix // the destination inside; zero = any
	Port        uint16       // either port; 0 = any
	Direction   Direction    // DirUnspecified = any
	Participant string       // either endpoint's entity name or id equals this
	// Observations: one per connection (default) or every host's.
	Observations Observations
	// The network of an external endpoint (Participant.ASN, .Country):
	// either endpoint's AS number is in ASNs, its country in Countries
	// (ISO 3166 alpha-2, upper case); empty = any.
	ASNs      []uint32
	Countries []string

	// Networks are the allowed networks (an API token's scope): nil = any;
	// an empty, non-nil list allows none. Unlike NetworkID, which a caller
	// asks for, it bounds whatever else the filter says.
	Networks []string
}

// Page is a page of results: by number (1-based, offset paging, Netmaker's)
// or, when After is set, the flows strictly after a cursor in the listing's
// order (keyset paging: as fast on page 10,000 as on page 1).
type Page struct {
	Number  int
	PerPage int
	After   *Cursor
	Sort    Sort // the listing's order (zero: start, newest first)
}

// Cursor is a position in the flows listing, ordered by Sort (by default
// start time, newest first), then start and flow id: the key of the last
// flow of a page. Value is that flow's Sort.SortValue.
type Cursor struct {
	Sort   Sort
	Value  uint64
	Start  time.Time
	FlowID string
}

// Metric is what an aggregate sums.
type Metric uint8

const (
	MetricBytes   Metric = iota // bytes_sent + bytes_recv
	MetricPackets               // packets_sent + packets_recv
	MetricFlows                 // number of flows (active ones included)
)

// Side selects which endpoint of a flow an aggregate groups by.
type Side uint8

const (
	SideAny Side = iota // both: a flow counts for its source and its destination
	SideSrc
	SideDst
)

// TopQuery asks for the biggest talkers among the flows matching Filter.
type TopQuery struct {
	Filter Filter
	ByIP   bool // group by IP address instead of by participant (type, id, name)
	Metric Metric
	Side   Side
	Limit  int

	// Group by AS (number and name) or by country instead: the network of
	// external endpoints (raw flows only; endpoints of no known AS or
	// country, mesh participants among them, are left out).
	ByASN, ByCountry bool
	// Group external endpoints by the prefix of their address (Prefix,
	// lengths from PrefixLens; zero: DefaultPrefixLens). Raw flows only.
	ByPrefix   bool
	PrefixLens PrefixLens
}

// Totals are what aggregates report for a group.
type Totals struct {
	Bytes, Packets, Flows uint64
}

// Talker is one row of a top list.
type Talker struct {
	Participant              // IP is set when grouping by IP; Type/ID/Name otherwise
	Prefix      netip.Prefix // when grouping by prefix
	Totals
}

// Edge is one cell of the traffic matrix: who talked to whom, how much.
type Edge struct {
	Src, Dst Participant // Type, ID and Name (IP unset)
	Totals
}

// Point is one bucket of a time series (flows bucketed by start time).
type Point struct {
	T time.Time
	Totals
}

// Aggregator answers the aggregate questions over merged flows (each flow
// once, retries and START/DESTROY pairs collapsed).
type Aggregator interface {
	Top(ctx context.Context, q TopQuery) ([]Talker, error)
	Matrix(ctx context.Context, f Filter, limit int) ([]Edge, error)
	Series(ctx context.Context, f Filter, step time.Duration) ([]Point, error)
	// Active counts flows open now (START seen, no DESTROY).
	Active(ctx context.Context, f Filter) (uint64, error)
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
	// converge to one row per flow and version). It may rewrite an event's
	// Start (and a DESTROY's approximate End) to its flow's.
	Insert(ctx context.Context, b *Batch) error
	// Flows returns the merged flows matching f, newest start first.
	Flows(ctx context.Context, f Filter, p Page) ([]Flow, error)
	// Ping reports whether the store can serve queries.
	Ping(ctx context.Context) error
	Close() error
}
