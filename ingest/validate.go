package ingest

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowlog/flowlog"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Limits on event contents. Strings are ids and names: anything longer is a
// broken or hostile agent, and would bloat LowCardinality dictionaries.
const (
	maxIDLen = 256
	// Timestamps before this are a clock that was never set (or garbage).
	minTimestampMS = 946684800000 // 2000-01-01T00:00:00Z
	// Timestamps further in the future than this are clock skew we refuse to
	// store: they would sort above every real flow for a long time.
	maxFutureSkew = 24 * time.Hour
	// noKernelTimestampMS is what a stock agent sends as start_ts_ms and
	// end_ts_ms of a DESTROY the kernel gave no timestamps (Go's zero
	// time, 0001-01-01): a connection opened before conntrack timestamps
	// were turned on.
	noKernelTimestampMS = -62135596800000
)

// Counter bounds: what no link can produce (Convert's counters).
const (
	// maxPacketBytes is the largest packet conntrack can count: it counts
	// skbs, and a GSO/GRO super-packet is at most GSO_MAX_SIZE = 8 x
	// 65535 = 524280 bytes since BIG TCP (Linux 5.19; 65536 before).
	maxPacketBytes = 524280
	// minPacketBytes: conntrack counts layer-3 lengths, and an IPv4 header
	// alone is 20 bytes (IPv6: 40).
	minPacketBytes = 20
	// maxLinkBytesPerSecond is 1.6 Tbit/s, the fastest Ethernet standard
	// (802.3dj): no host's flow counts more bytes a second in one direction.
	maxLinkBytesPerSecond = 200_000_000_000
	// maxCounter bounds every counter, times known or not (2^62, 4 EiB): a
	// row's bytes_sent + bytes_recv then fits a UInt64, and values near
	// 2^64 are refused instead of wrapping a sum.
	maxCounter = 1 << 62
)

// Reason classes of invalid events: the reason label of
// flowlog_events_rejected_total (metrics.RejectReasons), a small fixed set
// where the error's text, kept in rejected_events, is free.
const (
	ReasonMissingField     = "missing_field"     // a required field is empty or absent
	ReasonBadType          = "bad_type"          // an enum (event type, direction, participant type) out of its values
	ReasonOutOfRange       = "out_of_range"      // a number out of its range (protocol, ports, ICMP, version)
	ReasonBadIP            = "bad_ip"            // not an IP address
	ReasonBadTimestamp     = "bad_timestamp"     // before 2000, too far in the future, or ending before it starts
	ReasonBadCounters      = "bad_counters"      // counters no link could produce
	ReasonTooLong          = "too_long"          // an id or name over 256 bytes
	ReasonForbiddenHost    = "forbidden_host"    // host_id is not the authenticated agent's
	ReasonForbiddenNetwork = "forbidden_network" // network_id not allowed for the authenticated agent
	ReasonOther            = "other"
)

// invalidEvent is a validation error with its class; Error is the reason.
type invalidEvent struct{ class, msg string }

func (e *invalidEvent) Error() string { return e.msg }

func invalid(class, format string, a ...any) error {
	return &invalidEvent{class: class, msg: fmt.Sprintf(format, a...)}
}

// ReasonClass is the class of an error from Convert or the identity check,
// ReasonOther for any other error.
func ReasonClass(err error) string {
	var e *invalidEvent
	if errors.As(err, &e) {
		return e.class
	}
	return ReasonOther
}

// Convert validates a wire event and turns it into a domain event. The error
// says what is wrong in words an operator can act on; it is stored with the
// rejected event and returned to the agent.
func Convert(ev *pb.FlowEvent, now time.Time) (flowlog.Event, error) {
	var e flowlog.Event
	err := convertInto(&e, ev, now)
	return e, err
}

