package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// migration is one versioned step of the schema. Steps are applied in order,
// once, and recorded in schema_migrations; every statement is also written to
// be harmless when repeated (IF NOT EXISTS), so a crash between a step and its
// record is safe.
type migration struct {
	version int
	name    string
	stmts   []string // {db} is replaced by the quoted database name
	// fn, when set, runs after stmts; like them it must be safe to repeat.
	fn func(ctx context.Context, s *Store) error
}

// Column lists shared by the schema, the encoder and the queries.
const flowColumns = "event_type, flow_id, host_id, host_name, network_id, protocol, src_port, dst_port, " +
	"icmp_type, icmp_code, direction, src_ip, src_type, src_entity_id, src_entity_name, " +
	"dst_ip, dst_type, dst_entity_id, dst_entity_name, start_ts, end_ts, " +
	"bytes_sent, bytes_recv, packets_sent, packets_recv, status, version, end_approx, inserted_at, " +
	"src_asn, src_as_name, src_country, dst_asn, dst_as_name, dst_country"

// flowColumnsV1 are the columns of migration 1's flows table.
const flowColumnsV1 = "event_type, flow_id, host_id, host_name, network_id, protocol, src_port, dst_port, " +
	"icmp_type, icmp_code, direction, src_ip, src_type, src_entity_id, src_entity_name, " +
	"dst_ip, dst_type, dst_entity_id, dst_entity_name, start_ts, end_ts, " +
	"bytes_sent, bytes_recv, packets_sent, packets_recv, status, version"

const rejectedColumns = "received_at, peer, host_id, idx, reason, event, reason_class"

const participantEnum = "Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5)"

