// Package chserver is the ClickHouse server (or cluster) engine: the same SQL
// as the embedded engine (package store), run by a ClickHouse server through
// github.com/ClickHouse/clickhouse-go/v2.
//
// Why the driver's HTTP protocol, not the native one. The store hands an
// engine RowBinary bytes to insert and wants JSONEachRow lines back
// (store.Engine). Over HTTP the driver moves exactly those bytes
// (InsertFormat, QueryFormat) and the server parses and formats them with the
// same code as the embedded engine, so this adapter converts nothing and
// every test of the store's encoder and decoders covers both engines. The
// native protocol only carries Native blocks: inserts would need a second,
// columnar encoder of every row (or a RowBinary decoder here), and reads a
// client-side JSON formatter whose output would have to match the server's
// byte for byte. RowBinary is also the embedded engine's fastest input
// (380k-610k rows/s on 2 cores, DESIGN.md). The driver still does what is
// not SQL: several addresses with failover, TLS, credentials, pooling,
// compression, and the server's exception codes (errors.go).
package chserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/flowlog/flowlog"
)

// Config says which server or cluster to use.
type Config struct {
	// URL of the server's HTTP interface, with every replica or server to
	// fail over to, credentials and driver options:
	// https://user:pass@ch1:8443,ch2:8443?dial_timeout=5s. Any other query
	// parameter is sent as a ClickHouse setting with every statement (for
	// example insert_quorum=2). The database is the store's (--database),
	// not part of the URL.
	URL string
	// Cluster names the cluster (remote_servers in the server's config)
	// when the store runs in cluster mode (store.Options.Cluster, same
	// value); empty for a single server.
	Cluster string
	// CAFile is a PEM file of the CA that signed the servers' certificates
	// (https URLs only); empty: the system's roots.
	CAFile string
	// TLS, when set, replaces the TLS configuration derived from the URL
	// and CAFile (for embedding programs and tests).
	TLS *tls.Config
	// Conns bounds the open connections (DefaultConns when 0).
	Conns int
}

// DefaultConns is the pool size when Config.Conns is 0: the insert
// writers, the rollup job and the API's queries each hold one at a time.
const DefaultConns = 8

// DefaultReadTimeout bounds the wait for a statement's answer unless the URL
// says otherwise (read_timeout=30m). Over HTTP the server answers a query
// only once it is complete (wait_end_of_query), and a rollup recomputes a
// whole day of flows in one INSERT ... SELECT: minutes on a large mesh, so
// the driver's 5 minutes are too short.
const DefaultReadTimeout = time.Hour

// MinServer is the oldest server release the schema and settings are
// written for (24.8 LTS: distributed_foreground_insert, the default
// replication path with {uuid}, insert_deduplication_token on Distributed).
var MinServer = [2]uint64{24, 8}

// Engine runs the store's SQL on a ClickHouse server. It implements
// store.Engine.
type Engine struct {
	conn    driver.Conn
	cluster string
	// reads bounds the statements outside the ingest (queries, the rollup
	// job) to half the pool: however many or slow, they leave the rest to
	// the group commits (flowlog.IngestContext), as the embedded engine's
	// reserved connections do.
	reads chan struct{}
}

// Open connects to the first address of the URL that answers and checks
// the server (version, cluster).
func Open(ctx context.Context, c Config) (*Engine, error) {
	opt, err := options(c)
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse %s: %w", redact(c.URL), err)
	}
	e := &Engine{conn: conn, cluster: c.Cluster, reads: make(chan struct{}, max(1, opt.MaxOpenConns/2))}
	if err := e.check(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ClickHouse %s: %w", redact(c.URL), err)
	}
	return e, nil
}

// options turns a Config into the driver's options; every mistake in the
// URL is reported here, before any connection.
func options(c Config) (*clickhouse.Options, error) {
	if c.URL == "" {
		return nil, errors.New("ClickHouse URL is empty")
	}
	scheme, rest, _ := strings.Cut(c.URL, "://")
	switch scheme {
	case "http", "https":
	default:
		return nil, fmt.Errorf("ClickHouse URL %s: scheme %q: flowlog speaks to ClickHouse's HTTP interface: "+
			"use http://host:8123 or https://host:8443 (several hosts: https://h1:8443,h2:8443)", redact(c.URL), scheme)
	}
	secure := scheme == "https"
	dsn := c.URL
	// The driver takes TLS from secure=true; the scheme says it already.
	if secure && !strings.Contains(rest, "secure=") {
		sep := "?"
		if strings.Contains(rest, "?") {
			sep = "&"
		}
		dsn += sep + "secure=true"
	}
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse URL %s: %w", redact(c.URL), err)
	}
	if opt.Auth.Database != "" {
		return nil, fmt.Errorf("ClickHouse URL %s: database %q: the database is the store's setting (--database), not part of the URL", redact(c.URL), opt.Auth.Database)
	}
	for _, a := range opt.Addr {
		if _, port, ok := strings.Cut(a, ":"); !ok || port == "" {
			return nil, fmt.Errorf("ClickHouse URL %s: address %q has no port (8123 for http, 8443 for https)", redact(c.URL), a)
		}
	}
	if c.CAFile != "" {
		if !secure {
			return nil, fmt.Errorf("ClickHouse CA file %s given for an http:// URL: use https://", c.CAFile)
		}
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ClickHouse CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ClickHouse CA file %s: no PEM certificate in it", c.CAFile)
		}
		opt.TLS.RootCAs = pool
	}
	if c.TLS != nil {
		opt.TLS = c.TLS
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = DefaultReadTimeout
	}
	opt.MaxOpenConns = c.Conns
	if opt.MaxOpenConns <= 0 {
		opt.MaxOpenConns = DefaultConns
	}
	opt.MaxIdleConns = opt.MaxOpenConns
	// In cluster mode every INSERT goes through a Distributed table: send
	// the rows to their shard before answering (not from a local queue
	// later), so that a returned insert is committed where readers look;
	// an ack promises that.
	for k, v := range sessionSettings(c.Cluster) {
		opt.Settings[k] = v
	}
	return opt, nil
}