// convertInto is Convert writing into e, which it may leave half filled on
// error: the collector converts into the envelope's event array (an event
// is 400 bytes, and a returned one was copied twice).
func convertInto(e *flowlog.Event, ev *pb.FlowEvent, now time.Time) error {
	if err := checkEventWireTypes(ev); err != nil { // a field's value was lost (wiretype.go)
		return err
	}
	switch ev.GetType() {
	case pb.EventType_EVENT_START, pb.EventType_EVENT_DESTROY:
		e.Type = flowlog.EventType(ev.GetType())
	case pb.EventType_EVENT_TYPE_UNSPECIFIED:
		return invalid(ReasonMissingField, "event type is unspecified")
	default:
		return invalid(ReasonBadType, "unknown event type %d", ev.GetType())
	}
	for _, f := range []struct{ name, v string }{
		{"flow_id", ev.GetFlowId()}, {"host_id", ev.GetHostId()}, {"network_id", ev.GetNetworkId()},
	} {
		if f.v == "" {
			return invalid(ReasonMissingField, "missing %s", f.name)
		}
	}
	if err := checkLen("flow_id", ev.GetFlowId()); err != nil {
		return err
	}
	if err := checkLen("host_id", ev.GetHostId()); err != nil {
		return err
	}
	if err := checkLen("host_name", ev.GetHostName()); err != nil {
		return err
	}
	if err := checkLen("network_id", ev.GetNetworkId()); err != nil {
		return err
	}
	e.FlowID, e.HostID, e.HostName, e.NetworkID = ev.GetFlowId(), ev.GetHostId(), ev.GetHostName(), ev.GetNetworkId()

	var err error
	if e.Protocol, err = u8("protocol", ev.GetProtocol()); err != nil {
		return err
	}
	if e.ICMPType, err = u8("icmp_type", ev.GetIcmpType()); err != nil {
		return err
	}
	if e.ICMPCode, err = u8("icmp_code", ev.GetIcmpCode()); err != nil {
		return err
	}
	if e.SrcPort, err = port("src_port", ev.GetSrcPort()); err != nil {
		return err
	}
	if e.DstPort, err = port("dst_port", ev.GetDstPort()); err != nil {
		return err
	}
	if d := ev.GetDirection(); d < 0 || int(d) >= len(flowlog.DirectionNames) {
		return invalid(ReasonBadType, "unknown direction %d", d)
	}
	e.Direction = flowlog.Direction(ev.GetDirection())
	if e.Src, err = participant("src", ev.GetSrc()); err != nil {
		return err
	}
	if e.Dst, err = participant("dst", ev.GetDst()); err != nil {
		return err
	}
	if e.Start, err = eventTime(e.Type, "start_ts_ms", ev.GetStartTsMs(), now); err != nil {
		return err
	}
	if e.Type == flowlog.EventDestroy {
		if e.End, err = eventTime(e.Type, "end_ts_ms", ev.GetEndTsMs(), now); err != nil {
			return err
		}
		if e.End.IsZero() { // no kernel timestamp: when we received it
			e.End, e.EndApprox = now.UTC().Truncate(time.Millisecond), true
		}
		if !e.Start.IsZero() && !e.EndApprox && e.End.Before(e.Start) {
			return invalid(ReasonBadTimestamp, "DESTROY ends before it starts (end_ts_ms %d < start_ts_ms %d)", ev.GetEndTsMs(), ev.GetStartTsMs())
		}
	}
	// Versions are milliseconds since the epoch (flow.proto): one past
	// year 9999 (a microsecond clock is enough) cannot be printed as the
	// time the API shows it as.
	if v := ev.GetVersion(); v <= 0 || v > flowlog.MaxVersion {
		return invalid(ReasonOutOfRange, "version %d must be in 1..%d (milliseconds up to 9999-12-31)", v, int64(flowlog.MaxVersion))
	}
	e.Version = ev.GetVersion()
	e.BytesSent, e.BytesRecv = ev.GetBytesSent(), ev.GetBytesRecv()
	e.PacketsSent, e.PacketsRecv = ev.GetPacketsSent(), ev.GetPacketsRecv()
	if err := checkCounters(e, now); err != nil {
		return err
	}
	e.Status = ev.GetStatus()
	return nil
}

func checkLen(name, v string) error {
	if len(v) > maxIDLen {
		return invalid(ReasonTooLong, "%s is %d bytes, longer than %d", name, len(v), maxIDLen)
	}
	return nil
}

func u8(name string, v uint32) (uint8, error) {
	if v > 255 {
		return 0, invalid(ReasonOutOfRange, "%s %d > 255", name, v)
	}
	return uint8(v), nil
}

func port(name string, v uint32) (uint16, error) {
	if v > 65535 {
		return 0, invalid(ReasonOutOfRange, "%s %d > 65535", name, v)
	}
	return uint16(v), nil
}

