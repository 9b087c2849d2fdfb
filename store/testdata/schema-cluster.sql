CREATE DATABASE IF NOT EXISTS `flowlog` ON CLUSTER `flows_cluster`;

CREATE TABLE IF NOT EXISTS `flowlog`.schema_migrations_local ON CLUSTER `flows_cluster` (
		version UInt32, name String, applied_at DateTime DEFAULT now()
	) ENGINE = ReplicatedReplacingMergeTree ORDER BY version;

CREATE TABLE IF NOT EXISTS `flowlog`.schema_migrations ON CLUSTER `flows_cluster` AS `flowlog`.schema_migrations_local ENGINE = Distributed(`flows_cluster`, `flowlog`, schema_migrations_local, version);

CREATE TABLE IF NOT EXISTS `flowlog`.flows_local ON CLUSTER `flows_cluster` (
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
			src_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			src_entity_id LowCardinality(String),
			src_entity_name LowCardinality(String),
			dst_ip IPv6,
			dst_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
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
		) ENGINE = ReplicatedReplacingMergeTree(version)
		PARTITION BY toDate(start_ts)
		ORDER BY (network_id, host_id, flow_id)
		TTL toDateTime(start_ts) + toIntervalSecond(2592000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.flows ON CLUSTER `flows_cluster` AS `flowlog`.flows_local ENGINE = Distributed(`flows_cluster`, `flowlog`, flows_local, cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code));

