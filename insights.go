package flowlog

import (
	"context"
	"time"
)

// What the console shows beyond flows and aggregates: the reporting hosts,
// connections seen for the first time, and names to suggest in filters.

// HostSummary is one reporting host over a time window.
type HostSummary struct {
	HostID, HostName string
	Networks         []string
	// LastReport is when the collector last stored an event of the host
	// (any time, not only inside the window).
	LastReport time.Time
	// Events are the START and DESTROY events stored in the window (by flow
	// start), Flows the distinct flows, Active those still open.
	Events, Flows, Active uint64
	Bytes                 uint64
	// Rejected events of the host received in the window (not scoped by
	// network: a rejected event may name none).
	Rejected uint64
	// Agents: the software and wire generation the host reported through,
	// one per generation (its latest agent), the last seen first.
	Agents []AgentSighting
}

// NewPair is a conversation seen in a window but never in the baseline
// before it: source, destination, destination port and protocol.
type NewPair struct {
	Src, Dst    Participant // an external endpoint is keyed by its address
	DstPort     uint16
	Protocol    uint8
	First, Last time.Time // starts of its first and last flow in the window
	Totals
}

// NewPairsQuery asks for the pairs of Filter's [From, To) that have no flow
// in [BaselineFrom, From).
type NewPairsQuery struct {
	Filter       Filter
	BaselineFrom time.Time
	Limit        int
}

// Suggestion is a value seen in the flows that a filter field accepts.
type Suggestion struct {
	Field string // "participant", "node_id" (a host) or "network_id"
	Value string // what the filter takes
	Label string // what people read (a name), may equal Value
	Type  string // participant type, for participants
	Flows uint64
}

// Stack keys: what a stacked series splits the traffic by. Each flow has
// one value of each, so the stacks add up to the total.
var StackKeys = []string{"protocol", "port", "src", "dst"}

// GroupPoint is one bucket of one group of a stacked series; Key "" is
// everything outside the top groups.
type GroupPoint struct {
	Key string
	T   time.Time
	Totals
}

// Insights is implemented by stores that can answer the console's views.
type Insights interface {
	// SeriesBy is Series split by one of StackKeys: the limit groups with
	// the most bytes over f's window, the rest as Key "".
	SeriesBy(ctx context.Context, f Filter, step time.Duration, by string, limit int) ([]GroupPoint, error)
	Hosts(ctx context.Context, f Filter) ([]HostSummary, error)
	NewPairs(ctx context.Context, q NewPairsQuery) ([]NewPair, error)
	// Suggest lists values containing text (case-insensitive; "" lists the
	// most frequent) of flows matching f, at most limit per field.
	Suggest(ctx context.Context, f Filter, text string, limit int) ([]Suggestion, error)
}
