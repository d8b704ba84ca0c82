-- pbx-bridge foundation schema (PostgreSQL). Kept equivalent to
-- migrations/sqlite/0001_foundation.sql: same tables, columns and
-- constraints; only the dialect differs. Timestamps are UTC epoch
-- milliseconds; lists and small nested objects are JSON text.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    allowed_networks TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    prefix           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_used_at     BIGINT
);

CREATE TABLE periods (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    time_zone  TEXT NOT NULL,
    ranges     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE holidays (
    id         BIGSERIAL PRIMARY KEY,
    date       TEXT NOT NULL,
    name       TEXT NOT NULL,
    period_id  BIGINT REFERENCES periods(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE departments (
    id                      BIGSERIAL PRIMARY KEY,
    name                    TEXT NOT NULL,
    description             TEXT NOT NULL,
    active                  BOOLEAN NOT NULL,
    sort_order              BIGINT NOT NULL,
    pabx_code               BIGINT UNIQUE CHECK (pabx_code BETWEEN 100 AND 999),
    ring_strategy           TEXT NOT NULL,
    ring_target             TEXT NOT NULL,
    ring_count              BIGINT,
    agent_ring_timeout_s    BIGINT NOT NULL,
    ring_timeout_s          BIGINT NOT NULL,
    overflow_department_id  BIGINT REFERENCES departments(id),
    close_on_hangup         BOOLEAN NOT NULL,
    record                  BOOLEAN NOT NULL,
    period_id               BIGINT REFERENCES periods(id),
    after_hours             TEXT,
    auto_pause_after_missed BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);

CREATE TABLE extensions (
    id                BIGSERIAL PRIMARY KEY,
    number            TEXT NOT NULL UNIQUE,
    display_name      TEXT NOT NULL,
    secret            TEXT NOT NULL,
    digest_algorithms TEXT NOT NULL,
    active            BOOLEAN NOT NULL,
    follow_me         TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE agents (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    extension_id BIGINT UNIQUE REFERENCES extensions(id),
    active       BOOLEAN NOT NULL,
    pause_reason TEXT,
    paused_at    BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE agent_departments (
    agent_id       BIGINT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    department_id  BIGINT NOT NULL REFERENCES departments(id),
    receives_calls BOOLEAN NOT NULL,
    responsible    BOOLEAN NOT NULL,
    position       BIGINT NOT NULL,
    PRIMARY KEY (agent_id, department_id)
);

CREATE TABLE trunks (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    host               TEXT NOT NULL,
    port               BIGINT NOT NULL,
    transport          TEXT NOT NULL,
    username           TEXT,
    secret             TEXT,
    register           BOOLEAN NOT NULL,
    register_expires_s BIGINT NOT NULL,
    max_channels       BIGINT,
    inbound            TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE TABLE trunk_did_routes (
    trunk_id      BIGINT NOT NULL REFERENCES trunks(id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    did           TEXT NOT NULL,
    department_id BIGINT REFERENCES departments(id),
    extension_id  BIGINT REFERENCES extensions(id),
    PRIMARY KEY (trunk_id, did)
);

CREATE TABLE outbound_routes (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    priority   BIGINT NOT NULL,
    patterns   TEXT NOT NULL,
    strip      BIGINT NOT NULL,
    prepend    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE outbound_route_trunks (
    route_id BIGINT NOT NULL REFERENCES outbound_routes(id) ON DELETE CASCADE,
    trunk_id BIGINT NOT NULL REFERENCES trunks(id),
    position BIGINT NOT NULL,
    PRIMARY KEY (route_id, trunk_id)
);

CREATE TABLE outbound_route_extensions (
    route_id     BIGINT NOT NULL REFERENCES outbound_routes(id) ON DELETE CASCADE,
    extension_id BIGINT NOT NULL REFERENCES extensions(id),
    PRIMARY KEY (route_id, extension_id)
);

CREATE TABLE pbx (
    id           BIGINT PRIMARY KEY CHECK (id = 1),
    ami_host     TEXT NOT NULL,
    ami_port     BIGINT NOT NULL,
    ami_username TEXT NOT NULL,
    ami_secret   TEXT,
    sip_host     TEXT NOT NULL,
    sip_port     BIGINT NOT NULL,
    enabled      BOOLEAN NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE acl_rules (
    id         BIGSERIAL PRIMARY KEY,
    position   BIGINT NOT NULL,
    cidr       TEXT NOT NULL,
    action     TEXT NOT NULL,
    applies_to TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE webhooks (
    id         BIGSERIAL PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,
    active     BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    webhook_id       BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    last_status_code BIGINT,
    last_error       TEXT,
    next_attempt_at  BIGINT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE protocol_sequences (
    day  TEXT PRIMARY KEY,
    last BIGINT NOT NULL
);

CREATE TABLE attendances (
    protocol              TEXT PRIMARY KEY,
    direction             TEXT NOT NULL,
    status                TEXT NOT NULL,
    department_id         BIGINT,
    agent_id              BIGINT,
    caller                TEXT NOT NULL,
    callee                TEXT NOT NULL,
    opened_at             BIGINT NOT NULL,
    answered_at           BIGINT,
    ended_at              BIGINT,
    closed_at             BIGINT,
    close_reason          TEXT,
    source                TEXT NOT NULL,
    transfers             TEXT NOT NULL,
    recording_path        TEXT,
    recording_duration_ms BIGINT,
    recording_bytes       BIGINT,
    recording_sha256      TEXT,
    last_activity_at      BIGINT NOT NULL,
    call_ref              TEXT
);
CREATE INDEX attendances_by_opened ON attendances (opened_at);
CREATE INDEX attendances_by_status ON attendances (status, opened_at);

CREATE TABLE idempotency_keys (
    token_id    BIGINT NOT NULL,
    key         TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (token_id, key)
);