// migrations: append only. Never edit a step that has shipped.
var migrations = []migration{
	{1, "flows and rejected_events", []string{
		// Why this shape (docs/design.md, pitfalls 1 and 4):
		//  - ReplacingMergeTree(version) with version NOT in the sorting key, so a
		//    flow's START and DESTROY rows collapse to the higher version, and a
		//    retried row collapses with its twin;
		//  - partitioned by the day of start_ts, which START and DESTROY share, so
		//    both rows land in the same partition and time ranges prune partitions;
		//  - the sorting key identifies a flow (not its start time) so the rows
		//    collapse even if an agent's DESTROY carries a slightly different
		//    start_ts than its START within the same day;
		//  - IPv6 holds both families (IPv4 as ::ffff:a.b.c.d): 16 fixed bytes,
		//    comparable, CIDR-searchable; the API prints IPv4 back as a.b.c.d;
		//  - retention is a TTL (set from --retention at start), not a drop loop;
		//  - fsync on insert: an ack promises the rows survive a crash.
		`CREATE TABLE IF NOT EXISTS {db}.flows (
			event_type Enum8('start' = 1, 'destroy' = 2),
			flow_id String,
			host_id LowCardinality(String),
			host_name LowCardinality(String),
			network_id LowCardinality(String),
			protocol UInt8,
			src_port UInt16,
			dst_port UInt16,
			icmp_type UInt8,
			icmp_code UInt8,
			direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
			src_ip IPv6,
			src_type ` + participantEnum + `,
			src_entity_id LowCardinality(String),
			src_entity_name LowCardinality(String),
			dst_ip IPv6,
			dst_type ` + participantEnum + `,
			dst_entity_id LowCardinality(String),
			dst_entity_name LowCardinality(String),
			start_ts DateTime64(3, 'UTC'),
			end_ts DateTime64(3, 'UTC') COMMENT 'epoch (0) while the flow is active',
			bytes_sent UInt64,
			bytes_recv UInt64,
			packets_sent UInt64,
			packets_recv UInt64,
			status UInt32,
			version Int64,
			inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
		) ENGINE = ReplacingMergeTree(version)
		PARTITION BY toDate(start_ts)
		ORDER BY (network_id, host_id, flow_id)
		TTL toDateTime(start_ts) + toIntervalSecond(2592000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Rejected events are kept, with why, so nothing an agent sent is lost.
		// A retried envelope re-sends its rejects: the key (host, reason, event)
		// collapses those twins.
		`CREATE TABLE IF NOT EXISTS {db}.rejected_events (
			received_at DateTime64(3, 'UTC'),
			peer String,
			host_id LowCardinality(String),
			idx UInt32,
			reason String,
			event String
		) ENGINE = ReplacingMergeTree
		PARTITION BY toDate(received_at)
		ORDER BY (host_id, reason, cityHash64(event))
		TTL toDateTime(received_at) + toIntervalSecond(2592000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
	}, nil},
	{2, "rollups at 1 minute and 1 hour", []string{
		// Rollups: flows summed per time bucket (by start) and per dimension,
		// with their own TTLs (Rollup1mTTL: 7 days, shorter than the raw
		// flows' 30; Rollup1hTTL: 365 days, longer, so long ranges stay
		// answerable). They are recomputed by Store.Rollup, one day
		// partition of flows at a time, from the merged view (FINAL), never
		// fed by insert-triggered materialized views: those see every inserted
		// block, so a retried envelope or a START followed by its DESTROY
		// would be counted twice (see rollup.go for the whole argument).
		//
		// Each recomputation of a day writes that day's complete set of rows
		// under a new generation `gen`; rollup_days names, per day, the
		// generation readers use. ReplacingMergeTree(gen) lets merges drop
		// the rows of older generations.
		// TTL: Rollup1mTTL, 7 days.
		`CREATE TABLE IF NOT EXISTS {db}.flows_1m (` + rollupColumnsV2 + `)
		ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toDate(bucket)
		ORDER BY (` + rollupKeyV2 + `)
		TTL bucket + toIntervalSecond(604800)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// TTL: Rollup1hTTL, 365 days.
		`CREATE TABLE IF NOT EXISTS {db}.flows_1h (` + rollupColumnsV2 + `)
		ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(bucket)
		ORDER BY (` + rollupKeyV2 + `)
		TTL bucket + toIntervalSecond(31536000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Which days changed: Store.Insert writes (day, stamp) for every day
		// partition a batch touched, after the flows are committed and before
		// it returns (so before the ack). One row per day survives merges.
		`CREATE TABLE IF NOT EXISTS {db}.rollup_dirty (
			day Date,
			marked Int64
		) ENGINE = ReplacingMergeTree(marked)
		ORDER BY day
		TTL day + toIntervalDay(400)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Which generation of each day's rollup rows is complete, and up to
		// which dirty stamp it covers: a day is clean when its latest mark is
		// <= covers. Written after the rollup rows; the latest stamp wins.
		`CREATE TABLE IF NOT EXISTS {db}.rollup_days (
			day Date,
			gen Int64,
			covers Int64,
			stamp Int64
		) ENGINE = ReplacingMergeTree(stamp)
		ORDER BY day
		TTL day + toIntervalDay(400)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Flows stored before this migration: every day is dirty once.
		`INSERT INTO {db}.rollup_dirty (day, marked)
		SELECT DISTINCT toDate(start_ts), toUnixTimestamp64Nano(now64(9)) FROM {db}.flows`,
	}, nil},
	{3, "flow identity by start; one count per connection", nil, migrateV3},
	{4, "several collectors: rollup claims, insertion-time index", []string{
		// Several collectors share one server: each change of a day is
		// recomputed by the one whose claim landed (claim.go). The
		// deduplication window makes a second claim of one round a no-op
		// (replicated tables deduplicate by default, through Keeper).
		`CREATE TABLE IF NOT EXISTS {db}.rollup_claims (
			day Date,
			marked Int64,
			owner String,
			claimed Int64
		) ENGINE = MergeTree
		ORDER BY (day, marked)
		TTL toDateTime(intDiv(claimed, 1000000000)) + toIntervalDay(1)
		SETTINGS non_replicated_deduplication_window = 10000`,
		// Store.Follow reads the rows inserted in the last seconds: a minmax
		// index on inserted_at skips every granule written before (parts
		// written before this step get it as they are merged).
		`ALTER TABLE {db}.flows ADD INDEX IF NOT EXISTS inserted_at_minmax inserted_at TYPE minmax GRANULARITY 1`,
	}, nil},
	{5, "rejected_events.reason_class", []string{
		// The class of the reason (ingest.Reason*), so the API can filter
		// rejected events by kind; rows from before it read 'other'.
		`ALTER TABLE {db}.rejected_events ADD COLUMN IF NOT EXISTS reason_class LowCardinality(String) DEFAULT 'other'`,
	}, nil},
	{6, "the network of external endpoints", []string{
		// AS number and name, country (ISO 3166 alpha-2) of external
		// endpoints, named by the collector at ingest (package ipdb); empty
		// for mesh participants and for flows stored before this step.
		// Raw flows only: the rollups do not carry them.
		`ALTER TABLE {db}.flows ADD COLUMN IF NOT EXISTS src_asn UInt32,
			ADD COLUMN IF NOT EXISTS src_as_name LowCardinality(String),
			ADD COLUMN IF NOT EXISTS src_country LowCardinality(String),
			ADD COLUMN IF NOT EXISTS dst_asn UInt32,
			ADD COLUMN IF NOT EXISTS dst_as_name LowCardinality(String),
			ADD COLUMN IF NOT EXISTS dst_country LowCardinality(String)`,
	}, nil},
	{7, "rollups: bytes spread over the lifetime of flows", []string{
		// Time series spread a flow's bytes and packets over its lifetime
		// (aggregate.go spreadSQL); top talkers and the matrix keep counting
		// them in the bucket of the flow's start (bytes, packets). Rows
		// written before read their bytes by start: days whose raw flows
		// expired cannot be recomputed, and that is what was known of them.
		`ALTER TABLE {db}.flows_1m ADD COLUMN IF NOT EXISTS spread_bytes UInt64 DEFAULT bytes COMMENT 'bytes that flowed in the bucket, spread evenly over the lifetime of each flow',
			ADD COLUMN IF NOT EXISTS spread_packets UInt64 DEFAULT packets`,
		`ALTER TABLE {db}.flows_1h ADD COLUMN IF NOT EXISTS spread_bytes UInt64 DEFAULT bytes COMMENT 'bytes that flowed in the bucket, spread evenly over the lifetime of each flow',
			ADD COLUMN IF NOT EXISTS spread_packets UInt64 DEFAULT packets`,
		// Every day still in the raw flows is recomputed once.
		`INSERT INTO {db}.rollup_dirty (day, marked)
		SELECT DISTINCT toDate(start_ts), toUnixTimestamp64Nano(now64(9)) FROM {db}.flows`,
	}, nil},
	{8, "ZSTD(1) on the flows' columns", []string{
		// LZ4 (the default) left flows at ~118 bytes a merged row; ZSTD(1)
		// makes it ~87 (BENCHMARKS.md, "Storage footprint per flow"). New
		// parts are written with it, old parts as they are merged.
		`ALTER TABLE {db}.flows MODIFY COLUMN flow_id CODEC(ZSTD(1)),
			MODIFY COLUMN host_id CODEC(ZSTD(1)),
			MODIFY COLUMN host_name CODEC(ZSTD(1)),
			MODIFY COLUMN network_id CODEC(ZSTD(1)),
			MODIFY COLUMN src_entity_id CODEC(ZSTD(1)),
			MODIFY COLUMN src_entity_name CODEC(ZSTD(1)),
			MODIFY COLUMN dst_entity_id CODEC(ZSTD(1)),
			MODIFY COLUMN dst_entity_name CODEC(ZSTD(1)),
			MODIFY COLUMN src_ip CODEC(ZSTD(1)),
			MODIFY COLUMN dst_ip CODEC(ZSTD(1)),
			MODIFY COLUMN start_ts CODEC(ZSTD(1)),
			MODIFY COLUMN end_ts CODEC(ZSTD(1)),
			MODIFY COLUMN bytes_sent CODEC(ZSTD(1)),
			MODIFY COLUMN bytes_recv CODEC(ZSTD(1)),
			MODIFY COLUMN packets_sent CODEC(ZSTD(1)),
			MODIFY COLUMN packets_recv CODEC(ZSTD(1)),
			MODIFY COLUMN status CODEC(ZSTD(1)),
			MODIFY COLUMN version CODEC(ZSTD(1)),
			MODIFY COLUMN inserted_at CODEC(ZSTD(1)),
			MODIFY COLUMN src_as_name CODEC(ZSTD(1)),
			MODIFY COLUMN dst_as_name CODEC(ZSTD(1)),
			MODIFY COLUMN src_country CODEC(ZSTD(1)),
			MODIFY COLUMN dst_country CODEC(ZSTD(1)),
			MODIFY COLUMN src_asn CODEC(ZSTD(1)),
			MODIFY COLUMN dst_asn CODEC(ZSTD(1))`,
	}, nil},
	{9, "agents: which agent and wire generation each host runs", []string{
		// One row per (network, host, generation), the latest sighting
		// winning: collectors write a sighting once per stream (and hourly
		// on a long one), never per envelope, so the table stays as small
		// as the mesh (agents.go). Kept like the rollups' bookkeeping:
		// hosts are listed from the flows, so an old sighting shows only
		// while its host's flows are kept.
		`CREATE TABLE IF NOT EXISTS {db}.agents (
			network_id String,
			host_id String,
			generation LowCardinality(String),
			agent String,
			last_seen DateTime64(3, 'UTC')
		) ENGINE = ReplacingMergeTree(last_seen)
		ORDER BY (network_id, host_id, generation)
		TTL toDateTime(last_seen) + toIntervalDay(400)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
	}, nil},
	{10, "rollups at the grain of the page's aggregates", []string{
		// The aggregates the page asks for most group far coarser than
		// flows_1h (host x src x dst x protocol x direction x hour holds
		// about one flow per row at 10M flows): these tables hold exactly
		// the groups they answer, recomputed with flows_1h, day by day,
		// under the same generation (grains.go). TTL: Rollup1hTTL.
		//
		// Who talks to whom, per day: the matrix, and top participants
		// under filters on participants.
		`CREATE TABLE IF NOT EXISTS {db}.pairs_1d (
			day Date,
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			src_type ` + participantEnum + `,
			src_entity_id LowCardinality(String),
			src_entity_name LowCardinality(String),
			dst_type ` + participantEnum + `,
			dst_entity_id LowCardinality(String),
			dst_entity_name LowCardinality(String),
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(day)
		ORDER BY (day, network_id, shadowed, src_type, src_entity_id, src_entity_name, dst_type, dst_entity_id, dst_entity_name)
		TTL day + toIntervalDay(365)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Each participant per day, as source (side 0) and as destination
		// (side 1): top talkers.
		`CREATE TABLE IF NOT EXISTS {db}.talkers_1d (
			day Date,
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ptype ` + participantEnum + `,
			pid LowCardinality(String),
			pname LowCardinality(String),
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(day)
		ORDER BY (day, network_id, shadowed, side, ptype, pid, pname)
		TTL day + toIntervalDay(365)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Each address per day, per side: top IPs.
		`CREATE TABLE IF NOT EXISTS {db}.addrs_1d (
			day Date,
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ip IPv6,
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(day)
		ORDER BY (day, network_id, shadowed, side, ip)
		TTL day + toIntervalDay(365)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Totals per hour: the time series.
		`CREATE TABLE IF NOT EXISTS {db}.series_1h (
			bucket DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			protocol UInt8,
			direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
			shadowed UInt8,
			flows UInt64 COMMENT 'flows started in the bucket',
			spread_bytes UInt64 COMMENT 'bytes that flowed in the bucket, spread evenly over the lifetime of each flow',
			spread_packets UInt64
		) ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(bucket)
		ORDER BY (bucket, network_id, protocol, direction, shadowed)
		TTL bucket + toIntervalSecond(31536000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Which days' generations include these tables: days rolled up
		// before this step (kept past the raw flows' retention) do not.
		`ALTER TABLE {db}.rollup_days ADD COLUMN IF NOT EXISTS grains UInt8 COMMENT '1: the generation also wrote pairs_1d, talkers_1d, addrs_1d, series_1h'`,
		// Every day still in the raw flows is recomputed once.
		`INSERT INTO {db}.rollup_dirty (day, marked)
		SELECT DISTINCT toDate(start_ts), toUnixTimestamp64Nano(now64(9)) FROM {db}.flows`,
	}, nil},
	{11, "flows: wider merges", []string{
		// Merging the flows' parts took 3.2 of the collector's 8.3 µs an
		// event under the 100-stream bench, most of it writing rows that a
		// later merge writes again. merge_selector_base (5 by default)
		// sets how many parts of a size a merge waits for: at 25 each row
		// is rewritten fewer times, for a few more parts in the partition
		// being written (16 instead of 10 after a 20 s bench): the
		// collector's CPU per event went 7.56 -> 6.74 µs, alternated runs,
		// BENCHMARKS.md "Ingest, round 4". Parts of a partition no longer
		// written are still merged down (the selector lowers the base for
		// old parts), and reads merge parts under FINAL anyway.
		`ALTER TABLE {db}.flows MODIFY SETTING merge_selector_base = 25`,
	}, nil},
	{12, "rollups clean hour by hour", []string{
		// Which hours of a day changed (rollup.go, "Hours"): Store.Insert
		// marks the hours of the starts a batch touched, so the hours of a
		// dirty day that no insert touched since its rollup stay served by
		// it. Replaces rollup_dirty (its day marks are copied to every hour
		// of their day below; the table is no longer written or read).
		`CREATE TABLE IF NOT EXISTS {db}.rollup_marks (
			day Date,
			hour UInt8,
			marked Int64
		) ENGINE = ReplacingMergeTree(marked)
		ORDER BY (day, hour)
		TTL day + toIntervalDay(400)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Top participants and top IPs per hour of start, for the hours of
		// the days talkers_1d and addrs_1d cannot serve: the range's first
		// and last day, and the clean hours of dirty days (today). Kept as
		// long as the raw flows (RollupHourTTL).
		`CREATE TABLE IF NOT EXISTS {db}.talkers_1h (
			hour DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ptype ` + participantEnum + `,
			pid LowCardinality(String),
			pname LowCardinality(String),
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toYYYYMMDD(hour)
		ORDER BY (hour, network_id, shadowed, side, ptype, pid, pname)
		TTL hour + toIntervalSecond(3024000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		`CREATE TABLE IF NOT EXISTS {db}.addrs_1h (
			hour DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ip IPv6,
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toYYYYMMDD(hour)
		ORDER BY (hour, network_id, shadowed, side, ip)
		TTL hour + toIntervalSecond(3024000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// Which days' generations include these tables.
		`ALTER TABLE {db}.rollup_days ADD COLUMN IF NOT EXISTS hours UInt8 COMMENT '1: the generation also wrote talkers_1h, addrs_1h'`,
		// The day marks so far, as marks of each hour of their day.
		`INSERT INTO {db}.rollup_marks (day, hour, marked)
		SELECT day, arrayJoin(range(24)), max(marked) FROM {db}.rollup_dirty GROUP BY day`,
		// Every day still in the raw flows is recomputed once.
		`INSERT INTO {db}.rollup_marks (day, hour, marked)
		SELECT day, arrayJoin(range(24)), toUnixTimestamp64Nano(now64(9)) FROM (SELECT DISTINCT toDate(start_ts) AS day FROM {db}.flows)`,
	}, nil},
	{13, "flows stored in time order", nil, migrateV13},
	{14, "the rollup pass's addresses by host slice", []string{
		// A day's recomputation reads the raw flows in slices of hosts
		// (rollup.go, "Slices"). flows_1m and flows_1h keep the host, so
		// its slices write disjoint rows; addrs_1h and addrs_1d do not (an
		// address is seen by many hosts), so each slice's sums land here
		// and the pass's last statement adds them up (grains.go). Read by
		// that statement only, by generation; nothing here needs to
		// survive a crash (the day stays dirty, the next pass uses a new
		// generation), so no fsync, and rows expire an hour after their
		// generation's stamp (whole parts: the pass that wrote them is over).
		`CREATE TABLE IF NOT EXISTS {db}.addrs_slices (
			gen Int64,
			slice UInt32 COMMENT 'the host slice that summed the row: two slices never send the same block (a replicated table drops a repeated one)',
			hour DateTime('UTC'),
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ip IPv6,
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = MergeTree
		ORDER BY (gen, hour, network_id, shadowed, side, ip)
		TTL toDateTime(intDiv(gen, 1000000000)) + toIntervalHour(1)
		SETTINGS ttl_only_drop_parts = 1, merge_with_ttl_timeout = 3600`,
	}, nil},
	{15, "the time series by hour of start", []string{
		// The bytes that flowed in each hour (bucket), by the hour their
		// flows started in (hour): a bucket's total is the sum over the
		// start hours up to spreadHorizon before it, and each start hour
		// is exact under its own marks, so a series reads raw only the
		// flows of its dirty start hours, not every flow started up to a
		// day before a dirty bucket (grains.go, "By hour of start").
		// Kept as long as series_1h.
		`CREATE TABLE IF NOT EXISTS {db}.series_sh (
			hour DateTime('UTC') COMMENT 'the hour the flows started in',
			bucket DateTime('UTC') COMMENT 'the hour their bytes flowed in',
			gen Int64,
			network_id LowCardinality(String),
			protocol UInt8,
			direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
			shadowed UInt8,
			flows UInt64 COMMENT 'flows started in the hour, in the row of its own bucket (else 0)',
			spread_bytes UInt64 COMMENT 'their bytes that flowed in the bucket, spread evenly over the lifetime of each flow',
			spread_packets UInt64,
			last_end Int64 COMMENT 'the latest end of their lifetimes (Unix ms, spreadSQL): a range ending within the bucket gets all of the row when it ends after it'
		) ENGINE = ReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(hour)
		ORDER BY (hour, network_id, protocol, direction, shadowed, bucket)
		TTL hour + toIntervalSecond(31536000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`,
		// A day's pass sums its slices of hosts here first, as the
		// addresses' (addrs_slices), so that series_sh has one row per key
		// and generation: a reader of a generation takes, key by key, the
		// newest row of it or a later one (aggregate.go hourConds).
		`CREATE TABLE IF NOT EXISTS {db}.series_slices (
			gen Int64,
			slice UInt32 COMMENT 'the host slice that summed the row: two slices never send the same block (a replicated table drops a repeated one)',
			hour DateTime('UTC'),
			bucket DateTime('UTC'),
			network_id LowCardinality(String),
			protocol UInt8,
			direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
			shadowed UInt8,
			flows UInt64,
			spread_bytes UInt64,
			spread_packets UInt64,
			last_end Int64
		) ENGINE = MergeTree
		ORDER BY (gen, hour, network_id, protocol, direction, shadowed, bucket)
		TTL toDateTime(intDiv(gen, 1000000000)) + toIntervalHour(1)
		SETTINGS ttl_only_drop_parts = 1, merge_with_ttl_timeout = 3600`,
		// Which days' generations include it.
		`ALTER TABLE {db}.rollup_days ADD COLUMN IF NOT EXISTS starts UInt8 COMMENT '1: the generation also wrote series_sh'`,
		// Every day still in the raw flows is recomputed once.
		`INSERT INTO {db}.rollup_marks (day, hour, marked)
		SELECT day, arrayJoin(range(24)), toUnixTimestamp64Nano(now64(9)) FROM (SELECT DISTINCT toDate(start_ts) AS day FROM {db}.flows)`,
	}, nil},
}

// flowsV3 is the flows table from migration 3 on ({table}: its name).
// What changed from migration 1, and why:
//   - ORDER BY adds start_ts: a flow is (network, host, flow_id, start), since
//     the kernel reuses the conntrack ids a stock agent's flow_id is made of;
//     Insert gives a START and its DESTROY the same start (identity.go), so
//     they still share the key and the day partition;
//   - ReplacingMergeTree(rank): rank is the version, plus 2^62 for a DESTROY,
//     so a DESTROY wins over every START of its flow, a version tie
//     included: an ended flow does not reopen (a START after the end is a
//     new flow, with its own start). Versions are at most
//     flowlog.MaxVersion (< 2^48), so rank cannot overflow;
//   - end_approx: the DESTROY had no kernel timestamp; end_ts is when the
//     collector received it;
//   - conn_key: the connection an observation is of, the same from both of
//     its ends (src and dst are the initiator and the responder on both
//     sides): the aggregates count each connection once (dedupe.go).
const flowsV3 = `CREATE TABLE IF NOT EXISTS {table} (
	event_type Enum8('start' = 1, 'destroy' = 2),
	flow_id String,
	host_id LowCardinality(String),
	host_name LowCardinality(String),
	network_id LowCardinality(String),
	protocol UInt8,
	src_port UInt16,
	dst_port UInt16,
	icmp_type UInt8,
	icmp_code UInt8,
	direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
	src_ip IPv6,
	src_type ` + participantEnum + `,
	src_entity_id LowCardinality(String),
	src_entity_name LowCardinality(String),
	dst_ip IPv6,
	dst_type ` + participantEnum + `,
	dst_entity_id LowCardinality(String),
	dst_entity_name LowCardinality(String),
	start_ts DateTime64(3, 'UTC'),
	end_ts DateTime64(3, 'UTC') COMMENT 'epoch (0) while the flow is active',
	bytes_sent UInt64,
	bytes_recv UInt64,
	packets_sent UInt64,
	packets_recv UInt64,
	status UInt32,
	version Int64,
	end_approx UInt8 COMMENT '1: end_ts is the receive time (no kernel timestamp)',
	inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
	rank Int64 MATERIALIZED version + if(event_type = 'destroy', 4611686018427387904, 0),
	conn_key UInt64 MATERIALIZED cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code)
) ENGINE = ReplacingMergeTree(rank)
PARTITION BY toDate(start_ts)
ORDER BY (network_id, host_id, flow_id, start_ts)
TTL toDateTime(start_ts) + toIntervalSecond(2592000)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`

// migrateV3 rebuilds flows with the shape of flowsV3 (a sorting key cannot
// be changed in place): copy it into flows_v3, rename it away to flows_v2,
// rename flows_v3 to flows, drop the two spare tables. The copy is merged
// across partitions, so a START and DESTROY that migration 1 stored on
// either side of midnight become one flow. The rollups get the column
// shadowed (dedupe.go) and every day is recomputed.
//
// Collectors starting at once (or one after another crashed halfway) all
// run this, and every state between the statements is one they can finish
// from, whoever reaches it:
//   - each copies into flows_v3 (IF NOT EXISTS: the copy of a crashed run
//     is kept); copies of the same rows collapse (ReplacingMergeTree, same
//     rank), so several copies are one;
//   - the claim is RENAME flows TO flows_v2: a rename succeeds once (then
//     flows is gone, later flows_v2 exists), so exactly one collector takes
//     the old table away, and only after its copy completed: whenever
//     flows_v2 exists, flows_v3 holds every row;
//   - so whoever finds flows_v2 (the claimant, a collector that lost the
//     claim, one restarting after a crash) renames flows_v3 to flows; when
//     that fails, another did it, which the shape of flows then shows.
//
// The one interleaving this cannot absorb: a collector that found flows in
// the old shape and has copied it, then renames flows away after another
// collector finished the whole step and dropped flows_v2 in between (two
// statements of the other inside the gap between its own check and
// rename, right after a copy). Inserts during the rebuild fail (flows is
// briefly missing) and are retried by the agents.
func migrateV3(ctx context.Context, s *Store) error {
	flows, v2, v3 := s.db+".flows", s.db+".flows_v2", s.db+".flows_v3"
	done := func() (bool, error) { return s.hasColumn(ctx, s.storageTable("flows"), "rank") }
	ok, err := done()
	if err != nil {
		return err
	}
	if !ok {
		claimed, err := s.hasTable(ctx, s.storageTable("flows_v2"))
		if err != nil {
			return err
		}
		if !claimed {
			if err := s.copyToV3(ctx, flows, v3); err != nil {
				// Another collector renamed a table under the copy.
				if claimed, _ = s.hasTable(ctx, s.storageTable("flows_v2")); !claimed {
					if ok, _ = done(); !ok {
						return err
					}
				}
			} else if ok, err = done(); err != nil {
				return err
			} else if !ok {
				// The claim; it fails when another collector took it.
				_ = s.execDDL(ctx, "RENAME TABLE "+flows+" TO "+v2)
			}
		}
		if !ok {
			if err := s.execDDL(ctx, "RENAME TABLE "+v3+" TO "+flows); err != nil {
				if ok, _ = done(); !ok {
					return fmt.Errorf("rebuilding flows: %w", err)
				}
			}
		}
	}
	for _, t := range []string{v2, v3} {
		if err := s.execDDL(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			return err
		}
	}
	for _, r := range []string{"flows_1m", "flows_1h"} {
		has, err := s.hasColumn(ctx, r, "shadowed")
		if err != nil || has {
			if err != nil {
				return err
			}
			continue
		}
		// A column joining the sorting key must come without a default
		// expression (its zero is what old rows read).
		// Another collector migrating at the same time may have added it
		// since hasColumn looked (DUPLICATE_COLUMN): that is done, then.
		if err := s.execDDL(ctx, fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN shadowed UInt8 "+
			"COMMENT 'ingress observations of connections their initiator reported too', MODIFY ORDER BY (%s, shadowed)",
			s.db, r, rollupKeyV2)); err != nil {
			if strings.Contains(err.Error(), "Code: 15.") {
				continue
			}
			return fmt.Errorf("adding shadowed to %s: %w", r, err)
		}
	}
	return s.execDDL(ctx, "INSERT INTO "+s.db+".rollup_dirty (day, marked) "+
		"SELECT DISTINCT toDate(start_ts), toUnixTimestamp64Nano(now64(9)) FROM "+s.db+".flows")
}

// flowsV13 is the flows table from migration 13 on ({table}: its name):
// flowsV3 with what later steps added (the endpoints' networks, ZSTD(1),
// the inserted_at index, wider merges), sorted by the hour of the start
// first. A flow's key is still (network_id, host_id, flow_id, start_ts):
// the hour is a function of start_ts, so the rows that collapse are the
// same. What the hour in front buys: a time range reads only its hours'
// granules. Before, the rows of an hour were spread over every granule of
// their day, so any read of part of a day (the flows page's newest rows, a
// cursor page, the raw edges of an aggregate, the connection
// deduplication's egress rows near them) cost the whole day (BENCHMARKS.md,
// "Flows in time order"). The identity lookup names the hours of its
// starts (identity.go); network and host filters still prune within each
// hour.
const flowsV13 = `CREATE TABLE IF NOT EXISTS {table} (
	event_type Enum8('start' = 1, 'destroy' = 2),
	flow_id String CODEC(ZSTD(1)),
	host_id LowCardinality(String) CODEC(ZSTD(1)),
	host_name LowCardinality(String) CODEC(ZSTD(1)),
	network_id LowCardinality(String) CODEC(ZSTD(1)),
	protocol UInt8,
	src_port UInt16,
	dst_port UInt16,
	icmp_type UInt8,
	icmp_code UInt8,
	direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
	src_ip IPv6 CODEC(ZSTD(1)),
	src_type ` + participantEnum + `,
	src_entity_id LowCardinality(String) CODEC(ZSTD(1)),
	src_entity_name LowCardinality(String) CODEC(ZSTD(1)),
	dst_ip IPv6 CODEC(ZSTD(1)),
	dst_type ` + participantEnum + `,
	dst_entity_id LowCardinality(String) CODEC(ZSTD(1)),
	dst_entity_name LowCardinality(String) CODEC(ZSTD(1)),
	start_ts DateTime64(3, 'UTC') CODEC(ZSTD(1)),
	end_ts DateTime64(3, 'UTC') COMMENT 'epoch (0) while the flow is active' CODEC(ZSTD(1)),
	bytes_sent UInt64 CODEC(ZSTD(1)),
	bytes_recv UInt64 CODEC(ZSTD(1)),
	packets_sent UInt64 CODEC(ZSTD(1)),
	packets_recv UInt64 CODEC(ZSTD(1)),
	status UInt32 CODEC(ZSTD(1)),
	version Int64 CODEC(ZSTD(1)),
	end_approx UInt8 COMMENT '1: end_ts is the receive time (no kernel timestamp)',
	inserted_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(ZSTD(1)),
	rank Int64 MATERIALIZED version + if(event_type = 'destroy', 4611686018427387904, 0),
	conn_key UInt64 MATERIALIZED cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code),
	src_asn UInt32 CODEC(ZSTD(1)),
	src_as_name LowCardinality(String) CODEC(ZSTD(1)),
	src_country LowCardinality(String) CODEC(ZSTD(1)),
	dst_asn UInt32 CODEC(ZSTD(1)),
	dst_as_name LowCardinality(String) CODEC(ZSTD(1)),
	dst_country LowCardinality(String) CODEC(ZSTD(1)),
	INDEX inserted_at_minmax inserted_at TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree(rank)
PARTITION BY toDate(start_ts)
ORDER BY (toStartOfHour(start_ts), network_id, host_id, flow_id, start_ts)
TTL toDateTime(start_ts) + toIntervalSecond(2592000)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1, merge_selector_base = 25`

// hourFirst is how system.tables shows flowsV13's sorting key.
const hourFirst = "toStartOfHour(start_ts), network_id, host_id, flow_id, start_ts"

// migrateV13 rebuilds flows in the shape of flowsV13: the table is swapped
// first, then the old rows are copied in, so that rows written meanwhile
// land in the new table and none is lost (migration 3 copied first, and a
// row another collector wrote during its copy was dropped with the old
// table). Until the copy ends, reads see the new rows and part of the old.
//
// Collectors starting at once, or one after another crashed halfway, all
// run this, and every state between the statements is one they can finish
// from:
//   - each creates flows_v13 (IF NOT EXISTS), then claims the swap by
//     renaming flows to flows_v12; a rename succeeds once;
//   - whoever then finds flows_v12 renames flows_v13 to flows (it fails
//     when another did it: the shape of flows then shows it);
//   - whoever finds flows_v12 copies all of it into flows, then drops it.
//     Copies are idempotent (a copied row collapses with its copy: same
//     key, same rank), so two collectors copying, or a copy repeated after
//     a crash, cost time, never rows; a copy that fails because another
//     dropped flows_v12 after its own complete copy is done;
//   - a collector that found the old shape, slept past another's whole
//     swap and then claims, renames the new flows away and swaps in an
//     empty one, then copies the renamed table back: still every row.
//
// An insert already under way into the old table at the swap may commit
// after the copy began: a second copy takes the rows inserted since a
// minute before the copy began (inserted_at is indexed: cheap).
func migrateV13(ctx context.Context, s *Store) error {
	flows, old, next := s.db+".flows", s.db+".flows_v12", s.db+".flows_v13"
	if ok, err := s.flowsSortedBy(ctx, hourFirst); err != nil {
		return err
	} else if !ok {
		if err := s.swapV13(ctx); err != nil {
			return err
		}
	}
	if claimed, err := s.hasTable(ctx, s.storageTable("flows_v12")); err != nil {
		return err
	} else if claimed {
		began := s.now().Add(-time.Minute)
		copyOld := "INSERT INTO " + flows + " (" + flowColumns + ") SELECT " + flowColumns + " FROM " + old
		for _, q := range []string{copyOld, copyOld + " WHERE inserted_at >= " + ms(began)} {
			if err := s.execDDL(ctx, q); err != nil {
				if claimed, _ := s.hasTable(ctx, s.storageTable("flows_v12")); claimed {
					return fmt.Errorf("copying flows into their new table: %w", err)
				}
				break // another collector copied every row and dropped the old table
			}
		}
	}
	for _, t := range []string{old, next} {
		if err := s.execDDL(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			return err
		}
	}
	return nil
}

// swapV13 is migration 13's swap: an empty flows_v13 takes the place of
// flows, renamed flows_v12 (the claim), unless another collector did it.
func (s *Store) swapV13(ctx context.Context) error {
	flows, old, next := s.db+".flows", s.db+".flows_v12", s.db+".flows_v13"
	if err := s.execDDL(ctx, s.flowsCreate(flowsV13, next)); err != nil {
		return fmt.Errorf("rebuilding flows: %w", err)
	}
	_ = s.execDDL(ctx, "RENAME TABLE "+flows+" TO "+old) // the claim; it fails when another collector took it
	if claimed, err := s.hasTable(ctx, s.storageTable("flows_v12")); err != nil || !claimed {
		return err
	}
	if err := s.execDDL(ctx, "RENAME TABLE "+next+" TO "+flows); err != nil {
		if ok, _ := s.flowsSortedBy(ctx, hourFirst); !ok {
			return fmt.Errorf("rebuilding flows: %w", err)
		}
	}
	return nil
}

// flowsCreate is the CREATE statement create (a flows shape, {table} its
// name) for table, with the configured retention from the start: a TTL
// applies to the rows copied in, and the 30 days the shape is written with
// would drop older rows that a longer --retention keeps.
func (s *Store) flowsCreate(create, table string) string {
	return strings.ReplaceAll(strings.ReplaceAll(create, "{table}", table), "toIntervalSecond(2592000)",
		fmt.Sprintf("toIntervalSecond(%d)", int64(s.retention/time.Second)))
}

// flowsSortedBy says whether the table holding the flows has the sorting
// key key (false when it is missing: renamed away by a migration).
func (s *Store) flowsSortedBy(ctx context.Context, key string) (bool, error) {
	var rows []struct {
		K string `json:"sorting_key"`
	}
	if err := s.queryRows(ctx, fmt.Sprintf("SELECT sorting_key FROM system.tables WHERE database = %s AND name = %s",
		quote(strings.Trim(s.db, "`")), quote(s.storageTable("flows"))), &rows); err != nil {
		return false, err
	}
	return len(rows) == 1 && rows[0].K == key, nil
}

// copyToV3 copies flows (the shape of migration 1) into flows_v3 (flowsV3).
// It fails when another collector renamed either table meanwhile (the
// caller then finds the step claimed or done).
func (s *Store) copyToV3(ctx context.Context, flows, v3 string) error {
	for _, q := range []string{
		s.flowsCreate(flowsV3, v3),
		"INSERT INTO " + v3 + " (" + flowColumnsV1 + ", inserted_at) SELECT " + flowColumnsV1 + ", inserted_at FROM " +
			flows + " FINAL SETTINGS do_not_merge_across_partitions_select_final = 0",
	} {
		if err := s.execDDL(ctx, q); err != nil {
			return fmt.Errorf("rebuilding flows: %w", err)
		}
	}
	return nil
}

func (s *Store) hasColumn(ctx context.Context, table, col string) (bool, error) {
	var rows []struct {
		N uint64 `json:"n"`
	}
	if err := s.queryRows(ctx, fmt.Sprintf("SELECT count() AS n FROM system.columns WHERE database = %s AND table = %s AND name = %s",
		quote(strings.Trim(s.db, "`")), quote(table), quote(col)), &rows); err != nil {
		return false, err
	}
	return len(rows) == 1 && rows[0].N > 0, nil
}

// Parts of migration 2, shared by its two rollup tables: never edit them.
// The dimension columns are rollupDims (rollup.go).
const (
	rollupColumnsV2 = `
			bucket DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			host_id LowCardinality(String),
			src_type ` + participantEnum + `,
			src_entity_id LowCardinality(String),
			src_entity_name LowCardinality(String),
			dst_type ` + participantEnum + `,
			dst_entity_id LowCardinality(String),
			dst_entity_name LowCardinality(String),
			protocol UInt8,
			direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
			bytes UInt64,
			packets UInt64,
			flows UInt64 COMMENT 'flows started in the bucket, active ones included'`
	rollupKeyV2 = "bucket, network_id, host_id, src_type, src_entity_id, src_entity_name, " +
		"dst_type, dst_entity_id, dst_entity_name, protocol, direction"
)

// migrate creates the database and applies the steps not yet recorded.
func (s *Store) migrate(ctx context.Context) error {
	// A schema already there needs no DDL (cluster.go: restarts need no Keeper).
	if exists, err := s.hasTable(ctx, "schema_migrations"); err != nil {
		return err
	} else if !exists {
		if err := s.execDDL(ctx, "CREATE DATABASE IF NOT EXISTS "+s.db); err != nil {
			return fmt.Errorf("creating database %s: %w", s.db, err)
		}
		if err := s.execDDL(ctx, `CREATE TABLE IF NOT EXISTS `+s.db+`.schema_migrations (
		version UInt32, name String, applied_at DateTime DEFAULT now()
	) ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
	}
	current, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		// Collectors that start together each run the steps they find
		// missing, and one's later step can break another's earlier one
		// (migration 13's swap leaves no flows table for a moment, while a
		// slower collector copies flows in migration 3). Every step is
		// idempotent, so a failed one is retried, unless another collector
		// recorded it meanwhile: then it is done, and so is every step
		// before the version recorded.
		for attempt := 1; ; attempt++ {
			err := s.migrateStep(ctx, m)
			if err == nil {
				break
			}
			if v, verr := s.schemaVersion(ctx); verr == nil && v >= m.version {
				current = v
				break
			}
			if attempt == migrateAttempts || ctx.Err() != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		if m.version <= current {
			continue
		}
		if err := s.eng.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name) VALUES (%d, %s)",
			s.db, m.version, quote(m.name))); err != nil {
			return fmt.Errorf("recording migration %d: %w", m.version, err)
		}
	}
	return nil
}

// migrateAttempts bounds the tries of a migration step (migrate).
const migrateAttempts = 5

// migrateStep runs one migration's statements and function.
func (s *Store) migrateStep(ctx context.Context, m migration) error {
	for _, stmt := range m.stmts {
		if err := s.execDDL(ctx, strings.ReplaceAll(stmt, "{db}", s.db)); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	if m.fn != nil {
		if err := m.fn(ctx, s); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// schemaVersion is the latest migration recorded.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var rows []struct {
		V uint32 `json:"v"`
	}
	if err := s.queryRows(ctx, "SELECT max(version) AS v FROM "+s.db+".schema_migrations", &rows); err != nil {
		return 0, err
	}
	if len(rows) == 1 {
		return int(rows[0].V), nil
	}
	return 0, nil
}

// SchemaVersion is the latest migration this build knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// applyRetention points both tables' TTL at the configured retention. The
// change is metadata only (materialize_ttl_after_modify = 0): old parts are
// cleaned by the next merges, instead of rewriting every part at start-up.
func (s *Store) applyRetention(ctx context.Context, retention time.Duration) error {
	secs := int64(retention / time.Second)
	if secs <= 0 {
		return fmt.Errorf("retention must be positive, got %s", retention)
	}
	for _, tc := range [][2]string{{"flows", "start_ts"}, {"rejected_events", "received_at"}} { // in order: the statements are compared as text
		table, col := tc[0], tc[1]
		var rows []struct {
			E string `json:"engine_full"`
		}
		if err := s.queryRows(ctx, fmt.Sprintf("SELECT engine_full FROM system.tables WHERE database = %s AND name = %s",
			quote(strings.Trim(s.db, "`")), quote(s.storageTable(table))), &rows); err != nil {
			return err
		}
		want := fmt.Sprintf("toIntervalSecond(%d)", secs)
		if len(rows) == 1 && strings.Contains(rows[0].E, want) {
			continue
		}
		if err := s.execDDL(ctx, fmt.Sprintf("ALTER TABLE %s.%s MODIFY TTL toDateTime(%s) + %s SETTINGS materialize_ttl_after_modify = 0",
			s.db, table, col, want)); err != nil {
			return fmt.Errorf("setting retention on %s: %w", table, err)
		}
	}
	return nil
}
