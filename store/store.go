// Package store is flowlog's ClickHouse SQL, shared by both engines: schema
// and migrations, RowBinary insert encoding, and the merged-read queries.
// An Engine (embedded chDB in store/chdb, or a ClickHouse server) only runs
// statements and moves bytes.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/flowlog/flowlog"
)

// Engine runs ClickHouse SQL. Both engines speak the same dialect.
type Engine interface {
	Exec(ctx context.Context, sql string) error
	// QueryJSON returns the rows of a SELECT as JSONEachRow lines.
	QueryJSON(ctx context.Context, sql string) ([]byte, error)
	// Insert inserts data in the given input format (Native for flows,
	// RowBinary for rejected events) into the columns given, in that order.
	// Rows are written as sent, not collapsed by key within the insert
	// (optimize_on_insert = 0): every read of flows merges by key anyway
	// (FINAL or argMax), and collapsing on insert cost about a fifth of an
	// insert's CPU (BENCHMARKS.md, "Ingest across this round's merges").
	Insert(ctx context.Context, table, columns, format string, data []byte) error
	Close() error
}

// Options configure a Store.
type Options struct {
	Database  string        // default "flowlog"; tests isolate by database
	Retention time.Duration // TTL of flows and rejected events; default 30 days
	// RollupEvery is how often a background job recomputes the rollups of
	// the days that changed (DefaultRollupEvery is a good value); zero or
	// negative: no job (aggregates stay exact, reading raw flows for every
	// day not rolled up; Rollup can be called by hand).
	RollupEvery time.Duration
	Logger      *slog.Logger // for the background job; default slog.Default()

	// Limits of one read query, ClickHouse's own (max_execution_time,
	// max_memory_usage, max_rows_to_read): a query past one is stopped and
	// answered with ErrQueryLimit. Zero takes the default; negative: none.
	MaxQueryTime   time.Duration // default DefaultMaxQueryTime
	MaxQueryMemory int64         // bytes; default DefaultMaxQueryMemory
	MaxQueryRows   int64         // rows read; default DefaultMaxQueryRows
	// MaxOffset bounds how deep a listing page may start by offset (page x
	// per_page); deeper ones are refused with ErrPageTooDeep, pointing to
	// cursor paging. Default DefaultMaxOffset; negative: none.
	MaxOffset int
	// Cluster names the ClickHouse cluster the schema is created on
	// (replicated local tables behind Distributed ones, cluster.go); empty:
	// one server, or the embedded engine.
	Cluster string
	// StaleAfter: an open flow with no event for longer than this is stale,
	// not active (the agent that would close it is gone, or lost its
	// DESTROY). Zero: DefaultStaleAfter.
	StaleAfter time.Duration
	// PeerSkew: two observations of one connection (one from each end)
	// match when their starts are at most this far apart (the two hosts'
	// clocks differ). Zero: DefaultPeerSkew.
	PeerSkew time.Duration
	// Now is the clock deciding staleness; default time.Now (tests set it).
	Now func() time.Time
}

// Defaults of the query limits: far above what an interactive read takes
// (milliseconds to seconds at 10M flows, BENCHMARKS.md).
const (
	DefaultMaxQueryTime   = time.Minute
	DefaultMaxQueryMemory = 2 << 30
	DefaultMaxQueryRows   = 10_000_000_000
	DefaultMaxOffset      = 100_000
)

// DefaultStaleAfter outlasts conntrack's timeout for established TCP
// connections (nf_conntrack_tcp_timeout_established, 5 days): by then the
// kernel has ended any idle flow, so its DESTROY was lost.
const DefaultStaleAfter = 6 * 24 * time.Hour

// DefaultPeerSkew tolerates hosts whose clocks differ by a few seconds
// (NTP keeps them within milliseconds; a host without it drifts further).
const DefaultPeerSkew = 5 * time.Second

// DefaultRetention is how long flows are kept unless configured.
const DefaultRetention = 30 * 24 * time.Hour

// Store implements flowlog.Store on an Engine.
type Store struct {
	eng       Engine
	db        string    // quoted database name, ready for SQL
	buf       sync.Pool // *rowBinary, for rejected events
	blocks    blockPool // flow events' columns, kept for the next inserts
	retention time.Duration
	cluster   string           // Options.Cluster
	owner     string           // this store among collectors sharing a server (claim.go)
	opened    int64            // when it opened (now, Unix ns): claims older are a gone process's (claim.go)
	now       func() time.Time // Options.Now: staleness, inserted_at, rollup claims

	clock struct { // see stamp
		sync.Mutex
		last int64
	}
	rollupMu sync.Mutex    // one Rollup pass at a time
	slack    time.Duration // rollupClockSlack; tests set 0
	// sliceRows: rollupSliceRows; tests set less (rollup.go, "Slices")
	sliceRows int64
	// hoursFromRaw: flows_1h read from the raw flows even when flows_1m
	// was written (rollup.go, hoursOfMinutesSQL); tests set it, to compare
	hoursFromRaw bool
	stop         chan struct{} // closed by Close: ends the rollup job
	jobs         sync.WaitGroup
	closing      sync.Once

	// Test and benchmark switches (export_test.go): force the raw or the
	// rollup path of the aggregates, and the merged read (FINAL or argMax).
	path  readPath
	merge mergeMode

	readSettings string // SETTINGS of every SELECT: querySettings and the limits
	// rollupSettings: SETTINGS of the rollup job's statements (rollupLimits)
	rollupSettings string
	maxOffset      int      // 0: none
	ident          registry // flows being inserted (identity.go)
	marks          *marks   // days this Store marked dirty lately (dirty.go)
	staleAfter     time.Duration
	peerSkew       time.Duration
}