CREATE TABLE IF NOT EXISTS `flowlog`.rejected_events_local ON CLUSTER `flows_cluster` (
			received_at DateTime64(3, 'UTC'),
			peer String,
			host_id LowCardinality(String),
			idx UInt32,
			reason String,
			event String
		) ENGINE = ReplicatedReplacingMergeTree
		PARTITION BY toDate(received_at)
		ORDER BY (host_id, reason, cityHash64(event))
		TTL toDateTime(received_at) + toIntervalSecond(2592000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.rejected_events ON CLUSTER `flows_cluster` AS `flowlog`.rejected_events_local ENGINE = Distributed(`flows_cluster`, `flowlog`, rejected_events_local, cityHash64(host_id, reason, event));

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (1, 'flows and rejected_events');

CREATE TABLE IF NOT EXISTS `flowlog`.flows_1m_local ON CLUSTER `flows_cluster` (
			bucket DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			host_id LowCardinality(String),
			src_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			src_entity_id LowCardinality(String),
			src_entity_name LowCardinality(String),
			dst_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			dst_entity_id LowCardinality(String),
			dst_entity_name LowCardinality(String),
			protocol UInt8,
			direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
			bytes UInt64,
			packets UInt64,
			flows UInt64 COMMENT 'flows started in the bucket, active ones included')
		ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toDate(bucket)
		ORDER BY (bucket, network_id, host_id, src_type, src_entity_id, src_entity_name, dst_type, dst_entity_id, dst_entity_name, protocol, direction)
		TTL bucket + toIntervalSecond(604800)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.flows_1m ON CLUSTER `flows_cluster` AS `flowlog`.flows_1m_local ENGINE = Distributed(`flows_cluster`, `flowlog`, flows_1m_local, toYYYYMMDD(bucket));

CREATE TABLE IF NOT EXISTS `flowlog`.flows_1h_local ON CLUSTER `flows_cluster` (
			bucket DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			host_id LowCardinality(String),
			src_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			src_entity_id LowCardinality(String),
			src_entity_name LowCardinality(String),
			dst_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			dst_entity_id LowCardinality(String),
			dst_entity_name LowCardinality(String),
			protocol UInt8,
			direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
			bytes UInt64,
			packets UInt64,
			flows UInt64 COMMENT 'flows started in the bucket, active ones included')
		ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(bucket)
		ORDER BY (bucket, network_id, host_id, src_type, src_entity_id, src_entity_name, dst_type, dst_entity_id, dst_entity_name, protocol, direction)
		TTL bucket + toIntervalSecond(31536000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.flows_1h ON CLUSTER `flows_cluster` AS `flowlog`.flows_1h_local ENGINE = Distributed(`flows_cluster`, `flowlog`, flows_1h_local, toYYYYMMDD(bucket));

CREATE TABLE IF NOT EXISTS `flowlog`.rollup_dirty_local ON CLUSTER `flows_cluster` (
			day Date,
			marked Int64
		) ENGINE = ReplicatedReplacingMergeTree(marked)
		ORDER BY day
		TTL day + toIntervalDay(400)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.rollup_dirty ON CLUSTER `flows_cluster` AS `flowlog`.rollup_dirty_local ENGINE = Distributed(`flows_cluster`, `flowlog`, rollup_dirty_local, toYYYYMMDD(day));

CREATE TABLE IF NOT EXISTS `flowlog`.rollup_days_local ON CLUSTER `flows_cluster` (
			day Date,
			gen Int64,
			covers Int64,
			stamp Int64
		) ENGINE = ReplicatedReplacingMergeTree(stamp)
		ORDER BY day
		TTL day + toIntervalDay(400)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.rollup_days ON CLUSTER `flows_cluster` AS `flowlog`.rollup_days_local ENGINE = Distributed(`flows_cluster`, `flowlog`, rollup_days_local, toYYYYMMDD(day));

INSERT INTO `flowlog`.rollup_dirty (day, marked)
		SELECT DISTINCT toDate(start_ts), toUnixTimestamp64Nano(now64(9)) FROM `flowlog`.flows;

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (2, 'rollups at 1 minute and 1 hour');

CREATE TABLE IF NOT EXISTS `flowlog`.flows_v3_local ON CLUSTER `flows_cluster` (
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
	src_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
	src_entity_id LowCardinality(String),
	src_entity_name LowCardinality(String),
	dst_ip IPv6,
	dst_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
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
) ENGINE = ReplicatedReplacingMergeTree(rank)
PARTITION BY toDate(start_ts)
ORDER BY (network_id, host_id, flow_id, start_ts)
TTL toDateTime(start_ts) + toIntervalSecond(2592000)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.flows_v3 ON CLUSTER `flows_cluster` AS `flowlog`.flows_v3_local ENGINE = Distributed(`flows_cluster`, `flowlog`, flows_v3_local, cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code));

INSERT INTO `flowlog`.flows_v3 (event_type, flow_id, host_id, host_name, network_id, protocol, src_port, dst_port, icmp_type, icmp_code, direction, src_ip, src_type, src_entity_id, src_entity_name, dst_ip, dst_type, dst_entity_id, dst_entity_name, start_ts, end_ts, bytes_sent, bytes_recv, packets_sent, packets_recv, status, version, inserted_at) SELECT event_type, flow_id, host_id, host_name, network_id, protocol, src_port, dst_port, icmp_type, icmp_code, direction, src_ip, src_type, src_entity_id, src_entity_name, dst_ip, dst_type, dst_entity_id, dst_entity_name, start_ts, end_ts, bytes_sent, bytes_recv, packets_sent, packets_recv, status, version, inserted_at FROM `flowlog`.flows FINAL SETTINGS do_not_merge_across_partitions_select_final = 0;

RENAME TABLE `flowlog`.flows_local TO `flowlog`.flows_v2_local ON CLUSTER `flows_cluster`;

DROP TABLE IF EXISTS `flowlog`.flows ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows_v2 ON CLUSTER `flows_cluster` SYNC;

CREATE TABLE `flowlog`.flows_v2 ON CLUSTER `flows_cluster` AS `flowlog`.flows_v2_local ENGINE = Distributed(`flows_cluster`, `flowlog`, flows_v2_local, cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code));

RENAME TABLE `flowlog`.flows_v3_local TO `flowlog`.flows_local ON CLUSTER `flows_cluster`;

DROP TABLE IF EXISTS `flowlog`.flows_v3 ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows ON CLUSTER `flows_cluster` SYNC;

