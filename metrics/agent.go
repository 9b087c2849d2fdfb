package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Agent is the metrics of `flowlog agent`. Every one is read at scrape time
// from the counters the agent's components keep (conntrack.Source.Stats,
// enrich.Stats, export.Batcher, spool.Stats, export.Stats); the agent
// command binds them with Set.
type Agent struct {
	ConntrackEvents      *FuncVec // flowlog_agent_conntrack_events_total{kind=new|destroy}
	ConntrackOverruns    Func     // flowlog_agent_conntrack_overruns_total
	ConntrackResyncs     Func     // flowlog_agent_conntrack_resyncs_total
	ConntrackUpdates     Func     // flowlog_agent_conntrack_updates_total
	StateFlows           *FuncVec // flowlog_agent_state_flows_total{kind=restored|corrupt|redelivered}
	ConntrackResyncFlows *FuncVec // flowlog_agent_conntrack_resync_flows_total{kind=new|destroy}
	ConntrackUndecodable Func     // flowlog_agent_conntrack_undecodable_total
	ConntrackOpenFlows   Func     // flowlog_agent_conntrack_open_flows

	Flows *FuncVec // flowlog_agent_flows_total{verdict}

	EventsEnqueued Func // flowlog_agent_events_enqueued_total
	EventsDropped  Func // flowlog_agent_events_dropped_total
	SpoolEntries   Func // flowlog_agent_spool_entries
	SpoolBytes     Func // flowlog_agent_spool_bytes
	SpoolDamaged   Func // flowlog_agent_spool_damaged_total
	EventsOversize Func // flowlog_agent_events_oversize_total

	EnvelopesSent   Func // flowlog_agent_envelopes_sent_total
	EnvelopesAcked  Func // flowlog_agent_envelopes_acked_total
	EnvelopesFailed Func // flowlog_agent_envelopes_failed_total
	EventsRejected  Func // flowlog_agent_events_rejected_total
	Reconnects      Func // flowlog_agent_reconnects_total
	Connected       Func // flowlog_agent_collector_connected
	LastAck         Func // flowlog_agent_last_ack_timestamp_seconds
}

// NewAgent defines the agent's metrics on reg (nil: nowhere).
func NewAgent(reg prometheus.Registerer) *Agent {
	r := registerer{reg}
	a := &Agent{
		ConntrackEvents: r.funcVec(prometheus.CounterValue, "flowlog_agent_conntrack_events_total",
			"Conntrack events read from the kernel, by kind (new, destroy).", "kind"),
		ConntrackResyncFlows: r.funcVec(prometheus.CounterValue, "flowlog_agent_conntrack_resync_flows_total",
			"Flows a table dump corrected, by kind: new (found only in the dump), destroy (gone without a DESTROY: ended unobserved, last known counters).", "kind"),
		StateFlows: r.funcVec(prometheus.CounterValue, "flowlog_agent_state_flows_total",
			"The announced-flow set on disk: restored (open flows read back at start), corrupt (damaged records ignored), redelivered (DESTROYs a full spool dropped, closed again).", "kind"),
		Flows: r.funcVec(prometheus.CounterValue, "flowlog_agent_flows_total",
			"Conntrack flows by verdict of the config: keep (sent), out_of_scope, drop_protocol, drop_port, drop_cidr.", "verdict"),
	}
	r.counterFunc(&a.ConntrackOverruns, "flowlog_agent_conntrack_overruns_total",
		"Netlink overruns (ENOBUFS): the kernel dropped events for us; each is followed by a resync.")
	r.counterFunc(&a.ConntrackResyncs, "flowlog_agent_conntrack_resyncs_total", "Conntrack table dumps compared with the open flows.")
	r.counterFunc(&a.ConntrackUpdates, "flowlog_agent_conntrack_updates_total", "Active-timeout updates: open flows reported again with their counters so far.")
	r.counterFunc(&a.ConntrackUndecodable, "flowlog_agent_conntrack_undecodable_total", "Conntrack messages skipped because they did not decode.")
	r.gaugeFunc(&a.ConntrackOpenFlows, "flowlog_agent_conntrack_open_flows", "Flows believed open now.")
	r.counterFunc(&a.EventsEnqueued, "flowlog_agent_events_enqueued_total", "Events written to the spool.")
	r.counterFunc(&a.EventsDropped, "flowlog_agent_events_dropped_total", "Events lost because the spool was full (--spool-max-bytes).")
	r.gaugeFunc(&a.SpoolEntries, "flowlog_agent_spool_entries", "Envelopes in the spool not yet acknowledged by the collector.")
	r.gaugeFunc(&a.SpoolBytes, "flowlog_agent_spool_bytes", "Bytes of spool segment files on disk.")
	r.counterFunc(&a.SpoolDamaged, "flowlog_agent_spool_damaged_total",
		"Unacknowledged envelopes lost to damage of the spool on disk (each damaged record is skipped alone; spool.Stats().Damaged).")
	r.counterFunc(&a.EventsOversize, "flowlog_agent_events_oversize_total",
		"Events dropped because alone they are larger than the collector accepts (split envelopes cannot carry them).")
	r.counterFunc(&a.EnvelopesSent, "flowlog_agent_envelopes_sent_total", "Envelopes sent to the collector (resends included).")
	r.counterFunc(&a.EnvelopesAcked, "flowlog_agent_envelopes_acked_total", "Envelopes the collector acknowledged with success=true.")
	r.counterFunc(&a.EnvelopesFailed, "flowlog_agent_envelopes_failed_total", "Envelopes answered success=false (to be resent).")
	r.counterFunc(&a.EventsRejected, "flowlog_agent_events_rejected_total", "Events the collector rejected as invalid (not retried).")
	r.counterFunc(&a.Reconnects, "flowlog_agent_reconnects_total", "Collector streams that ended and were retried.")
	r.gaugeFunc(&a.Connected, "flowlog_agent_collector_connected", "1 while a stream to the collector is open.")
	r.gaugeFunc(&a.LastAck, "flowlog_agent_last_ack_timestamp_seconds", "Unix time of the collector's last success=true ack (0: none yet).")
	return a
}
