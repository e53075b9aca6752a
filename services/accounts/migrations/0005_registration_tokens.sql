-- Registration tokens, kept by the "registration_tokens" projection.
CREATE TABLE registration_tokens (
    token_id     text PRIMARY KEY,
    token_hash   text NOT NULL UNIQUE,   -- SHA-256 hex; tokens themselves are never stored
    uses_allowed integer NOT NULL,       -- 0: unlimited
    uses         integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked      boolean NOT NULL DEFAULT false
);
