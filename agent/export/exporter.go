package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/agent/spool"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Options configure the exporter.
type Options struct {
	Addr        string
	Creds       credentials.TransportCredentials // nil = plaintext
	Window      int                              // envelopes in flight (default 8)
	BackoffMin  time.Duration                    // first retry delay (default 200ms)
	BackoffMax  time.Duration                    // cap of the exponential backoff (default 30s)
	MaxMsgBytes int                              // largest envelope sent (default 16 MiB)
	// MaxEvents splits envelopes of more events when sending (0: as
	// spooled). The collector's own limits, learned from its refusals,
	// are respected as well.
	MaxEvents int
	Log       *slog.Logger
}

// Stats of the exporter, for logs and metrics.
type Stats struct {
	Sent, Acked, Failed, Rejected, Reconnects atomic.Uint64

	RejectedEvents atomic.Uint64 // events named in acks as rejected ("rejected N of M events: ...")
	Oversize       atomic.Uint64 // events dropped: alone, larger than the collector accepts
	Connected      atomic.Bool   // a stream to the collector is open
	LastAck        atomic.Int64  // unix nanoseconds of the last success=true ack; 0: none yet
}

// Exporter owns the stream to the collector.
type Exporter struct {
	o     Options
	spool *spool.Spool
	Stats Stats

	// The collector's limits, learned from its refusals (0: none known);
	// used by Run's goroutine only.
	maxEvents, maxBytes int
}

