-- pbx-bridge foundation schema (SQLite). Kept equivalent to
-- migrations/postgres/0001_foundation.sql: same tables, columns and
-- constraints; only the dialect differs. Timestamps are UTC epoch
-- milliseconds; lists and small nested objects are JSON text.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    allowed_networks TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    prefix           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_used_at     INTEGER
);

CREATE TABLE periods (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    time_zone  TEXT NOT NULL,
    ranges     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE holidays (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    date       TEXT NOT NULL,
    name       TEXT NOT NULL,
    period_id  INTEGER REFERENCES periods(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE departments (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    name                    TEXT NOT NULL,
    description             TEXT NOT NULL,
    active                  INTEGER NOT NULL,
    sort_order              INTEGER NOT NULL,
    pabx_code               INTEGER UNIQUE CHECK (pabx_code BETWEEN 100 AND 999),
    ring_strategy           TEXT NOT NULL,
    ring_target             TEXT NOT NULL,
    ring_count              INTEGER,
    agent_ring_timeout_s    INTEGER NOT NULL,
    ring_timeout_s          INTEGER NOT NULL,
    overflow_department_id  INTEGER REFERENCES departments(id),
    close_on_hangup         INTEGER NOT NULL,
    record                  INTEGER NOT NULL,
    period_id               INTEGER REFERENCES periods(id),
    after_hours             TEXT,
    auto_pause_after_missed INTEGER,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);

CREATE TABLE extensions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    number            TEXT NOT NULL UNIQUE,
    display_name      TEXT NOT NULL,
    secret            TEXT NOT NULL,
    digest_algorithms TEXT NOT NULL,
    active            INTEGER NOT NULL,
    follow_me         TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE agents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    extension_id INTEGER UNIQUE REFERENCES extensions(id),
    active       INTEGER NOT NULL,
    pause_reason TEXT,
    paused_at    INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE agent_departments (
    agent_id       INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    department_id  INTEGER NOT NULL REFERENCES departments(id),
    receives_calls INTEGER NOT NULL,
    responsible    INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    PRIMARY KEY (agent_id, department_id)
);

CREATE TABLE trunks (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL UNIQUE,
    host               TEXT NOT NULL,
    port               INTEGER NOT NULL,
    transport          TEXT NOT NULL,
    username           TEXT,
    secret             TEXT,
    register           INTEGER NOT NULL,
    register_expires_s INTEGER NOT NULL,
    max_channels       INTEGER,
    inbound            TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE trunk_did_routes (
    trunk_id      INTEGER NOT NULL REFERENCES trunks(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    did           TEXT NOT NULL,
    department_id INTEGER REFERENCES departments(id),
    extension_id  INTEGER REFERENCES extensions(id),
    PRIMARY KEY (trunk_id, did)
);

CREATE TABLE outbound_routes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    patterns   TEXT NOT NULL,
    strip      INTEGER NOT NULL,
    prepend    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE outbound_route_trunks (
    route_id INTEGER NOT NULL REFERENCES outbound_routes(id) ON DELETE CASCADE,
    trunk_id INTEGER NOT NULL REFERENCES trunks(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (route_id, trunk_id)
);

CREATE TABLE outbound_route_extensions (
    route_id     INTEGER NOT NULL REFERENCES outbound_routes(id) ON DELETE CASCADE,
    extension_id INTEGER NOT NULL REFERENCES extensions(id),
    PRIMARY KEY (route_id, extension_id)
);

CREATE TABLE pbx (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    ami_host     TEXT NOT NULL,
    ami_port     INTEGER NOT NULL,
    ami_username TEXT NOT NULL,
    ami_secret   TEXT,
    sip_host     TEXT NOT NULL,
    sip_port     INTEGER NOT NULL,
    enabled      INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE acl_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    position   INTEGER NOT NULL,
    cidr       TEXT NOT NULL,
    action     TEXT NOT NULL,
    applies_to TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,
    active     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT,
    next_attempt_at  INTEGER,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE protocol_sequences (
    day  TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);

CREATE TABLE attendances (
    protocol              TEXT PRIMARY KEY,
    direction             TEXT NOT NULL,
    status                TEXT NOT NULL,
    department_id         INTEGER,
    agent_id              INTEGER,
    caller                TEXT NOT NULL,
    callee                TEXT NOT NULL,
    opened_at             INTEGER NOT NULL,
    answered_at           INTEGER,
    ended_at              INTEGER,
    closed_at             INTEGER,
    close_reason          TEXT,
    source                TEXT NOT NULL,
    transfers             TEXT NOT NULL,
    recording_path        TEXT,
    recording_duration_ms INTEGER,
    recording_bytes       INTEGER,
    recording_sha256      TEXT,
    last_activity_at      INTEGER NOT NULL,
    call_ref              TEXT
);
CREATE INDEX attendances_by_opened ON attendances (opened_at);
CREATE INDEX attendances_by_status ON attendances (status, opened_at);

CREATE TABLE idempotency_keys (
    token_id    INTEGER NOT NULL,
    key         TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (token_id, key)
);
