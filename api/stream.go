package api

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/tail"
)

const (
	// streamWriteTimeout ends a stream whose client has stopped reading
	// altogether (the socket accepted nothing for this long): its events are
	// being dropped anyway, and its goroutine should not wait forever.
	streamWriteTimeout = time.Minute
	// streamFlushEvery bounds how many events wait in the response buffer
	// while more keep coming; an idle stream is always flushed.
	streamFlushEvery = 64
)

// stream is GET /api/v1/flows/stream: the committed events matching the
// filters of /api/v1/flows, as Server-Sent Events:
//
//	event: flow
//	data: <FlowRow JSON>
//
//	event: lost
//	data: {"lost":N}
//
//	: keepalive
//
// A stream authorized by a reader's token ends at a keepalive once the
// readers file no longer grants that token the same networks and role.
//
// A client that does not keep up loses events rather than slowing the
// ingest: its buffer holds Deps.StreamBuffer events, and "lost" says how
// many matching events were dropped at exactly that place in the stream
// (since the previous report).
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	f, err := parseStreamQuery(q)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !s.scope(w, r, &f) {
		return
	}
	if s.hub == nil {
		s.writeError(w, r, http.StatusNotImplemented, "live tail is not available")
		return
	}

	release, ok := s.tails.acquire(w, r, s)
	if !ok {
		return
	}
	defer release()
	ctx := r.Context()
	sub := s.hub.Subscribe(f, s.buffer)
	defer sub.Unsubscribe()
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve other requests

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies such as nginx must not hold events back
	w.WriteHeader(http.StatusOK)
	// The client sees the answer once it is subscribed: whatever is
	// committed after it got the headers reaches it.
	if err := rc.Flush(); err != nil {
		s.log.WarnContext(ctx, "live tail: cannot flush", "err", err)
		return
	}
	s.log.DebugContext(ctx, "live tail started", "query", r.URL.RawQuery, "remote", r.RemoteAddr)

	// Written in batches through a buffer that grows only while events
	// come (an idle tail holds none).
	bw := &lazyWriter{w: w}
	var (
		lost      uint64
		sent      uint64
		buf       []byte
		keepalive = time.NewTicker(s.keepalive)
	)
	defer keepalive.Stop()
	defer func() {
		s.log.DebugContext(ctx, "live tail ended", "remote", r.RemoteAddr, "sent", sent, "lost", lost)
	}()

	writeLost := func(n uint64) {
		lost += n
		buf = append(buf[:0], "event: lost\ndata: {\"lost\":"...)
		buf = strconv.AppendUint(buf, n, 10)
		buf = append(buf, "}\n\n"...)
		bw.Write(buf)
	}
	writeItem := func(it tail.Item) {
		if it.Lost > 0 {
			writeLost(it.Lost)
		}
		row := NewFlowRow(flowlog.Flow{Event: it.Event, Active: it.Event.Type == flowlog.EventStart})
		data, err := json.Marshal(row) // one line: JSON escapes every newline
		if err != nil {
			s.log.ErrorContext(ctx, "live tail: encoding a flow", "err", err)
			return
		}
		sent++
		buf = append(buf[:0], "event: flow\ndata: "...)
		buf = append(buf, data...)
		buf = append(buf, "\n\n"...)
		bw.Write(buf)
	}
	flush := func() bool {
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if err := bw.Flush(); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Done(): // the hub closed: the server is shutting down
			for it, ok := sub.Next(); ok; it, ok = sub.Next() {
				writeItem(it)
			}
			flush()
			return
		case <-sub.Ready():
		case <-keepalive.C:
			if !stillGranted(ctx) {
				// The readers file changed: this token no longer reads
				// these flows. The client reconnects and is told why.
				s.log.InfoContext(ctx, "live tail ended: its token's grant changed", "remote", r.RemoteAddr)
				flush()
				return
			}
			bw.WriteString(": keepalive\n\n")
		}
		// Take what is ready, flushing now and then, then report a gap at
		// the end of what was buffered (TakeLost answers only when the
		// buffer is empty, which is where such a gap sits).
		for n := 1; ; n++ {
			it, ok := sub.Next()
			if !ok {
				break
			}
			writeItem(it)
			if n%streamFlushEvery == 0 && !flush() {
				return
			}
		}
		if n := sub.TakeLost(); n > 0 {
			writeLost(n)
		}
		if !flush() {
			return
		}
	}
}

// lazyWriter collects what a live tail writes until Flush; its buffer
// exists only while there is something to send.
type lazyWriter struct {
	w   http.ResponseWriter
	buf []byte
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *lazyWriter) WriteString(s string) (int, error) {
	l.buf = append(l.buf, s...)
	return len(s), nil
}

// Flush writes what was collected and lets go of a large buffer.
func (l *lazyWriter) Flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	l.buf = l.buf[:0]
	if cap(l.buf) > 64<<10 {
		l.buf = nil
	}
	return err
}

// tailLimits counts the live tails open, in all and per reader (per client
// address when the API is open), against Deps.MaxTails and
// Deps.MaxTailsPerReader.
type tailLimits struct {
	max, perReader int

	mu    sync.Mutex
	total int
	by    map[string]int
}

// acquire takes a place for r's tail, or answers 429 naming the limit.
func (l *tailLimits) acquire(w http.ResponseWriter, r *http.Request, s *Server) (release func(), ok bool) {
	kind, key := "client address", "addr:"+remoteIP(r)
	if rd := ReaderFrom(r.Context()); rd != nil {
		kind, key = "reader", "reader:"+rd.Name
	}
	if refusal := l.take(key, kind); refusal != "" {
		s.writeError(w, r, http.StatusTooManyRequests, refusal)
		return nil, false
	}
	return func() { l.put(key) }, true
}

// take counts a tail for key, or says why it may not open.
func (l *tailLimits) take(key, kind string) (refusal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.max > 0 && l.total >= l.max:
		return fmt.Sprintf("too many live tails: %d open, the limit is %d (--max-tails); retry later", l.total, l.max)
	case l.perReader > 0 && l.by[key] >= l.perReader:
		return fmt.Sprintf("too many live tails for this %s: %d open, the limit is %d (--max-tails-per-reader); close one first", kind, l.by[key], l.perReader)
	}
	if l.by == nil {
		l.by = map[string]int{}
	}
	l.total++
	l.by[key]++
	return ""
}

func (l *tailLimits) put(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.by[key]--; l.by[key] == 0 {
		delete(l.by, key)
	}
}

func remoteIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