var (
	_ flowlog.Store      = (*Store)(nil)
	_ flowlog.Aggregator = (*Store)(nil)
)

// OpenEngine opens the flowlog schema on an engine already open: it
// migrates the schema (idempotent) and applies the retention. Open picks and
// opens the engine from a Config.
func OpenEngine(ctx context.Context, eng Engine, o Options) (*Store, error) {
	if o.Database == "" {
		o.Database = "flowlog"
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.PeerSkew <= 0 {
		o.PeerSkew = DefaultPeerSkew
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{eng: eng, db: ident(o.Database), retention: o.Retention, cluster: o.Cluster, owner: newOwner(), now: o.Now, opened: o.Now().UnixNano(),
		slack: rollupClockSlack, sliceRows: rollupSliceRows, stop: make(chan struct{}), staleAfter: o.StaleAfter, peerSkew: o.PeerSkew.Truncate(time.Millisecond)}
	if s.peerSkew <= 0 {
		s.peerSkew = time.Millisecond
	}
	s.readSettings, s.maxOffset = o.limits()
	s.rollupSettings = o.rollupLimits()
	s.marks = newMarks(eng, o.Cluster)
	s.buf.New = func() any { return &rowBinary{} }
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	if err := s.applyRetention(ctx, o.Retention); err != nil {
		return nil, err
	}
	if err := s.seedClock(ctx); err != nil {
		return nil, err
	}
	if o.RollupEvery > 0 {
		log := o.Logger
		if log == nil {
			log = slog.Default()
		}
		s.jobs.Add(1)
		go s.rollupLoop(o.RollupEvery, log, s.stop, &s.jobs)
	}
	return s, nil
}

// Insert writes the batch's valid events and its rejected events. Each insert
// is durable when it returns (fsync_after_insert) and idempotent under retry
// (ReplacingMergeTree keys), so a failure in either is safe to retry whole.
// It gives each event its flow's start first (identity.go), in place: the
// caller's events then show what was stored (the live tail does).
func (s *Store) Insert(ctx context.Context, b *flowlog.Batch) error {
	ctx = flowlog.IngestContext(ctx) // on the engine's capacity reserved for the ingest
	if len(b.Events) > 0 {
		// Every event gets its flow's start first (identity.go); the batch
		// stays visible to other batches' lookups until its rows are.
		now := s.now()
		p, err := s.resolve(ctx, b.Events, now)
		if err != nil {
			return err
		}
		blk := s.blocks.get()
		data, err := blk.encode(b.Events, now)
		if err == nil {
			err = s.eng.Insert(ctx, s.db+".flows", flowColumns, "Native", data)
		}
		s.blocks.put(blk)
		s.release(p, err == nil)
		if err != nil {
			return fmt.Errorf("inserting %d flow events: %w", len(b.Events), err)
		}
		// After the rows, before returning (and so before any ack): the
		// rollups of these days are stale until recomputed (rollup.go).
		if err := s.markDirty(ctx, b.Events); err != nil {
			return err
		}
	}
	if len(b.Rejected) > 0 {
		// Rejected events are few and mostly unique strings: RowBinary
		// costs them nothing worth a second columnar encoder.
		w := s.buf.Get().(*rowBinary)
		defer func() { w.b = w.b[:0]; s.buf.Put(w) }()
		for i := range b.Rejected {
			w.rejected(&b.Rejected[i])
		}
		if err := s.eng.Insert(ctx, s.db+".rejected_events", rejectedColumns, "RowBinary", w.b); err != nil {
			return fmt.Errorf("inserting %d rejected events: %w", len(b.Rejected), err)
		}
	}
	return nil
}

// Ping runs a trivial query, on the ingest's capacity: slow queries do not
// make the collector look down while it stores what agents send.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.eng.QueryJSON(flowlog.IngestContext(ctx), "SELECT 1")
	return err
}

// Close stops the rollup job (letting a running pass finish: engine
// statements cannot be interrupted) and closes the engine.
func (s *Store) Close() error {
	s.closing.Do(func() { close(s.stop) })
	s.jobs.Wait()
	return s.eng.Close()
}

// Exec runs a statement as is, for tools and tests (e.g. OPTIMIZE).
func (s *Store) Exec(ctx context.Context, sql string) error { return s.eng.Exec(ctx, sql) }

// Database is the quoted database name, for tools and tests writing SQL.
func (s *Store) Database() string { return s.db }

// querySettings apply to every SELECT.
//
// do_not_merge_across_partitions_select_final: FINAL merges rows within each
// partition only, and skips partitions that are one part already (every day
// but the last few, once merged). A flow's START and DESTROY share their
// partition (the day of start_ts, which both carry), so nothing that should
// collapse is missed; background merges never collapse across partitions
// either. Measured at 10M flows: a listing's first page 2.6 s -> 0.13 s,
// count() FINAL 3.3 s -> 0.04 s (BENCHMARKS.md).
const querySettings = " SETTINGS output_format_json_quote_64bit_integers = 0, do_not_merge_across_partitions_select_final = 1"

// pick is a limit of Options as the engine takes it: v, d for zero (the
// default), 0 for negative (ClickHouse: 0 is no limit).
func pick(v, d int64) int64 {
	switch {
	case v == 0:
		return d
	case v < 0:
		return 0
	}
	return v
}

// limits renders the query limits as SETTINGS (appended to querySettings)
// and the offset bound (0: none).
func (o Options) limits() (settings string, maxOffset int) {
	secs := pick(int64(o.MaxQueryTime/time.Second), int64(DefaultMaxQueryTime/time.Second))
	if o.MaxQueryTime > 0 && secs == 0 {
		secs = 1
	}
	settings = fmt.Sprintf("%s, max_execution_time = %d, max_memory_usage = %d, max_rows_to_read = %d",
		querySettings, secs, pick(o.MaxQueryMemory, DefaultMaxQueryMemory), pick(o.MaxQueryRows, DefaultMaxQueryRows))
	return settings, int(pick(int64(o.MaxOffset), DefaultMaxOffset))
}

// rollupLimits renders the memory bound of the rollup job's statements:
// the API's per-query bound, with aggregation state spilled to disk past
// half of it. A recomputation reads a day in slices of hosts (rollup.go,
// "Slices": a pass over a day of 10M flows takes the collector ~0.2 GiB
// above where it was, where one statement a day took 0.6-0.8 GiB,
// BENCHMARKS.md "Rollup pass memory"), but one host's flows are one slice,
// and past rollupMaxSlices slices grow with the day. A statement over the
// bound fails, the day stays dirty, and readers read it raw: exact,
// slower, and the collector keeps running.
func (o Options) rollupLimits() string {
	m := pick(o.MaxQueryMemory, DefaultMaxQueryMemory)
	if m == 0 {
		return ""
	}
	return fmt.Sprintf(" SETTINGS max_memory_usage = %d, max_bytes_before_external_group_by = %d", m, m/2)
}

// queryLimitCodes are the engine's errors for a query over a limit of
// Options: TIMEOUT_EXCEEDED, TOO_MANY_ROWS, MEMORY_LIMIT_EXCEEDED.
var queryLimitCodes = []string{"Code: 159.", "Code: 158.", "Code: 241."}

// defaultMaxQuerySize is the engines' default max_query_size: the longest
// query text they parse.
const defaultMaxQuerySize = 256 << 10

// queryRows runs a SELECT and decodes each JSONEachRow line into *dst (a
// pointer to a slice of structs).
func (s *Store) queryRows(ctx context.Context, sql string, dst any) error {
	sql += s.readSettings
	if len(sql) > defaultMaxQuerySize {
		// A query that carries its data (the identity lookup's keys) says
		// it may be as long as it is (the setting's digits included).
		sql += fmt.Sprintf(", max_query_size = %d", len(sql)+40)
	}
	out, err := s.eng.QueryJSON(ctx, sql)
	if err != nil {
		for _, c := range queryLimitCodes {
			if strings.Contains(err.Error(), c) {
				return fmt.Errorf("%w: the query was stopped: %v; narrow the time range or the filters, or retry later", flowlog.ErrQueryLimit, err)
			}
		}
		return err
	}
	// JSONEachRow is one object per line; wrapping it as an array lets one
	// Unmarshal fill the slice.
	var arr bytes.Buffer
	arr.Grow(len(out) + 2)
	arr.WriteByte('[')
	arr.Write(bytes.ReplaceAll(bytes.TrimSpace(out), []byte("}\n{"), []byte("},{")))
	arr.WriteByte(']')
	if err := json.Unmarshal(arr.Bytes(), dst); err != nil {
		return fmt.Errorf("decoding query result: %w", err)
	}
	return nil
}

// QueryRows is queryRows for tools and tests that need their own SELECT.
func (s *Store) QueryRows(ctx context.Context, sql string, dst any) error {
	return s.queryRows(ctx, sql, dst)
}

// quote makes a ClickHouse string literal. Backslash escapes are the
// dialect's; every byte else (NUL included, queries are length-delimited)
// passes as is.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// ident quotes an identifier with backquotes.
func ident(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}
