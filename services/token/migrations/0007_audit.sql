-- The token service's audit trail, kept by the "audit" projection from the
-- session and login token events: sessions started (with the client's
-- address), renamed and ended, personal tokens regenerated, login tokens
-- issued and used. Token rotations and activity are not audit events.
CREATE TABLE audit_log (
    seq         bigint PRIMARY KEY,          -- TOKEN stream sequence
    event_id    text NOT NULL,               -- ULID: ordered by time, the cursor of pages
    event_type  text NOT NULL,
    user_id     text NOT NULL DEFAULT '',
    session_id  text NOT NULL DEFAULT '',
    actor       text NOT NULL DEFAULT '',
    ip_address  text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    summary     text NOT NULL                -- never a token or a hash
);
CREATE UNIQUE INDEX audit_log_event ON audit_log (event_id);
CREATE INDEX audit_log_user ON audit_log (user_id, event_id);

-- Whose each session (and login token) is, and its kind, as the audit
-- projection learnt them: later events name only the session.
CREATE TABLE audit_subjects (
    aggregate_id text PRIMARY KEY,
    user_id      text NOT NULL,
    kind         text NOT NULL
);
