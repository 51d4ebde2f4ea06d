"""The PostgreSQL store's schema: the migrations (the version lives in
``smsproxy_schema``), the advisory locks every instance agrees on, and what the
operator is told about the server.

Migrations run at open, inside a transaction that first takes a transaction-level
advisory lock, so that several instances starting at once apply each step once.
A session-level lock is avoided on purpose: it outlives nothing when the backend
dies, and breaks behind transaction-mode poolers.
"""

__all__ = [
    "AUTOVACUUM_OFF", "CLAIM_LOCK", "CONNECT_TIMEOUT", "FEED_LOCK", "INBOUND_LOCK", "MIGRATIONS",
    "MIGRATION_LOCK", "SCHEMA_VERSION",
]

MIGRATIONS = {
    # version: the statements that bring the schema from version - 1 to version
    1: """
CREATE TABLE smsproxy_messages (
    id           text PRIMARY KEY,
    phone_number text NOT NULL,
    content      text NOT NULL,
    created_at   double precision NOT NULL,
    status       text NOT NULL,
    reason       text,
    attempts     integer NOT NULL DEFAULT 0,
    updated_at   double precision NOT NULL
);
CREATE INDEX smsproxy_messages_waiting ON smsproxy_messages (created_at)
    WHERE status = 'ACCEPTED';
CREATE TABLE smsproxy_idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    message_ids text NOT NULL,
    created_at  double precision NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX smsproxy_idempotency_keys_age ON smsproxy_idempotency_keys (created_at);
""",
    # Shared dispatch: the table is the queue, and an instance claims rows for a
    # while (a lease) before it sends them.
    2: """
ALTER TABLE smsproxy_messages
    ADD COLUMN claimed_by  text,
    ADD COLUMN claim_until double precision,
    ADD COLUMN not_before  double precision NOT NULL DEFAULT 0,
    ADD COLUMN rounds      integer NOT NULL DEFAULT 0,
    ADD COLUMN maybe_taken boolean NOT NULL DEFAULT false,
    ADD COLUMN last_error  text,
    ADD COLUMN sent_at     double precision;
DROP INDEX smsproxy_messages_waiting;
CREATE INDEX smsproxy_messages_unsent ON smsproxy_messages (created_at)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL;
""",
    # A queue table: every message leaves the unsent index within seconds, and each
    # leaves a dead entry behind until a vacuum. Vacuum (and analyze) by rows
    # changed, not by a fifth of a table that only grows, so claims stay cheap.
    3: """
ALTER TABLE smsproxy_messages SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000
);
""",
    # Every status step, written with the step itself (an outbox). Ids come from a
    # sequence in the order transactions insert, not the order they commit, so the
    # feed's positions are handed out later, to committed rows only (see feed()).
    4: """
CREATE TABLE smsproxy_events (
    id              bigserial PRIMARY KEY,
    position        bigint UNIQUE,
    event_id        text NOT NULL,
    message_id      text NOT NULL,
    sequence        integer NOT NULL,
    status          text NOT NULL,
    previous_status text,
    reason          text,
    at              double precision NOT NULL,
    UNIQUE (message_id, sequence)
);
CREATE INDEX smsproxy_events_unplaced ON smsproxy_events (id) WHERE position IS NULL;
INSERT INTO smsproxy_events (event_id, message_id, sequence, status, at)
    SELECT gen_random_uuid()::text, id, 1, 'ACCEPTED', created_at
    FROM smsproxy_messages ORDER BY created_at;
INSERT INTO smsproxy_events (event_id, message_id, sequence, status, previous_status,
                             reason, at)
    SELECT gen_random_uuid()::text, id, 2, status, 'ACCEPTED', reason, updated_at
    FROM smsproxy_messages WHERE status != 'ACCEPTED' ORDER BY updated_at;
""",
    # Status callbacks: a message's URL, and each event's delivery to it, claimed by
    # one instance at a time (a lease, as for batches).
    5: """
ALTER TABLE smsproxy_messages ADD COLUMN callback_url text, ADD COLUMN callback_origin text;
ALTER TABLE smsproxy_events
    ADD COLUMN callback_url      text,
    ADD COLUMN callback_origin   text,
    ADD COLUMN callback_state    text,
    ADD COLUMN callback_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN callback_due      double precision,
    ADD COLUMN callback_error    text,
    ADD COLUMN claimed_by        text,
    ADD COLUMN claim_until       double precision;
CREATE INDEX smsproxy_events_callbacks_due ON smsproxy_events (callback_due)
    WHERE callback_state = 'pending';
""",
    # Finding messages by status, newest first (GET /sms?status=...).
    6: """
CREATE INDEX smsproxy_messages_by_status ON smsproxy_messages (status, created_at, id);
""",
    # A message's own deadline to leave for the provider (deliver_within, a class), and
    # the unsent ones that have one, by it: claims take the earliest deadlines first.
    7: """
ALTER TABLE smsproxy_messages ADD COLUMN deliver_by double precision,
    ADD COLUMN delivery_class text;
CREATE INDEX smsproxy_messages_unsent_by_deadline ON smsproxy_messages (deliver_by)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL AND deliver_by IS NOT NULL;
""",
    # A message's validity: after it, it is never sent (valid_for, valid_until).
    8: """
ALTER TABLE smsproxy_messages ADD COLUMN valid_until double precision;
""",
    # Scheduled sending (send_at): the row's not-before time holds it back until due.
    9: """
ALTER TABLE smsproxy_messages ADD COLUMN send_at double precision;
""",
    # One engine: a message's deadline counts from when it is ready (accepted, or
    # due by its send_at), as on every store; claims and expiry read it from indexes.
    10: """
ALTER TABLE smsproxy_messages ADD COLUMN ready_at double precision;
UPDATE smsproxy_messages SET ready_at = coalesce(send_at, created_at);
DROP INDEX smsproxy_messages_unsent;
CREATE INDEX smsproxy_messages_unsent ON smsproxy_messages (ready_at)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL;
CREATE INDEX smsproxy_messages_unsent_by_validity ON smsproxy_messages (valid_until)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL AND valid_until IS NOT NULL;
""",
    # Event ids are derived from (message id, sequence), not stored: an event recorded
    # before keeps the random one it was given.
    11: """
ALTER TABLE smsproxy_events ALTER COLUMN event_id DROP NOT NULL;
""",
    # A message's sender, the provider that took it (or may have it, after an unknown
    # outcome) and that provider's own id for it (its reports name it so); each
    # provider's health and weight, shared by the instances.
    12: """
ALTER TABLE smsproxy_messages ADD COLUMN sender text;
ALTER TABLE smsproxy_messages ADD COLUMN provider text;
ALTER TABLE smsproxy_messages ADD COLUMN provider_ref text;
CREATE INDEX smsproxy_messages_by_ref ON smsproxy_messages (provider_ref)
    WHERE provider_ref IS NOT NULL;
CREATE TABLE smsproxy_routes (
    name           text PRIMARY KEY,
    down           boolean NOT NULL,
    weight         integer NOT NULL,
    probe_at       double precision NOT NULL,
    probe_interval double precision NOT NULL,
    changed_at     double precision NOT NULL
);
""",
    # The key (tenant) that sent a message; the suppression list, replies and each key's
    # count against its daily quota, shared by the instances.
    13: """
ALTER TABLE smsproxy_messages ADD COLUMN tenant text;
CREATE TABLE smsproxy_suppressions (
    number text PRIMARY KEY,
    reason text NOT NULL,
    source text NOT NULL,
    at     double precision NOT NULL
);
CREATE TABLE smsproxy_inbound (
    position    bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    provider    text NOT NULL,
    from_number text NOT NULL,
    to_number   text NOT NULL,
    content     text NOT NULL,
    received_at double precision NOT NULL,
    keyword     text,
    stored_at   double precision NOT NULL,
    callback_url      text,
    callback_state    text,
    callback_attempts integer NOT NULL DEFAULT 0,
    callback_due      double precision,
    callback_error    text,
    claimed_by        text,
    claim_until       double precision
);
CREATE INDEX smsproxy_inbound_callbacks_due ON smsproxy_inbound (callback_due)
    WHERE callback_state = 'pending';
CREATE TABLE smsproxy_quota_use (
    tenant text NOT NULL,
    day    integer NOT NULL,
    used   integer NOT NULL,
    PRIMARY KEY (tenant, day)
);
""",
}

SCHEMA_VERSION = max(MIGRATIONS)

MIGRATION_LOCK = 0x736D7370  # "smsp": any fixed number all instances agree on
CLAIM_LOCK = MIGRATION_LOCK + 1
FEED_LOCK = MIGRATION_LOCK + 2
INBOUND_LOCK = MIGRATION_LOCK + 3

CONNECT_TIMEOUT = 5
"""Seconds to wait for the server when connecting; a transaction never waits longer."""

AUTOVACUUM_OFF = (
    "autovacuum is off on this PostgreSQL server: sent messages and delivered callbacks "
    "leave dead rows in the queues' indexes, and claims slow down as they pile up; turn "
    "it on, or run VACUUM ANALYZE smsproxy_messages, smsproxy_events every few minutes"
)