// New returns an exporter sending the spool's entries.
func New(sp *spool.Spool, o Options) *Exporter {
	if o.Window <= 0 {
		o.Window = 8
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 200 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.MaxMsgBytes <= 0 {
		o.MaxMsgBytes = 16 << 20
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Exporter{o: o, spool: sp}
}

// Run sends until ctx ends. Each attempt opens a stream, rewinds the spool to
// the oldest unacknowledged envelope and sends from there, so a reconnect
// resends everything unacked, in order. Acks (in order) release spool
// entries; success=false or a broken stream ends the attempt and, after an
// exponential backoff with jitter, the next attempt resends.
func (e *Exporter) Run(ctx context.Context) error {
	creds := e.o.Creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(e.o.Addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent(flowlog.AgentPrefix+flowlog.Version()), // the collector's hosts view names it
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(e.o.MaxMsgBytes)))
	if err != nil {
		return fmt.Errorf("collector address %q: %w", e.o.Addr, err)
	}
	defer conn.Close()
	client := pb.NewFlowServiceClient(conn)
	delay := e.o.BackoffMin
	for {
		progressed, err := e.attempt(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		if progressed || e.learn(err) {
			delay = e.o.BackoffMin
		}
		wait := time.Duration(rand.Int64N(int64(delay))) + delay/2 // jitter: [0.5, 1.5) x delay
		if err != nil && strings.Contains(err.Error(), flowlog.IdleStream) {
			// The collector reaps idle streams: a quiet host, not trouble.
			delay = e.o.BackoffMin
			e.o.Log.Debug("collector ended the idle stream; reconnecting", "err", err)
		} else {
			err = e.explain(ctx, err)
			e.o.Log.Warn("collector stream ended; retrying", "err", err, "in", wait.Round(time.Millisecond),
				"unacked_envelopes", e.spool.Stats().Entries)
		}
		e.Stats.Reconnects.Add(1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(delay*2, e.o.BackoffMax)
	}
}

// outgoing is a spool entry ready to send.
type outgoing struct {
	seq uint64
	env *pb.FlowEnvelope
}

// inflight is an envelope sent and not yet answered: a spool entry, or
// one part of it when it was split for the collector's limits (the entry
// is acknowledged with its last part).
type inflight struct {
	seq    uint64
	events int
	last   bool
}

// attempt runs one stream until it fails; progressed reports whether any
// envelope was acknowledged (which resets the backoff).
func (e *Exporter) attempt(ctx context.Context, client pb.FlowServiceClient) (progressed bool, err error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.StreamFlows(actx)
	if err != nil {
		return false, err
	}
	e.Stats.Connected.Store(true)
	defer e.Stats.Connected.Store(false)
	e.spool.Rewind()

	// The reader goroutine feeds spool entries; the receiver goroutine feeds
	// answers. Only this goroutine calls Send (grpc-go allows one sender and
	// one receiver per stream).
	entries := make(chan outgoing)
	answers := make(chan *pb.FlowResponse, e.o.Window)
	recvErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			ent, err := e.spool.Read(actx)
			if err != nil {
				return
			}
			env := new(pb.FlowEnvelope)
			if err := proto.Unmarshal(ent.Data, env); err != nil {
				// The spool checksums records, so this is a bug, not disk rot;
				// sending garbage would not help either.
				e.o.Log.Error("spool entry does not decode; skipping it", "seq", ent.Seq, "err", err)
			}
			select {
			case entries <- outgoing{seq: ent.Seq, env: env}:
			case <-actx.Done():
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			r, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			answers <- r
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	var pending []inflight
	for {
		feed := entries
		if len(pending) >= e.o.Window {
			feed = nil // window full: wait for answers
		}
		select {
		case out := <-feed:
			parts := e.split(out.env)
			if len(parts) == 0 { // nothing the collector could take
				if err := e.spool.Ack(out.seq); err != nil {
					return progressed, fmt.Errorf("spool ack: %w", err)
				}
				continue
			}
			for i, part := range parts {
				if err := stream.Send(part); err != nil {
					return progressed, sendFailed(err, recvErr)
				}
				e.Stats.Sent.Add(1)
				pending = append(pending, inflight{seq: out.seq, events: len(part.GetEvents()), last: i == len(parts)-1})
			}
		case r := <-answers:
			if len(pending) == 0 {
				return progressed, errors.New("collector answered an envelope that was not sent")
			}
			head := pending[0]
			pending = pending[1:]
			if !r.GetSuccess() {
				e.Stats.Failed.Add(1)
				return progressed, fmt.Errorf("collector could not store envelope %d (will resend): %s", head.seq, r.GetError())
			}
			if r.GetError() != "" {
				e.Stats.Rejected.Add(1)
				e.Stats.RejectedEvents.Add(rejectedCount(r.GetError()))
				e.o.Log.Warn("collector rejected events (not retried)", "envelope", head.seq, "events", head.events, "error", r.GetError())
			}
			progressed = true
			if !head.last {
				continue
			}
			if err := e.spool.Ack(head.seq); err != nil {
				return progressed, fmt.Errorf("spool ack: %w", err)
			}
			e.Stats.Acked.Add(1)
			e.Stats.LastAck.Store(time.Now().UnixNano())
		case err := <-recvErr:
			return progressed, err
		case <-ctx.Done():
			stream.CloseSend()
			return progressed, ctx.Err()
		}
	}
}

// rejectedCount reads N from a flowlog collector's "rejected N of M events:
// ..." note; another collector's free-form error counts as 1 (at least one
// event was refused).
func rejectedCount(note string) uint64 {
	var n, total uint64
	if _, err := fmt.Sscanf(note, "rejected %d of %d events", &n, &total); err == nil {
		return n
	}
	return 1
}

// sendFailed is the error of a failed Send. When the stream broke, grpc's
// Send says only io.EOF or the transport's "write: broken pipe"; what the
// collector said (its status, or the TLS alert that refused us) is what
// the receiver gets, so that is the error, when it comes.
func sendFailed(err error, recvErr <-chan error) error {
	select {
	case rerr := <-recvErr:
		return fmt.Errorf("collector ended the stream: %w", rerr)
	case <-time.After(5 * time.Second):
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("send: %w (the collector gave no reason)", err)
		}
		return fmt.Errorf("send: %w", err)
	}
}

// learn takes the collector's limits from the error that ended a stream:
// an envelope over its event limit or over its message size. It reports
// whether a limit was learned (the next attempt splits: no backoff due).
func (e *Exporter) learn(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	if n, ok := flowlog.ParseTooManyEvents(msg); ok && (e.maxEvents == 0 || n < e.maxEvents) {
		e.maxEvents = n
		e.o.Log.Warn("the collector refuses envelopes of more events: splitting them", "max_events", n, "reason", msg)
		return true
	}
	if n, ok := flowlog.ParseMessageTooLarge(msg); ok && (e.maxBytes == 0 || n < e.maxBytes) {
		e.maxBytes = n
		e.o.Log.Warn("the collector refuses larger messages: splitting envelopes", "max_bytes", n, "reason", msg)
		return true
	}
	return false
}

// split cuts env into envelopes within the limits in force: the option's
// and the collector's event count, the option's and the collector's message
// size. An event that alone exceeds the size is dropped, counted and
// logged: no collector would ever take it.
func (e *Exporter) split(env *pb.FlowEnvelope) []*pb.FlowEnvelope {
	maxEvents := e.o.MaxEvents
	if e.maxEvents > 0 && (maxEvents == 0 || e.maxEvents < maxEvents) {
		maxEvents = e.maxEvents
	}
	maxBytes := e.o.MaxMsgBytes
	if e.maxBytes > 0 {
		maxBytes = min(maxBytes, e.maxBytes)
	}
	if (maxEvents == 0 || len(env.Events) <= maxEvents) && proto.Size(env) <= maxBytes {
		return []*pb.FlowEnvelope{env}
	}
	var parts []*pb.FlowEnvelope
	cur, size := &pb.FlowEnvelope{}, 0
	for _, ev := range env.Events {
		// Each event costs its size plus its tag and length (at most 6 bytes).
		n := proto.Size(ev) + 6
		if n > maxBytes {
			e.Stats.Oversize.Add(1)
			e.o.Log.Error("dropping an event larger than the collector accepts", "bytes", n, "max_bytes", maxBytes, "flow_id", ev.GetFlowId())
			continue
		}
		if len(cur.Events) > 0 && ((maxEvents > 0 && len(cur.Events) == maxEvents) || size+n > maxBytes) {
			parts = append(parts, cur)
			cur, size = &pb.FlowEnvelope{}, 0
		}
		cur.Events = append(cur.Events, ev)
		size += n
	}
	if len(cur.Events) > 0 {
		parts = append(parts, cur)
	}
	return parts
}

// explain replaces a bare transport failure ("write: broken pipe",
// "connection reset by peer") with its cause when the collector refused our
// TLS handshake: with TLS 1.3 a server that rejects the client's
// certificate (missing, expired, another CA's) says so in an alert after
// the client believes the handshake done, and grpc, busy writing, reports
// only the broken pipe. A handshake of our own, reading the alert, finds
// the cause.
func (e *Exporter) explain(ctx context.Context, err error) error {
	if e.o.Creds == nil || err == nil {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, "broken pipe") && !strings.Contains(msg, "connection reset") && !strings.Contains(msg, "EOF") {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	raw, derr := d.DialContext(ctx, "tcp", e.o.Addr)
	if derr != nil {
		return err
	}
	defer raw.Close()
	host, _, _ := net.SplitHostPort(e.o.Addr)
	conn, _, herr := e.o.Creds.Clone().ClientHandshake(ctx, host, raw)
	if herr == nil {
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(time.Second))
		_, herr = conn.Read(make([]byte, 1)) // the server's refusal arrives as an alert
	}
	if herr != nil && strings.Contains(herr.Error(), "tls:") {
		return fmt.Errorf("the collector refused the TLS handshake: %v (transport said: %w)", herr, err)
	}
	return err
}
