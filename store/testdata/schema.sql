CREATE DATABASE IF NOT EXISTS `tally`;

CREATE TABLE IF NOT EXISTS `tally`.schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version;

CREATE TABLE IF NOT EXISTS `tally`.events
(
    event_id          String COMMENT 'browser-minted UUID, the API uuid, or an id derived from an import row; unique per event_name',
    site              String COMMENT 'site id from tally.yaml',
    event_name        String COMMENT 'internal event name',
    occurred_at       DateTime('UTC') COMMENT 'when the event happened, whole seconds',
    occurred_at_ms    UInt16 COMMENT 'milliseconds of occurred_at (0-999)',
    received_at       DateTime('UTC') COMMENT 'when tally accepted it',
    source            String COMMENT 'browser | api | import',
    visitor_id        String COMMENT 'first-party cookie id (browser) or utk (API)',
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
    touchpoint_source String COMMENT 'DIRECT_TRAFFIC, ORGANIC_SEARCH, PAID_SEARCH, SOCIAL_MEDIA, PAID_SOCIAL, EMAIL_MARKETING, REFERRALS, OTHER_CAMPAIGNS',
    click_id_param    String COMMENT 'which click id the landing URL carried (gclid, fbclid, ...)',
    click_id          String,
    ip                String COMMENT 'client IP, anonymised when privacy.anonymize_ip is on',
    user_agent        String,
    language          String,
    browser           String,
    browser_version   String,
    os                String,
    os_version        String,
    device_type       String COMMENT 'Desktop, Smartphone, Tablet, Smart TV, Game Console, Wearable Computer, Unknown',
    is_bot            UInt8,
    country           String COMMENT 'ISO 3166-1 alpha-2',
    region            String,
    city              String,
    prop_keys         Array(String) COMMENT 'custom property names, sorted; typed in the event_<name> views',
    prop_values       Array(String) COMMENT 'values of prop_keys, normalised by type',
    truncated         Array(String) COMMENT 'what the snippet path cut or dropped, as name: reason',
    debug UInt8 DEFAULT 0,
    mirror Array(String) DEFAULT []
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (site, event_name, toDate(occurred_at), event_id);

CREATE TABLE IF NOT EXISTS `tally`.rejections
(
    rejected_at DateTime('UTC'),
    site        String,
    source      String COMMENT 'browser | api | import',
    event_name  String,
    reason      String COMMENT 'machine code, e.g. UNKNOWN_PROPERTY, VALUE_TOO_LONG',
    field       String COMMENT 'path of the offending field, e.g. inputs[3].properties.year',
    payload     String COMMENT 'the offending input, at most 4096 bytes'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (site, reason, rejected_at);

CREATE TABLE IF NOT EXISTS `tally`.deliveries
(
    event_id       String,
    event_name     String COMMENT 'tally event name; joins events on (event_name, event_id)',
    rule           String,
    destination    String,
    forwarded_name String COMMENT 'event name sent to the destination, e.g. Lead',
    status         String COMMENT 'sent | retrying | failed | expired | skipped_consent | ...',
    attempts       UInt32,
    http_status    UInt16 COMMENT '0 when no HTTP answer was received',
    fbtrace_id     String,
    error          String,
    created_at     DateTime('UTC') COMMENT 'when the forward was first queued',
    updated_at     DateTime('UTC') COMMENT 'when this outcome happened',
    payload String DEFAULT '',
    response String DEFAULT '',
    trace_id String DEFAULT fbtrace_id
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(updated_at)
ORDER BY (destination, rule, updated_at);

CREATE TABLE IF NOT EXISTS `tally`.typed_views
(
    name       String,
    event_name String,
    ddl        String,
    dropped    UInt8,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;

CREATE TABLE IF NOT EXISTS `tally`.rule_state
(
    rule       String,
    hash       String COMMENT 'identifies the rule when and forward it was enabled with',
    enabled_ns UInt64 COMMENT 'when it was enabled, nanoseconds since the epoch',
    removed    UInt8,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY rule;

CREATE TABLE IF NOT EXISTS `tally`.identities
(
    kind       String COMMENT 'email | external_id',
    value      String COMMENT 'the email (trimmed, lower-cased) or the external id',
    visitor_id String COMMENT 'the visitor id (cookie or utk) the identifier was sent with',
    site       String,
    seen_at    DateTime('UTC') COMMENT 'occurred time of a completion that carried both (the last one written)'
)
ENGINE = ReplacingMergeTree
ORDER BY (kind, value, visitor_id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS `tally`.person_events
(
    person         String COMMENT 'e:<email>, v:<visitor id> or o:<object id>',
    occurred_at    DateTime('UTC'),
    occurred_at_ms UInt16,
    event_name     String,
    event_id       String,
    site           String
)
ENGINE = ReplacingMergeTree
ORDER BY (person, occurred_at, occurred_at_ms, event_name, event_id)
SETTINGS index_granularity = 1024;

INSERT INTO `tally`.person_events (person, occurred_at, occurred_at_ms, event_name, event_id, site)
SELECT person, occurred_at, occurred_at_ms, event_name, event_id, site FROM `tally`.events
ARRAY JOIN arrayFilter(p -> length(p) > 2, [concat('e:', lower(replaceRegexpAll(email, '^\\s+|\\s+$', ''))), concat('v:', visitor_id), concat('o:', object_id)]) AS person;

INSERT INTO `tally`.identities (kind, value, visitor_id, site, seen_at)
SELECT 'email', lower(replaceRegexpAll(email, '^\\s+|\\s+$', '')) AS value, visitor_id, any(site), max(occurred_at) FROM `tally`.events
WHERE email != '' AND visitor_id != ''
GROUP BY value, visitor_id;

DROP TABLE IF EXISTS `tally`.`contact_timeline`;

CREATE VIEW `tally`.`contact_timeline` AS
SELECT contact, event_id, site, event_name, occurred_at, occurred_at_ms, received_at, source, visitor_id, session_id, email, object_id, url, path, referrer, page_title, utm_source, utm_medium, utm_campaign, utm_term, utm_content, touchpoint_source, click_id_param, click_id, ip, user_agent, language, browser, browser_version, os, os_version, device_type, is_bot, country, region, city, prop_keys, prop_values, truncated FROM (
    SELECT lower(replaceRegexpAll(email, '^\\s+|\\s+$', '')) AS contact, event_id, site, event_name, occurred_at, occurred_at_ms, received_at, source, visitor_id, session_id, email, object_id, url, path, referrer, page_title, utm_source, utm_medium, utm_campaign, utm_term, utm_content, touchpoint_source, click_id_param, click_id, ip, user_agent, language, browser, browser_version, os, os_version, device_type, is_bot, country, region, city, prop_keys, prop_values, truncated FROM `tally`.events WHERE email != ''
    UNION ALL
    SELECT contact, event_id, site, event_name, occurred_at, occurred_at_ms, received_at, source, visitor_id, session_id, email, object_id, url, path, referrer, page_title, utm_source, utm_medium, utm_campaign, utm_term, utm_content, touchpoint_source, click_id_param, click_id, ip, user_agent, language, browser, browser_version, os, os_version, device_type, is_bot, country, region, city, prop_keys, prop_values, truncated FROM `tally`.events
    ALL INNER JOIN (SELECT DISTINCT visitor_id, value AS contact FROM `tally`.identities WHERE kind = 'email') USING visitor_id
    WHERE email = ''
);

CREATE TABLE IF NOT EXISTS `tally`.erasures
(
    erased_at       DateTime('UTC'),
    subject_sha256  String COMMENT 'SHA-256 of the erased identifiers',
    events          UInt64,
    rejections      UInt64,
    deliveries      UInt64,
    identities      UInt64,
    person_events   UInt64,
    outbox          UInt64 COMMENT 'pending forwards removed from the outbox',
    log_completions UInt64 COMMENT 'completions the durable log still held, dropped by its readers'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(erased_at)
ORDER BY erased_at;

CREATE TABLE IF NOT EXISTS `tally`.import_files
(
    file       String COMMENT 'SHA-256 of the imported file, in hex',
    run        String COMMENT 'the import run: the parts tally import sends share one',
    started_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (file, run);
