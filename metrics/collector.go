package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the collector's metrics: small fixed sets.
var (
	// RejectReasons are the classes of flowlog_events_rejected_total's
	// reason label (ingest.ReasonClass derives them from the validation
	// error; the error's text itself is in rejected_events and the ack).
	RejectReasons = []string{"missing_field", "bad_type", "out_of_range", "bad_ip", "bad_timestamp",
		"bad_counters", "too_long", "forbidden_host", "forbidden_network", "other"}
	// AckResults are the result label of flowlog_envelopes_acked_total:
	// success=true, success=false for transient trouble (store unavailable,
	// shutdown), success=false because too many rows wait for commit.
	AckResults = []string{AckSuccess, AckFailedTransient, AckOverloaded}
	// StreamRefusals are the reason label of flowlog_streams_refused_total.
	StreamRefusals = []string{RefusedMaxStreams, RefusedUnauthenticated, RefusedPerHost, RefusedPerAddress}
	// StreamEndings are the reason label of flowlog_streams_ended_total:
	// streams the collector ended on its own (protection, not errors).
	StreamEndings = []string{EndedIdle, EndedSuperseded, EndedRevoked}
	// WireGenerations are the generation label of
	// flowlog_events_wire_generation_total: the FlowEvent numbering an event
	// was read in (v1.5+: proto/flow/flow.proto; v1.4: netclient <= v1.4.x),
	// or neither (rejected).
	WireGenerations = []string{"v1.5+", "v1.4", "neither"}
	// StoreOps are the op label of flowlog_store_errors_total.
	StoreOps = []string{StoreInsert, StoreQuery, StorePing}
)

const (
	AckSuccess         = "success"
	AckFailedTransient = "failed_transient"
	AckOverloaded      = "overloaded"

	RefusedMaxStreams      = "max_streams"             // --max-streams reached
	RefusedUnauthenticated = "unauthenticated"         // no or unknown identity (auth interceptor)
	RefusedPerHost         = "max_streams_per_host"    // the host's streams are all busy
	RefusedPerAddress      = "max_streams_per_address" // the address's streams are all busy

	EndedIdle       = "idle"       // no envelope for the idle timeout
	EndedSuperseded = "superseded" // an idle stream made room for its host's (address's) new one
	EndedRevoked    = "revoked"    // its identity was removed or changed

	StoreInsert = "insert" // group commits
	StoreQuery  = "query"  // the HTTP API's reads
	StorePing   = "ping"   // /healthz and /readyz

	ResultSuccess = "success"
	ResultError   = "error"
)

// Collector is the metrics of `flowlog serve`.
type Collector struct {
	EnvelopesReceived prometheus.Counter     // flowlog_envelopes_received_total
	EventsReceived    prometheus.Counter     // flowlog_events_received_total
	EventsStored      prometheus.Counter     // flowlog_events_stored_total
	EventsRejected    *prometheus.CounterVec // flowlog_events_rejected_total{reason}
	EnvelopesAcked    *prometheus.CounterVec // flowlog_envelopes_acked_total{result}
	// EventsByGeneration: flowlog_events_wire_generation_total{generation}
	EventsByGeneration *prometheus.CounterVec

	InsertRows     prometheus.Histogram   // flowlog_insert_batch_rows
	InsertDuration prometheus.Histogram   // flowlog_insert_duration_seconds
	Inserts        *prometheus.CounterVec // flowlog_inserts_total{result}
	StoreErrors    *prometheus.CounterVec // flowlog_store_errors_total{op}

	StreamsRefused       *prometheus.CounterVec // flowlog_streams_refused_total{reason}
	StreamsEnded         *prometheus.CounterVec // flowlog_streams_ended_total{reason}
	StreamsOpen          Func                   // flowlog_streams_open
	TLSHandshakeFailures prometheus.Counter     // flowlog_tls_handshake_failures_total
	// StreamsAllRejected: flowlog_streams_all_rejected, open streams whose
	// every event so far was rejected.
	StreamsAllRejected Func
	// StreamsByGeneration: flowlog_streams_wire_generation{generation},
	// open streams that sent events of each wire generation.
	StreamsByGeneration *FuncVec
	PendingRows         Func // flowlog_rows_pending_commit

	TailSubscribers Func // flowlog_tail_subscribers
	TailEventsLost  Func // flowlog_tail_events_lost_total

	HTTPRequests *prometheus.CounterVec   // flowlog_http_requests_total{route,code}
	HTTPDuration *prometheus.HistogramVec // flowlog_http_request_duration_seconds{route}
}

