// Package loadgen plays many synthetic Netmaker agents against a collector:
// each agent streams realistic START/DESTROY events over its own gRPC
// stream (netmaker.flow.FlowService/StreamFlows) and the package measures
// what the collector acknowledges. It drives `flowlog bench`.
//
// The generator must be much cheaper than the collector it measures (the
// target is 150k events/s with both on one 2-core machine), so events are
// built from pre-made participant pools into reused FlowEvent structs, and
// flow ids are cut from a shared byte slab instead of one string each.
package loadgen

import (
	"errors"

	"google.golang.org/grpc/credentials"
	"strconv"
	"time"
)

// Config describes a load run. Zero values take the defaults noted.
type Config struct {
	Addr              string                           // collector gRPC address
	Creds             credentials.TransportCredentials // nil = plaintext
	Streams           int                              // concurrent agents, one stream each (default 100)
	Conns             int                              // TCP connections the streams are spread over (default = Streams: one per agent, as real agents do)
	Duration          time.Duration                    // how long to send (default 30s, or none when Events is set)
	Events            int                              // if > 0: stop after this many events in total (and after Duration, if also set)
	EventsPerEnvelope int                              // default 500
	Window            int                              // envelopes in flight per stream before waiting for acks (default 4)
	NetworkID         string                           // every event carries it; default "bench-<unix nanos>" so runs do not mix
	Seed              int64
	Hosts             int     // distinct hosts (default = Streams; stream i reports as host i % Hosts)
	Participants      int     // distinct participants per network (default 500, at most 60,000)
	ActiveFraction    float64 // share of flows that only get START (stay open); default 0.1, negative means none
	// Rate paces each stream to this many events per second (an envelope
	// every EventsPerEnvelope/Rate seconds), for latency at a light load;
	// 0: as fast as acks allow (throughput).
	Rate float64
}

// maxParticipants keeps generated mesh addresses inside their /16s.
const maxParticipants = 60_000

// WithDefaults returns c with zero values replaced by defaults, or an error
// for nonsense. Resolve a Config once and hand the result to Run and to every
// NewGenerator of one measurement: the default NetworkID differs per call.
func (c Config) WithDefaults() (Config, error) {
	if c.Streams < 0 || c.Conns < 0 || c.Events < 0 || c.EventsPerEnvelope < 0 || c.Window < 0 ||
		c.Hosts < 0 || c.Participants < 0 || c.Duration < 0 || c.Rate < 0 {
		return c, errors.New("loadgen: negative setting")
	}
	if c.ActiveFraction > 1 {
		return c, errors.New("loadgen: ActiveFraction above 1")
	}
	if c.Participants > maxParticipants {
		return c, errors.New("loadgen: more than 60000 participants")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Streams, 100)
	def(&c.Conns, c.Streams)
	c.Conns = min(c.Conns, c.Streams)
	def(&c.EventsPerEnvelope, 500)
	def(&c.Window, 4)
	def(&c.Hosts, c.Streams)
	def(&c.Participants, 500)
	if c.Duration == 0 && c.Events == 0 {
		c.Duration = 30 * time.Second
	}
	if c.ActiveFraction == 0 {
		c.ActiveFraction = 0.1 // negative stays negative, so that resolving twice changes nothing
	}
	if c.NetworkID == "" {
		c.NetworkID = "bench-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	}
	if len(c.NetworkID) >= 200 {
		return c, errors.New("loadgen: NetworkID too long")
	}
	return c, nil
}

// Report is what a run measured. Counts come from the collector's answers,
// never from what was merely sent.
type Report struct {
	Elapsed         time.Duration
	EnvelopesSent   int64 // Send calls, retries included
	EnvelopesAcked  int64 // answered success=true
	EnvelopesFailed int64 // answered success=false (then resent)
	EventsAcked     int64 // events in envelopes acked with success=true
	EventsPerSec    float64

	// Per envelope attempt: Send -> its FlowResponse.
	LatencyP50, LatencyP99, LatencyMax time.Duration

	// Acks with success=true but a non-empty error: the collector kept some
	// events as rejected, so Expect overstates what the flow table holds.
	RejectedErrors int64
	FirstRejected  string // the first such error, to show the operator

	Expect Expect
}

// Expect is what the store must hold for the run's network afterwards,
// derived only from envelopes acked with success=true.
type Expect struct {
	NetworkID string
	Flows     int64  // distinct flow_ids acked
	Finished  int64  // of those, flows whose DESTROY was acked
	BytesSent uint64 // sum of bytes_sent over the acked DESTROY events
	BytesRecv uint64
}
