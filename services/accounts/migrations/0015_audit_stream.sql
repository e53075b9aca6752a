-- The accounts service's audit trail as the AUDIT stream holds it (the
-- "accounts_audit" projection of audit.accounts.* entries, appended by the
-- audit reactor): one row per audited event, dropped once older than the
-- retention (audit.retention). audit_log, kept from the ACCOUNTS stream
-- before, is no longer written.
CREATE TABLE audit_entries (
    event_id       text PRIMARY KEY,          -- the audited event's ULID: ordered by time, the cursor of pages
    seq            bigint NOT NULL UNIQUE,    -- AUDIT stream sequence (the legacy pages' cursor)
    event_type     text NOT NULL,
    user_id        text NOT NULL DEFAULT '',
    actor          text NOT NULL DEFAULT '',
    occurred_at    timestamptz NOT NULL,
    summary        text NOT NULL,             -- never a secret; erased_summary once the user is erased
    erased_summary text NOT NULL,             -- the summary without personal data
    ip_address     text NOT NULL DEFAULT ''   -- a sign-in's; empty once the user is erased
);
CREATE INDEX audit_entries_user ON audit_entries (user_id, event_id);
CREATE INDEX audit_entries_user_seq ON audit_entries (user_id, seq DESC);
CREATE INDEX audit_entries_age ON audit_entries (occurred_at);