func participant(side string, p *pb.FlowParticipant) (flowlog.Participant, error) {
	if p == nil {
		return flowlog.Participant{}, invalid(ReasonMissingField, "missing %s", side)
	}
	ip, err := netip.ParseAddr(p.GetIp())
	if err != nil {
		return flowlog.Participant{}, invalid(ReasonBadIP, "%s.ip %q is not an IP address", side, p.GetIp())
	}
	if t := p.GetType(); t < 0 || int(t) >= len(flowlog.ParticipantTypeNames) {
		return flowlog.Participant{}, invalid(ReasonBadType, "%s.type %d is unknown", side, t)
	}
	// The field's name is built only for the error: this runs twice an
	// event, and concatenating up front was an allocation each time.
	if len(p.GetId()) > maxIDLen {
		return flowlog.Participant{}, checkLen(side+".id", p.GetId())
	}
	if len(p.GetName()) > maxIDLen {
		return flowlog.Participant{}, checkLen(side+".name", p.GetName())
	}
	return flowlog.Participant{IP: ip.WithZone(""), Type: flowlog.ParticipantType(p.GetType()), ID: p.GetId(), Name: p.GetName()}, nil
}

// eventTime is timestamp, except that a DESTROY may carry no kernel
// timestamp (the zero time).
func eventTime(typ flowlog.EventType, name string, ms int64, now time.Time) (time.Time, error) {
	if typ == flowlog.EventDestroy && ms == noKernelTimestampMS {
		return time.Time{}, nil
	}
	return timestamp(name, ms, now)
}

// checkCounters refuses counters no link could produce, per direction:
// bytes without packets, more bytes a packet than the largest packet the
// kernel counts or fewer than a bare IP header, more bytes than the fastest
// link carries over the flow's lifetime (plus a second of timestamp
// granularity; until now, with maxFutureSkew of clock skew, for a START
// reporting counters so far), any counter past maxCounter.
func checkCounters(e *flowlog.Event, now time.Time) error {
	var life time.Duration
	switch {
	case e.Start.IsZero():
		life = -1 // unknown: only the static bounds
	case e.Type == flowlog.EventDestroy && !e.EndApprox:
		life = e.End.Sub(e.Start) + time.Second
	default:
		life = max(now.Sub(e.Start), 0) + maxFutureSkew
	}
	for _, d := range []struct {
		name           string
		bytes, packets uint64
	}{{"sent", e.BytesSent, e.PacketsSent}, {"recv", e.BytesRecv, e.PacketsRecv}} {
		b, p := d.bytes, d.packets
		switch {
		case b > maxCounter || p > maxCounter:
			return invalid(ReasonBadCounters, "bytes_%[1]s %[2]d or packets_%[1]s %[3]d exceeds %[4]d", d.name, b, p, uint64(maxCounter))
		case p == 0 && b > 0:
			return invalid(ReasonBadCounters, "bytes_%[1]s %[2]d with packets_%[1]s 0", d.name, b)
		case b > p*maxPacketBytes:
			return invalid(ReasonBadCounters, "bytes_%[1]s %[2]d over packets_%[1]s %[3]d is more than %[4]d bytes a packet (the largest the kernel counts)",
				d.name, b, p, maxPacketBytes)
		case b < p*minPacketBytes:
			return invalid(ReasonBadCounters, "bytes_%[1]s %[2]d over packets_%[1]s %[3]d is less than %[4]d bytes a packet (an IP header)",
				d.name, b, p, minPacketBytes)
		case life >= 0 && float64(b) > life.Seconds()*maxLinkBytesPerSecond:
			return invalid(ReasonBadCounters, "bytes_%[1]s %[2]d in %[3]s is faster than 1.6 Tbit/s", d.name, b, life.Round(time.Millisecond))
		}
	}
	return nil
}

func timestamp(name string, ms int64, now time.Time) (time.Time, error) {
	if ms < minTimestampMS {
		return time.Time{}, invalid(ReasonBadTimestamp, "%s %d is before 2000-01-01 (unset clock?)", name, ms)
	}
	t := time.UnixMilli(ms).UTC()
	if t.After(now.Add(maxFutureSkew)) {
		return time.Time{}, invalid(ReasonBadTimestamp, "%s %d (%s) is more than %s in the future", name, ms, t.Format(time.RFC3339), maxFutureSkew)
	}
	return t, nil
}