CREATE TABLE `flowlog`.flows ON CLUSTER `flows_cluster` AS `flowlog`.flows_local ENGINE = Distributed(`flows_cluster`, `flowlog`, flows_local, cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code));

DROP TABLE IF EXISTS `flowlog`.flows_v2 ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows_v2_local ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows_v3 ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows_v3_local ON CLUSTER `flows_cluster` SYNC;

ALTER TABLE `flowlog`.flows_1m_local ON CLUSTER `flows_cluster` ADD COLUMN shadowed UInt8 COMMENT 'ingress observations of connections their initiator reported too', MODIFY ORDER BY (bucket, network_id, host_id, src_type, src_entity_id, src_entity_name, dst_type, dst_entity_id, dst_entity_name, protocol, direction, shadowed);

ALTER TABLE `flowlog`.flows_1m ON CLUSTER `flows_cluster` ADD COLUMN shadowed UInt8 COMMENT 'ingress observations of connections their initiator reported too';

ALTER TABLE `flowlog`.flows_1h_local ON CLUSTER `flows_cluster` ADD COLUMN shadowed UInt8 COMMENT 'ingress observations of connections their initiator reported too', MODIFY ORDER BY (bucket, network_id, host_id, src_type, src_entity_id, src_entity_name, dst_type, dst_entity_id, dst_entity_name, protocol, direction, shadowed);

ALTER TABLE `flowlog`.flows_1h ON CLUSTER `flows_cluster` ADD COLUMN shadowed UInt8 COMMENT 'ingress observations of connections their initiator reported too';

INSERT INTO `flowlog`.rollup_dirty (day, marked) SELECT DISTINCT toDate(start_ts), toUnixTimestamp64Nano(now64(9)) FROM `flowlog`.flows;

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (3, 'flow identity by start; one count per connection');

CREATE TABLE IF NOT EXISTS `flowlog`.rollup_claims_local ON CLUSTER `flows_cluster` (
			day Date,
			marked Int64,
			owner String,
			claimed Int64
		) ENGINE = ReplicatedMergeTree
		ORDER BY (day, marked)
		TTL toDateTime(intDiv(claimed, 1000000000)) + toIntervalDay(1)
		SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS `flowlog`.rollup_claims ON CLUSTER `flows_cluster` AS `flowlog`.rollup_claims_local ENGINE = Distributed(`flows_cluster`, `flowlog`, rollup_claims_local, toYYYYMMDD(day));

ALTER TABLE `flowlog`.flows_local ON CLUSTER `flows_cluster` ADD INDEX IF NOT EXISTS inserted_at_minmax inserted_at TYPE minmax GRANULARITY 1;

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (4, 'several collectors: rollup claims, insertion-time index');

ALTER TABLE `flowlog`.rejected_events_local ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS reason_class LowCardinality(String) DEFAULT 'other';

ALTER TABLE `flowlog`.rejected_events ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS reason_class LowCardinality(String) DEFAULT 'other';

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (5, 'rejected_events.reason_class');

ALTER TABLE `flowlog`.flows_local ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS src_asn UInt32,
			ADD COLUMN IF NOT EXISTS src_as_name LowCardinality(String),
			ADD COLUMN IF NOT EXISTS src_country LowCardinality(String),
			ADD COLUMN IF NOT EXISTS dst_asn UInt32,
			ADD COLUMN IF NOT EXISTS dst_as_name LowCardinality(String),
			ADD COLUMN IF NOT EXISTS dst_country LowCardinality(String);

ALTER TABLE `flowlog`.flows ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS src_asn UInt32, ADD COLUMN IF NOT EXISTS src_as_name LowCardinality(String), ADD COLUMN IF NOT EXISTS src_country LowCardinality(String), ADD COLUMN IF NOT EXISTS dst_asn UInt32, ADD COLUMN IF NOT EXISTS dst_as_name LowCardinality(String), ADD COLUMN IF NOT EXISTS dst_country LowCardinality(String);

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (6, 'the network of external endpoints');

