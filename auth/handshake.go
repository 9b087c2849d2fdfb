package auth

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// handshakeLogEvery bounds the log lines about failed TLS handshakes: a
// scanner or a misconfigured fleet must not flood the log.
const handshakeLogEvery = 10 * time.Second

// WatchHandshakes wraps the server's TLS credentials so that every failed
// handshake (no client certificate, an expired one, another CA's, not TLS
// at all) leaves a trace: onFailure is called for each (a metric), and one
// is logged at WARN with the peer and the reason, then at most one line per
// 10 s saying how many more failed meanwhile. Without it grpc drops the
// connection silently and the agent sees only "broken pipe".
func WatchHandshakes(creds credentials.TransportCredentials, log *slog.Logger, onFailure func()) credentials.TransportCredentials {
	if log == nil {
		log = slog.Default()
	}
	return &watchedCreds{TransportCredentials: creds, w: &handshakeWatch{log: log, onFailure: onFailure, now: time.Now}}
}

type watchedCreds struct {
	credentials.TransportCredentials
	w *handshakeWatch
}

func (c *watchedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.w.failed(conn.RemoteAddr(), err)
	}
	return out, info, err
}

func (c *watchedCreds) Clone() credentials.TransportCredentials {
	return &watchedCreds{TransportCredentials: c.TransportCredentials.Clone(), w: c.w}
}

// handshakeWatch counts and logs failures, shared by the clones.
type handshakeWatch struct {
	log       *slog.Logger
	onFailure func()
	now       func() time.Time

	mu         sync.Mutex
	loggedAt   time.Time
	suppressed int
}

func (w *handshakeWatch) failed(peer net.Addr, err error) {
	if w.onFailure != nil {
		w.onFailure()
	}
	w.mu.Lock()
	now := w.now()
	if now.Sub(w.loggedAt) < handshakeLogEvery {
		w.suppressed++
		w.mu.Unlock()
		return
	}
	suppressed := w.suppressed
	w.loggedAt, w.suppressed = now, 0
	w.mu.Unlock()
	addr := ""
	if peer != nil {
		addr = peer.String()
	}
	w.log.Warn("TLS handshake with an agent failed", "peer", addr, "err", err, "more_failures_not_logged", suppressed)
}