// NewCollector defines the collector's metrics on reg. A nil reg keeps them
// unregistered: counted, but exported nowhere.
func NewCollector(reg prometheus.Registerer) *Collector {
	r := registerer{reg}
	c := &Collector{
		EnvelopesReceived: r.counter("flowlog_envelopes_received_total",
			"Envelopes received from agents (a resent envelope counts again)."),
		EventsReceived: r.counter("flowlog_events_received_total",
			"Events received in envelopes, valid or not (a resent envelope counts again)."),
		EventsStored: r.counter("flowlog_events_stored_total",
			"Valid events committed to the store (a retried envelope counts again; the table keeps one row per flow and version)."),
		EventsRejected: r.counterVec("flowlog_events_rejected_total",
			"Invalid events, kept in rejected_events and named in the ack, by class of reason.", "reason", RejectReasons...),
		EnvelopesAcked: r.counterVec("flowlog_envelopes_acked_total",
			"Envelopes answered, by result: success, failed_transient (store unavailable, shutdown; the agent retries), overloaded.",
			"result", AckResults...),
		EventsByGeneration: r.counterVec("flowlog_events_wire_generation_total",
			"Events received, by the wire numbering they were read in: v1.5+ (flow.proto), v1.4 (netclient <= v1.4.x), neither (rejected).",
			"generation", WireGenerations...),
		InsertRows: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowlog_insert_batch_rows",
			Help:    "Rows (valid and rejected events) per group-commit insert.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 11)}), // 1 .. ~1M
		InsertDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowlog_insert_duration_seconds",
			Help:    "Duration of group-commit inserts, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}), // 1ms .. ~33s
		Inserts: r.counterVec("flowlog_inserts_total", "Group-commit inserts, by result (success, error).",
			"result", ResultSuccess, ResultError),
		StoreErrors: r.counterVec("flowlog_store_errors_total",
			"Store operations that failed, by op: insert (group commit), query (HTTP API), ping (health and readiness).",
			"op", StoreOps...),
		StreamsRefused: r.counterVec("flowlog_streams_refused_total",
			"Agent streams refused before any envelope was read, by reason.", "reason", StreamRefusals...),
		StreamsEnded: r.counterVec("flowlog_streams_ended_total",
			"Agent streams the collector ended on its own, by reason: idle, superseded (made room for a new stream of the same host or address), revoked (identity removed or changed).",
			"reason", StreamEndings...),
		TLSHandshakeFailures: r.counter("flowlog_tls_handshake_failures_total",
			"TLS handshakes on the agents' listener that failed (no or untrusted client certificate, expired, wrong CA, not TLS)."),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowlog_http_requests_total",
			Help: "HTTP requests answered, by route (the mux pattern, \"unmatched\" for none) and status code."},
			[]string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "flowlog_http_request_duration_seconds",
			Help:    "Duration of HTTP requests, by route (a live-tail stream lasts as long as its client stays).",
			Buckets: prometheus.DefBuckets}, []string{"route"}),
	}
	r.add(c.InsertRows, c.InsertDuration, c.HTTPRequests, c.HTTPDuration)
	r.gaugeFunc(&c.StreamsOpen, "flowlog_streams_open", "Agent streams open now.")
	r.gaugeFunc(&c.StreamsAllRejected, "flowlog_streams_all_rejected",
		"Open agent streams that sent events and had every one rejected (nothing of that agent is stored; see the WARN logs and /api/v1/rejected).")
	c.StreamsByGeneration = r.funcVec(prometheus.GaugeValue, "flowlog_streams_wire_generation",
		"Open agent streams that sent events of each wire generation (v1.5+, v1.4); a stream mixing both counts in both.", "generation")
	r.gaugeFunc(&c.PendingRows, "flowlog_rows_pending_commit",
		"Rows received and not yet committed or failed (beyond --max-pending-rows envelopes are refused as overloaded).")
	r.gaugeFunc(&c.TailSubscribers, "flowlog_tail_subscribers", "Live-tail (/api/v1/flows/stream) clients connected now.")
	r.counterFunc(&c.TailEventsLost, "flowlog_tail_events_lost_total",
		"Live-tail event deliveries dropped because a client read too slowly (each client is told how many).")
	return c
}

// Rejected counts one rejected event of the given reason class; a class
// outside RejectReasons counts as "other", keeping the label set fixed.
func (c *Collector) Rejected(class string) {
	for _, r := range RejectReasons {
		if r == class {
			c.EventsRejected.WithLabelValues(class).Inc()
			return
		}
	}
	c.EventsRejected.WithLabelValues("other").Inc()
}