ALTER TABLE `flowlog`.flows_1m_local ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS spread_bytes UInt64 DEFAULT bytes COMMENT 'bytes that flowed in the bucket, spread evenly over the lifetime of each flow',
			ADD COLUMN IF NOT EXISTS spread_packets UInt64 DEFAULT packets;

ALTER TABLE `flowlog`.flows_1m ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS spread_bytes UInt64 DEFAULT bytes COMMENT 'bytes that flowed in the bucket, spread evenly over the lifetime of each flow', ADD COLUMN IF NOT EXISTS spread_packets UInt64 DEFAULT packets;

ALTER TABLE `flowlog`.flows_1h_local ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS spread_bytes UInt64 DEFAULT bytes COMMENT 'bytes that flowed in the bucket, spread evenly over the lifetime of each flow',
			ADD COLUMN IF NOT EXISTS spread_packets UInt64 DEFAULT packets;

ALTER TABLE `flowlog`.flows_1h ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS spread_bytes UInt64 DEFAULT bytes COMMENT 'bytes that flowed in the bucket, spread evenly over the lifetime of each flow', ADD COLUMN IF NOT EXISTS spread_packets UInt64 DEFAULT packets;

INSERT INTO `flowlog`.rollup_dirty (day, marked)
		SELECT DISTINCT toDate(start_ts), toUnixTimestamp64Nano(now64(9)) FROM `flowlog`.flows;

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (7, 'rollups: bytes spread over the lifetime of flows');

ALTER TABLE `flowlog`.flows_local ON CLUSTER `flows_cluster` MODIFY COLUMN flow_id CODEC(ZSTD(1)),
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
			MODIFY COLUMN dst_asn CODEC(ZSTD(1));

ALTER TABLE `flowlog`.flows ON CLUSTER `flows_cluster` MODIFY COLUMN flow_id CODEC(ZSTD(1)), MODIFY COLUMN host_id CODEC(ZSTD(1)), MODIFY COLUMN host_name CODEC(ZSTD(1)), MODIFY COLUMN network_id CODEC(ZSTD(1)), MODIFY COLUMN src_entity_id CODEC(ZSTD(1)), MODIFY COLUMN src_entity_name CODEC(ZSTD(1)), MODIFY COLUMN dst_entity_id CODEC(ZSTD(1)), MODIFY COLUMN dst_entity_name CODEC(ZSTD(1)), MODIFY COLUMN src_ip CODEC(ZSTD(1)), MODIFY COLUMN dst_ip CODEC(ZSTD(1)), MODIFY COLUMN start_ts CODEC(ZSTD(1)), MODIFY COLUMN end_ts CODEC(ZSTD(1)), MODIFY COLUMN bytes_sent CODEC(ZSTD(1)), MODIFY COLUMN bytes_recv CODEC(ZSTD(1)), MODIFY COLUMN packets_sent CODEC(ZSTD(1)), MODIFY COLUMN packets_recv CODEC(ZSTD(1)), MODIFY COLUMN status CODEC(ZSTD(1)), MODIFY COLUMN version CODEC(ZSTD(1)), MODIFY COLUMN inserted_at CODEC(ZSTD(1)), MODIFY COLUMN src_as_name CODEC(ZSTD(1)), MODIFY COLUMN dst_as_name CODEC(ZSTD(1)), MODIFY COLUMN src_country CODEC(ZSTD(1)), MODIFY COLUMN dst_country CODEC(ZSTD(1)), MODIFY COLUMN src_asn CODEC(ZSTD(1)), MODIFY COLUMN dst_asn CODEC(ZSTD(1));

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (8, 'ZSTD(1) on the flows\' columns');

