-- Read model of email verifications, kept by the "verifications" projection
-- from notify.verification.* events. Codes and tickets are never stored, only
-- the hashes below; the event log is the truth and every check loads it.
CREATE TABLE verifications (
    id              text PRIMARY KEY,              -- ULID
    email           text NOT NULL,                 -- normalized address
    purpose         text NOT NULL,                 -- registration, add_email or recovery
    user_id         text NOT NULL DEFAULT '',
    status          text NOT NULL,                 -- pending, confirmed or locked (too many wrong codes)
    issue           integer NOT NULL,              -- current code or ticket: 1, then +1 per resend
    failed_attempts integer NOT NULL DEFAULT 0,
    delivered_issue integer NOT NULL DEFAULT 0,    -- last issue whose email the mail server accepted
    delivery_error  text NOT NULL DEFAULT '',      -- the mail server's last permanent refusal
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL                -- stream sequence of the last event applied
);

CREATE INDEX verifications_email ON verifications (email, created_at);

-- Every recovery ticket ever issued, by hash, so a link finds its
-- verification (which then says whether it is current, expired or used).
CREATE TABLE recovery_tickets (
    ticket_hash     text PRIMARY KEY,              -- SHA-256 (hex) of the ticket
    verification_id text NOT NULL,
    issue           integer NOT NULL
);
