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
    truncated         Array(String),
    debug UInt8 DEFAULT 0,
    mirror Array(String) DEFAULT []
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
    response String DEFAULT '',
    trace_id String DEFAULT fbtrace_id
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

CREATE TABLE IF NOT EXISTS `tally`.identities ON CLUSTER `tally_cluster`
(
    kind       String,
    value      String,
    visitor_id String,
    site       String,
    seen_at    DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/tally/identities', '{shard}-{replica}')
ORDER BY (kind, value, visitor_id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS `tally`.person_events_local ON CLUSTER `tally_cluster`
(
    person         String,
    occurred_at    DateTime('UTC'),
    occurred_at_ms UInt16,
    event_name     String,
    event_id       String,
    site           String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/person_events_local', '{replica}')
ORDER BY (person, occurred_at, occurred_at_ms, event_name, event_id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS `tally`.person_events ON CLUSTER `tally_cluster` AS `tally`.person_events_local
ENGINE = Distributed(`tally_cluster`, tally, person_events_local, cityHash64(person));

INSERT INTO `tally`.person_events (person, occurred_at, occurred_at_ms, event_name, event_id, site)
SELECT person, occurred_at, occurred_at_ms, event_name, event_id, site FROM `tally`.events
ARRAY JOIN arrayFilter(p -> length(p) > 2, [concat('e:', lower(replaceRegexpAll(email, '^\\s+|\\s+$', ''))), concat('v:', visitor_id), concat('o:', object_id)]) AS person;

INSERT INTO `tally`.identities (kind, value, visitor_id, site, seen_at)
SELECT 'email', lower(replaceRegexpAll(email, '^\\s+|\\s+$', '')) AS value, visitor_id, any(site), max(occurred_at) FROM `tally`.events
WHERE email != '' AND visitor_id != ''
GROUP BY value, visitor_id;

DROP TABLE IF EXISTS `tally`.`contact_timeline` ON CLUSTER `tally_cluster`;

CREATE VIEW `tally`.`contact_timeline` ON CLUSTER `tally_cluster` AS
SELECT contact, event_id, site, event_name, occurred_at, occurred_at_ms, received_at, source, visitor_id, session_id, email, object_id, url, path, referrer, page_title, utm_source, utm_medium, utm_campaign, utm_term, utm_content, touchpoint_source, click_id_param, click_id, ip, user_agent, language, browser, browser_version, os, os_version, device_type, is_bot, country, region, city, prop_keys, prop_values, truncated FROM (
    SELECT lower(replaceRegexpAll(email, '^\\s+|\\s+$', '')) AS contact, event_id, site, event_name, occurred_at, occurred_at_ms, received_at, source, visitor_id, session_id, email, object_id, url, path, referrer, page_title, utm_source, utm_medium, utm_campaign, utm_term, utm_content, touchpoint_source, click_id_param, click_id, ip, user_agent, language, browser, browser_version, os, os_version, device_type, is_bot, country, region, city, prop_keys, prop_values, truncated FROM `tally`.events WHERE email != ''
    UNION ALL
    SELECT contact, event_id, site, event_name, occurred_at, occurred_at_ms, received_at, source, visitor_id, session_id, email, object_id, url, path, referrer, page_title, utm_source, utm_medium, utm_campaign, utm_term, utm_content, touchpoint_source, click_id_param, click_id, ip, user_agent, language, browser, browser_version, os, os_version, device_type, is_bot, country, region, city, prop_keys, prop_values, truncated FROM `tally`.events
    ALL INNER JOIN (SELECT DISTINCT visitor_id, value AS contact FROM `tally`.identities WHERE kind = 'email') USING visitor_id
    WHERE email = ''
);

CREATE TABLE IF NOT EXISTS `tally`.erasures ON CLUSTER `tally_cluster`
(
    erased_at       DateTime('UTC'),
    subject_sha256  String,
    events          UInt64,
    rejections      UInt64,
    deliveries      UInt64,
    identities      UInt64,
    person_events   UInt64,
    outbox          UInt64,
    log_completions UInt64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/tally/erasures', '{shard}-{replica}')
PARTITION BY toYYYYMM(erased_at)
ORDER BY erased_at;

CREATE TABLE IF NOT EXISTS `tally`.import_files ON CLUSTER `tally_cluster`
(
    file       String,
    run        String,
    started_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/tally/import_files', '{shard}-{replica}')
ORDER BY (file, run);
