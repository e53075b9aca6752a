-- The token service's audit trail as the AUDIT stream holds it (the
-- "token_audit" projection of audit.token.* entries, appended by the audit
-- reactor): one row per audited event, dropped once older than the
-- retention (audit.retention). audit_log and audit_subjects, kept from the
-- TOKEN stream before, are no longer written.
CREATE TABLE audit_entries (
    event_id    text PRIMARY KEY,            -- the audited event's ULID: ordered by time, the cursor of pages
    event_type  text NOT NULL,
    user_id     text NOT NULL DEFAULT '',
    session_id  text NOT NULL DEFAULT '',
    actor       text NOT NULL DEFAULT '',
    ip_address  text NOT NULL DEFAULT '',    -- empty once the user is erased
    occurred_at timestamptz NOT NULL,
    summary     text NOT NULL                -- never a token or a hash
);
CREATE INDEX audit_entries_user ON audit_entries (user_id, event_id);
CREATE INDEX audit_entries_age ON audit_entries (occurred_at);