CREATE TABLE IF NOT EXISTS `flowlog`.agents_local ON CLUSTER `flows_cluster` (
			network_id String,
			host_id String,
			generation LowCardinality(String),
			agent String,
			last_seen DateTime64(3, 'UTC')
		) ENGINE = ReplicatedReplacingMergeTree(last_seen)
		ORDER BY (network_id, host_id, generation)
		TTL toDateTime(last_seen) + toIntervalDay(400)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.agents ON CLUSTER `flows_cluster` AS `flowlog`.agents_local ENGINE = Distributed(`flows_cluster`, `flowlog`, agents_local, cityHash64(network_id, host_id));

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (9, 'agents: which agent and wire generation each host runs');

CREATE TABLE IF NOT EXISTS `flowlog`.pairs_1d_local ON CLUSTER `flows_cluster` (
			day Date,
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			src_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			src_entity_id LowCardinality(String),
			src_entity_name LowCardinality(String),
			dst_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			dst_entity_id LowCardinality(String),
			dst_entity_name LowCardinality(String),
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(day)
		ORDER BY (day, network_id, shadowed, src_type, src_entity_id, src_entity_name, dst_type, dst_entity_id, dst_entity_name)
		TTL day + toIntervalDay(365)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.pairs_1d ON CLUSTER `flows_cluster` AS `flowlog`.pairs_1d_local ENGINE = Distributed(`flows_cluster`, `flowlog`, pairs_1d_local, toYYYYMMDD(day));

CREATE TABLE IF NOT EXISTS `flowlog`.talkers_1d_local ON CLUSTER `flows_cluster` (
			day Date,
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ptype Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			pid LowCardinality(String),
			pname LowCardinality(String),
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(day)
		ORDER BY (day, network_id, shadowed, side, ptype, pid, pname)
		TTL day + toIntervalDay(365)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.talkers_1d ON CLUSTER `flows_cluster` AS `flowlog`.talkers_1d_local ENGINE = Distributed(`flows_cluster`, `flowlog`, talkers_1d_local, toYYYYMMDD(day));

CREATE TABLE IF NOT EXISTS `flowlog`.addrs_1d_local ON CLUSTER `flows_cluster` (
			day Date,
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ip IPv6,
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(day)
		ORDER BY (day, network_id, shadowed, side, ip)
		TTL day + toIntervalDay(365)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.addrs_1d ON CLUSTER `flows_cluster` AS `flowlog`.addrs_1d_local ENGINE = Distributed(`flows_cluster`, `flowlog`, addrs_1d_local, toYYYYMMDD(day));

CREATE TABLE IF NOT EXISTS `flowlog`.series_1h_local ON CLUSTER `flows_cluster` (
			bucket DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			protocol UInt8,
			direction Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2),
			shadowed UInt8,
			flows UInt64 COMMENT 'flows started in the bucket',
			spread_bytes UInt64 COMMENT 'bytes that flowed in the bucket, spread evenly over the lifetime of each flow',
			spread_packets UInt64
		) ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(bucket)
		ORDER BY (bucket, network_id, protocol, direction, shadowed)
		TTL bucket + toIntervalSecond(31536000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.series_1h ON CLUSTER `flows_cluster` AS `flowlog`.series_1h_local ENGINE = Distributed(`flows_cluster`, `flowlog`, series_1h_local, toYYYYMMDD(bucket));

ALTER TABLE `flowlog`.rollup_days_local ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS grains UInt8 COMMENT '1: the generation also wrote pairs_1d, talkers_1d, addrs_1d, series_1h';

ALTER TABLE `flowlog`.rollup_days ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS grains UInt8 COMMENT '1: the generation also wrote pairs_1d, talkers_1d, addrs_1d, series_1h';

INSERT INTO `flowlog`.rollup_dirty (day, marked)
		SELECT DISTINCT toDate(start_ts), toUnixTimestamp64Nano(now64(9)) FROM `flowlog`.flows;

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (10, 'rollups at the grain of the page\'s aggregates');

ALTER TABLE `flowlog`.flows_local ON CLUSTER `flows_cluster` MODIFY SETTING merge_selector_base = 25;

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (11, 'flows: wider merges');

CREATE TABLE IF NOT EXISTS `flowlog`.rollup_marks_local ON CLUSTER `flows_cluster` (
			day Date,
			hour UInt8,
			marked Int64
		) ENGINE = ReplicatedReplacingMergeTree(marked)
		ORDER BY (day, hour)
		TTL day + toIntervalDay(400)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.rollup_marks ON CLUSTER `flows_cluster` AS `flowlog`.rollup_marks_local ENGINE = Distributed(`flows_cluster`, `flowlog`, rollup_marks_local, toYYYYMMDD(day));

CREATE TABLE IF NOT EXISTS `flowlog`.talkers_1h_local ON CLUSTER `flows_cluster` (
			hour DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ptype Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
			pid LowCardinality(String),
			pname LowCardinality(String),
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toYYYYMMDD(hour)
		ORDER BY (hour, network_id, shadowed, side, ptype, pid, pname)
		TTL hour + toIntervalSecond(3024000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.talkers_1h ON CLUSTER `flows_cluster` AS `flowlog`.talkers_1h_local ENGINE = Distributed(`flows_cluster`, `flowlog`, talkers_1h_local, toYYYYMMDD(hour));

CREATE TABLE IF NOT EXISTS `flowlog`.addrs_1h_local ON CLUSTER `flows_cluster` (
			hour DateTime('UTC'),
			gen Int64,
			network_id LowCardinality(String),
			shadowed UInt8,
			side UInt8 COMMENT '0: as source, 1: as destination',
			ip IPv6,
			bytes UInt64,
			packets UInt64,
			flows UInt64
		) ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toYYYYMMDD(hour)
		ORDER BY (hour, network_id, shadowed, side, ip)
		TTL hour + toIntervalSecond(3024000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.addrs_1h ON CLUSTER `flows_cluster` AS `flowlog`.addrs_1h_local ENGINE = Distributed(`flows_cluster`, `flowlog`, addrs_1h_local, toYYYYMMDD(hour));

ALTER TABLE `flowlog`.rollup_days_local ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS hours UInt8 COMMENT '1: the generation also wrote talkers_1h, addrs_1h';

ALTER TABLE `flowlog`.rollup_days ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS hours UInt8 COMMENT '1: the generation also wrote talkers_1h, addrs_1h';

INSERT INTO `flowlog`.rollup_marks (day, hour, marked)
		SELECT day, arrayJoin(range(24)), max(marked) FROM `flowlog`.rollup_dirty GROUP BY day;

INSERT INTO `flowlog`.rollup_marks (day, hour, marked)
		SELECT day, arrayJoin(range(24)), toUnixTimestamp64Nano(now64(9)) FROM (SELECT DISTINCT toDate(start_ts) AS day FROM `flowlog`.flows);

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (12, 'rollups clean hour by hour');

CREATE TABLE IF NOT EXISTS `flowlog`.flows_v13_local ON CLUSTER `flows_cluster` (
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
	src_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
	src_entity_id LowCardinality(String) CODEC(ZSTD(1)),
	src_entity_name LowCardinality(String) CODEC(ZSTD(1)),
	dst_ip IPv6 CODEC(ZSTD(1)),
	dst_type Enum8('unspecified' = 0, 'node' = 1, 'user' = 2, 'extclient' = 3, 'egress_route' = 4, 'external' = 5),
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
) ENGINE = ReplicatedReplacingMergeTree(rank)
PARTITION BY toDate(start_ts)
ORDER BY (toStartOfHour(start_ts), network_id, host_id, flow_id, start_ts)
TTL toDateTime(start_ts) + toIntervalSecond(2592000)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1, merge_selector_base = 25;

CREATE TABLE IF NOT EXISTS `flowlog`.flows_v13 ON CLUSTER `flows_cluster` AS `flowlog`.flows_v13_local ENGINE = Distributed(`flows_cluster`, `flowlog`, flows_v13_local, cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code));

RENAME TABLE `flowlog`.flows_local TO `flowlog`.flows_v12_local ON CLUSTER `flows_cluster`;

DROP TABLE IF EXISTS `flowlog`.flows ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows_v12 ON CLUSTER `flows_cluster` SYNC;

CREATE TABLE `flowlog`.flows_v12 ON CLUSTER `flows_cluster` AS `flowlog`.flows_v12_local ENGINE = Distributed(`flows_cluster`, `flowlog`, flows_v12_local, cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code));

DROP TABLE IF EXISTS `flowlog`.flows_v12 ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows_v12_local ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows_v13 ON CLUSTER `flows_cluster` SYNC;

DROP TABLE IF EXISTS `flowlog`.flows_v13_local ON CLUSTER `flows_cluster` SYNC;

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (13, 'flows stored in time order');

CREATE TABLE IF NOT EXISTS `flowlog`.addrs_slices_local ON CLUSTER `flows_cluster` (
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
		) ENGINE = ReplicatedMergeTree
		ORDER BY (gen, hour, network_id, shadowed, side, ip)
		TTL toDateTime(intDiv(gen, 1000000000)) + toIntervalHour(1)
		SETTINGS ttl_only_drop_parts = 1, merge_with_ttl_timeout = 3600;

CREATE TABLE IF NOT EXISTS `flowlog`.addrs_slices ON CLUSTER `flows_cluster` AS `flowlog`.addrs_slices_local ENGINE = Distributed(`flows_cluster`, `flowlog`, addrs_slices_local, toYYYYMMDD(hour));

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (14, 'the rollup pass\'s addresses by host slice');

CREATE TABLE IF NOT EXISTS `flowlog`.series_sh_local ON CLUSTER `flows_cluster` (
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
		) ENGINE = ReplicatedReplacingMergeTree(gen)
		PARTITION BY toYYYYMM(hour)
		ORDER BY (hour, network_id, protocol, direction, shadowed, bucket)
		TTL hour + toIntervalSecond(31536000)
		SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS `flowlog`.series_sh ON CLUSTER `flows_cluster` AS `flowlog`.series_sh_local ENGINE = Distributed(`flows_cluster`, `flowlog`, series_sh_local, toYYYYMMDD(hour));

CREATE TABLE IF NOT EXISTS `flowlog`.series_slices_local ON CLUSTER `flows_cluster` (
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
		) ENGINE = ReplicatedMergeTree
		ORDER BY (gen, hour, network_id, protocol, direction, shadowed, bucket)
		TTL toDateTime(intDiv(gen, 1000000000)) + toIntervalHour(1)
		SETTINGS ttl_only_drop_parts = 1, merge_with_ttl_timeout = 3600;

CREATE TABLE IF NOT EXISTS `flowlog`.series_slices ON CLUSTER `flows_cluster` AS `flowlog`.series_slices_local ENGINE = Distributed(`flows_cluster`, `flowlog`, series_slices_local, toYYYYMMDD(hour));

ALTER TABLE `flowlog`.rollup_days_local ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS starts UInt8 COMMENT '1: the generation also wrote series_sh';

ALTER TABLE `flowlog`.rollup_days ON CLUSTER `flows_cluster` ADD COLUMN IF NOT EXISTS starts UInt8 COMMENT '1: the generation also wrote series_sh';

INSERT INTO `flowlog`.rollup_marks (day, hour, marked)
		SELECT day, arrayJoin(range(24)), toUnixTimestamp64Nano(now64(9)) FROM (SELECT DISTINCT toDate(start_ts) AS day FROM `flowlog`.flows);

INSERT INTO `flowlog`.schema_migrations (version, name) VALUES (15, 'the time series by hour of start');

ALTER TABLE `flowlog`.flows_local ON CLUSTER `flows_cluster` MODIFY TTL toDateTime(start_ts) + toIntervalSecond(2592000) SETTINGS materialize_ttl_after_modify = 0;

ALTER TABLE `flowlog`.rejected_events_local ON CLUSTER `flows_cluster` MODIFY TTL toDateTime(received_at) + toIntervalSecond(2592000) SETTINGS materialize_ttl_after_modify = 0;

