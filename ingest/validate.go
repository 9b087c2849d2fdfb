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
	if err := checkEventWireTypes(ev); err != nil { // a field's value was lost (wiretype.go)
		return e, err
	}
	switch ev.GetType() {
	case pb.EventType_EVENT_START, pb.EventType_EVENT_DESTROY:
		e.Type = flowlog.EventType(ev.GetType())
	case pb.EventType_EVENT_TYPE_UNSPECIFIED:
		return e, invalid(ReasonMissingField, "event type is unspecified")
	default:
		return e, invalid(ReasonBadType, "unknown event type %d", ev.GetType())
	}
	for _, f := range []struct{ name, v string }{
		{"flow_id", ev.GetFlowId()}, {"host_id", ev.GetHostId()}, {"network_id", ev.GetNetworkId()},
	} {
		if f.v == "" {
			return e, invalid(ReasonMissingField, "missing %s", f.name)
		}
	}
	if err := checkLen("flow_id", ev.GetFlowId()); err != nil {
		return e, err
	}
	if err := checkLen("host_id", ev.GetHostId()); err != nil {
		return e, err
	}
	if err := checkLen("host_name", ev.GetHostName()); err != nil {
		return e, err
	}
	if err := checkLen("network_id", ev.GetNetworkId()); err != nil {
		return e, err
	}
	e.FlowID, e.HostID, e.HostName, e.NetworkID = ev.GetFlowId(), ev.GetHostId(), ev.GetHostName(), ev.GetNetworkId()

	var err error
	if e.Protocol, err = u8("protocol", ev.GetProtocol()); err != nil {
		return e, err
	}
	if e.ICMPType, err = u8("icmp_type", ev.GetIcmpType()); err != nil {
		return e, err
	}
	if e.ICMPCode, err = u8("icmp_code", ev.GetIcmpCode()); err != nil {
		return e, err
	}
	if e.SrcPort, err = port("src_port", ev.GetSrcPort()); err != nil {
		return e, err
	}
	if e.DstPort, err = port("dst_port", ev.GetDstPort()); err != nil {
		return e, err
	}
	if d := ev.GetDirection(); d < 0 || int(d) >= len(flowlog.DirectionNames) {
		return e, invalid(ReasonBadType, "unknown direction %d", d)
	}
	e.Direction = flowlog.Direction(ev.GetDirection())
	if e.Src, err = participant("src", ev.GetSrc()); err != nil {
		return e, err
	}
	if e.Dst, err = participant("dst", ev.GetDst()); err != nil {
		return e, err
	}
	if e.Start, err = timestamp("start_ts_ms", ev.GetStartTsMs(), now); err != nil {
		return e, err
	}
	if e.Type == flowlog.EventDestroy {
		if e.End, err = timestamp("end_ts_ms", ev.GetEndTsMs(), now); err != nil {
			return e, err
		}
		if e.End.Before(e.Start) {
			return e, invalid(ReasonBadTimestamp, "DESTROY ends before it starts (end_ts_ms %d < start_ts_ms %d)", ev.GetEndTsMs(), ev.GetStartTsMs())
		}
	}
	if ev.GetVersion() <= 0 {
		return e, invalid(ReasonOutOfRange, "version %d must be > 0", ev.GetVersion())
	}
	e.Version = ev.GetVersion()
	e.BytesSent, e.BytesRecv = ev.GetBytesSent(), ev.GetBytesRecv()
	e.PacketsSent, e.PacketsRecv = ev.GetPacketsSent(), ev.GetPacketsRecv()
	e.Status = ev.GetStatus()
	return e, nil
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
	if err := checkLen(side+".id", p.GetId()); err != nil {
		return flowlog.Participant{}, err
	}
	if err := checkLen(side+".name", p.GetName()); err != nil {
		return flowlog.Participant{}, err
	}
	return flowlog.Participant{IP: ip.WithZone(""), Type: flowlog.ParticipantType(p.GetType()), ID: p.GetId(), Name: p.GetName()}, nil
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
