package ingest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// ProxyListener accepts connections that a trusted proxy (HAProxy's
// send-proxy, Caddy's proxy_protocol, a cloud load balancer) opens with a
// PROXY protocol header, version 1 or 2: the connection's RemoteAddr is then
// the agent's address the header carries, for the per-address stream cap
// and the logs. Connections from other addresses are served as they are
// (no header expected); a trusted peer's connection without a valid header
// fails on its first read. Header "LOCAL" (v2) or "UNKNOWN" (v1) keeps the
// proxy's own address (its health checks). The header is read when the
// connection is first used, under the deadline grpc sets for the
// handshake (Protection.HandshakeTimeout).
func ProxyListener(ln net.Listener, trusted []netip.Prefix) net.Listener {
	return &proxyListener{Listener: ln, trusted: trusted}
}

type proxyListener struct {
	net.Listener
	trusted []netip.Prefix
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err != nil || !isTrusted(ap.Addr().Unmap(), l.trusted) {
		return c, nil
	}
	// Parsed on first use, not here: Accept must not wait for one client.
	return &proxyConn{Conn: c, r: bufio.NewReaderSize(c, 256)}, nil
}

// proxyConn is a connection that begins with a PROXY header.
type proxyConn struct {
	net.Conn
	r *bufio.Reader

	once   sync.Once
	remote net.Addr
	err    error
}

func (c *proxyConn) header() error {
	c.once.Do(func() {
		c.remote, c.err = readProxyHeader(c.r)
		if c.err != nil {
			c.err = fmt.Errorf("PROXY protocol header from %s: %w", c.Conn.RemoteAddr(), c.err)
		}
		if c.remote == nil {
			c.remote = c.Conn.RemoteAddr()
		}
	})
	return c.err
}

func (c *proxyConn) Read(p []byte) (int, error) {
	if err := c.header(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (c *proxyConn) RemoteAddr() net.Addr {
	c.header()
	return c.remote
}

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// readProxyHeader reads a v1 or v2 header and returns the source address
// it names (nil: LOCAL or UNKNOWN, keep the peer's).
func readProxyHeader(r *bufio.Reader) (net.Addr, error) {
	sig, err := r.Peek(len(proxyV2Sig))
	if err != nil {
		return nil, err
	}
	if bytes.Equal(sig, proxyV2Sig) {
		return readProxyV2(r)
	}
	if !bytes.HasPrefix(sig, []byte("PROXY ")) {
		return nil, errors.New("missing (the connection does not begin with PROXY)")
	}
	return readProxyV1(r)
}

func readProxyV1(r *bufio.Reader) (net.Addr, error) {
	var line []byte
	for len(line) < 107 { // the longest v1 header
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		line = append(line, b)
		if bytes.HasSuffix(line, []byte("\r\n")) {
			break
		}
	}
	f := strings.Fields(string(line))
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return nil, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") || !bytes.HasSuffix(line, []byte("\r\n")) {
		return nil, fmt.Errorf("invalid v1 header %q", line)
	}
	ip, err := netip.ParseAddr(f[2])
	port, perr := strconv.ParseUint(f[4], 10, 16)
	if err != nil || perr != nil {
		return nil, fmt.Errorf("invalid v1 source %q %q", f[2], f[4])
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))), nil
}

func readProxyV2(r *bufio.Reader) (net.Addr, error) {
	var h [16]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	verCmd, fam, n := h[12], h[13], int(binary.BigEndian.Uint16(h[14:16]))
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	if verCmd>>4 != 2 {
		return nil, fmt.Errorf("v2 header of version %d", verCmd>>4)
	}
	if verCmd&0xf == 0 { // LOCAL: the proxy's own connection
		return nil, nil
	}
	switch {
	case fam>>4 == 1 && n >= 12: // AF_INET
		ip := netip.AddrFrom4([4]byte(body[0:4]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[8:10]))), nil
	case fam>>4 == 2 && n >= 36: // AF_INET6
		ip := netip.AddrFrom16([16]byte(body[0:16]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[32:34]))), nil
	}
	return nil, nil // AF_UNIX or unspecified: keep the peer's address
}
