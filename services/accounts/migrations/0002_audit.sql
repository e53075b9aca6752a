-- Audit log, kept by the "audit" projection from every accounts event.
CREATE TABLE audit_log (
    seq         bigint PRIMARY KEY,           -- JetStream stream sequence
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    user_id     text NOT NULL DEFAULT '',
    actor       text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    summary     text NOT NULL
);

CREATE INDEX audit_log_user ON audit_log (user_id, seq DESC);