// sessionSettings apply to every statement.
func sessionSettings(cluster string) clickhouse.Settings {
	s := clickhouse.Settings{}
	if cluster != "" {
		s["distributed_foreground_insert"] = 1
	}
	return s
}

// check refuses a server too old for the schema, or a cluster name the
// server does not know.
func (e *Engine) check(ctx context.Context) error {
	if err := e.conn.Ping(ctx); err != nil {
		return classify("connecting", err)
	}
	v, err := e.conn.ServerVersion()
	if err != nil {
		return classify("reading the server version", err)
	}
	if v.Version.Major < MinServer[0] || v.Version.Major == MinServer[0] && v.Version.Minor < MinServer[1] {
		return fmt.Errorf("server version %d.%d is older than %d.%d, the oldest flowlog's schema is written for",
			v.Version.Major, v.Version.Minor, MinServer[0], MinServer[1])
	}
	if e.cluster == "" {
		return nil
	}
	out, err := e.QueryJSON(ctx, "SELECT count() AS n FROM system.clusters WHERE cluster = "+quote(e.cluster))
	if err != nil {
		return err
	}
	if bytes.Equal(bytes.TrimSpace(out), []byte(`{"n":0}`)) || bytes.Equal(bytes.TrimSpace(out), []byte(`{"n":"0"}`)) {
		return fmt.Errorf("cluster %q is not defined on this server (system.clusters; remote_servers in its config)", e.cluster)
	}
	return nil
}

// read takes one of the connections statements outside the ingest may
// hold; release gives it back. The ingest's statements pass.
func (e *Engine) read(ctx context.Context) (release func(), err error) {
	if flowlog.IsIngest(ctx) || e.reads == nil {
		return func() {}, nil
	}
	select {
	case e.reads <- struct{}{}:
		return func() { <-e.reads }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Exec runs a statement whose output is not needed.
func (e *Engine) Exec(ctx context.Context, sql string) error {
	release, err := e.read(ctx)
	if err != nil {
		return err
	}
	defer release()
	return classify("statement", e.conn.Exec(ctx, sql))
}

// querySettings: the server buffers the whole result before answering, so a
// query that fails halfway is an error here, not a truncated answer.
var querySettings = clickhouse.Settings{"wait_end_of_query": 1}

// defaultMaxQuerySize is the server's default max_query_size.
const defaultMaxQuerySize = 256 << 10

// settingsFor are the settings of the query sql: querySettings, and for a
// query longer than the default max_query_size (the store's identity
// lookup carries its keys in the query) its length. The store says so in
// the query's SETTINGS too, which some releases read only after parsing
// it (ClickHouse#66215, 24.5); an HTTP parameter applies before parsing
// on every release, and goes with the query to the shards of a
// Distributed table.
func settingsFor(sql string) clickhouse.Settings {
	if len(sql) <= defaultMaxQuerySize {
		return querySettings
	}
	s := clickhouse.Settings{"max_query_size": len(sql) + 1}
	for k, v := range querySettings {
		s[k] = v
	}
	return s
}

// QueryJSON runs a SELECT and returns its rows as JSONEachRow lines.
func (e *Engine) QueryJSON(ctx context.Context, sql string) ([]byte, error) {
	release, err := e.read(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(settingsFor(sql)))
	r, err := e.conn.QueryFormat(ctx, "JSONEachRow", sql)
	if err != nil {
		return nil, classify("query", err)
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, classify("reading a query's result", err)
	}
	return out, nil
}

// Insert inserts data in an input format (Native for flows, RowBinary for
// rejected events) into the columns given, in that order. The server's
// HTTP interface parses the same bytes the embedded engine does.
func (e *Engine) Insert(ctx context.Context, table, columns, format string, data []byte) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(insertSettings(table, columns, data)))
	err := e.conn.InsertFormat(ctx, format, "INSERT INTO "+table+" ("+columns+")", bytes.NewReader(data))
	return classify("insert into "+table, err)
}

// insertSettings: an insert is deduplicated by its content. The same rows
// sent again to the same table (a retry of this insert after an answer was
// lost, by this collector or, through failover, another replica) are
// dropped by the replicated table instead of stored twice. The token is
// the hash of exactly what is inserted, so two different batches never
// share one. Envelopes an agent resends to another collector land in a
// different batch, so in another block: those rows collapse by the
// table's key instead (ReplacingMergeTree, same shard by the sharding key).
func insertSettings(table, columns string, rows []byte) clickhouse.Settings {
	h := sha256.New()
	for _, p := range []string{table, "\x00", columns, "\x00"} {
		h.Write([]byte(p))
	}
	h.Write(rows)
	return clickhouse.Settings{
		"optimize_on_insert":         0, // the store's reads merge (store.Engine)
		"insert_deduplicate":         1,
		"insert_deduplication_token": "flowlog-" + hex.EncodeToString(h.Sum(nil)[:16]),
	}
}

// Close closes the connections.
func (e *Engine) Close() error { return e.conn.Close() }

// quote makes a ClickHouse string literal (the store's rule: backslash and
// quote escaped, every other byte as is).
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// redact hides the password of a URL for messages.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	at := strings.Index(rest, "@")
	if slash := strings.IndexAny(rest, "/?"); at < 0 || slash >= 0 && slash < at {
		return raw
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return raw
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
