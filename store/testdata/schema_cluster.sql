CREATE DATABASE IF NOT EXISTS `tally` ON CLUSTER `tally_cluster`;

CREATE TABLE IF NOT EXISTS `tally`.schema_migrations ON CLUSTER `tally_cluster`
(
    version    UInt32,
    name       String,
    applied_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/tally/schema_migrations', '{shard}-{replica}')
ORDER BY version;

CREATE TABLE IF NOT EXISTS `tally`.events_local ON CLUSTER `tally_cluster`
(
    event_id          String,
    site              String,
    event_name        String,
    occurred_at       DateTime('UTC'),
    occurred_at_ms    UInt16,
    received_at       DateTime('UTC'),
    source            String,
    visitor_id        String,
    session_id        String,
    email             String,
    object_id         String,
    url               String,
    path              String,
    referrer          String,
    page_title        String,
    utm_source        String,
    utm_medium        String,
    utm_campaign      String,
    utm_term          String,
    utm_content       String,
    touchpoint_source String,
    click_id_param    String,
    click_id          String,
    ip                String,
    user_agent        String,
    language          String,
    browser           String,
    browser_version   String,
    os                String,
    os_version        String,
    device_type       String,
    is_bot            UInt8,
    country           String,
    region            String,
    city              String,
    prop_keys         Array(String),
    prop_values       Array(String),
    truncated         Array(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/events_local', '{replica}')
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (site, event_name, toDate(occurred_at), event_id);

CREATE TABLE IF NOT EXISTS `tally`.events ON CLUSTER `tally_cluster` AS `tally`.events_local
ENGINE = Distributed(`tally_cluster`, tally, events_local, cityHash64(event_id));

CREATE TABLE IF NOT EXISTS `tally`.rejections_local ON CLUSTER `tally_cluster`
(
    rejected_at DateTime('UTC'),
    site        String,
    source      String,
    event_name  String,
    reason      String,
    field       String,
    payload     String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tally/rejections_local', '{replica}')
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (site, reason, rejected_at);

CREATE TABLE IF NOT EXISTS `tally`.rejections ON CLUSTER `tally_cluster` AS `tally`.rejections_local
ENGINE = Distributed(`tally_cluster`, tally, rejections_local, rand());

CREATE TABLE IF NOT EXISTS `tally`.deliveries_local ON CLUSTER `tally_cluster`
(
    event_id       String,
    event_name     String,
    rule           String,
    destination    String,
    forwarded_name String,
    status         String,
    attempts       UInt32,
    http_status    UInt16,
    fbtrace_id     String,
    error          String,
    created_at     DateTime('UTC'),
    updated_at     DateTime('UTC'),
    payload String DEFAULT '',
    response String DEFAULT ''
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tally/deliveries_local', '{replica}')
PARTITION BY toYYYYMM(updated_at)
ORDER BY (destination, rule, updated_at);

CREATE TABLE IF NOT EXISTS `tally`.deliveries ON CLUSTER `tally_cluster` AS `tally`.deliveries_local
ENGINE = Distributed(`tally_cluster`, tally, deliveries_local, cityHash64(event_id));

CREATE TABLE IF NOT EXISTS `tally`.typed_views ON CLUSTER `tally_cluster`
(
    name       String,
    event_name String,
    ddl        String,
    dropped    UInt8,
    version    UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/tally/typed_views', '{shard}-{replica}', version)
ORDER BY name;

CREATE TABLE IF NOT EXISTS `tally`.rule_state ON CLUSTER `tally_cluster`
(
    rule       String,
    hash       String,
    enabled_ns UInt64,
    removed    UInt8,
    version    UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/tally/rule_state', '{shard}-{replica}', version)
ORDER BY rule;
