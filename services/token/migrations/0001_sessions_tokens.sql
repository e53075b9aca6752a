-- Read models of the token service.

-- Sessions, kept by the "sessions" projection.
CREATE TABLE sessions (
    session_id  text PRIMARY KEY,
    kind        text NOT NULL,
    client_id   text NOT NULL,
    user_id     text NOT NULL DEFAULT '',
    username    text NOT NULL DEFAULT '',
    scope       text NOT NULL DEFAULT '',
    device_id   text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    end_reason  text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC) WHERE user_id <> '';

-- Tokens by hash, kept by the same projection: introspection's fallback when
-- a token is not in memory, and the way from a refresh token to its session.
CREATE TABLE tokens (
    token_hash  text PRIMARY KEY,             -- SHA-256 hex; tokens themselves are never stored
    session_id  text NOT NULL REFERENCES sessions (session_id),
    kind        text NOT NULL,                -- access_token | refresh_token
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz,                  -- NULL: until rotated or revoked
    revoked     boolean NOT NULL DEFAULT false
);
CREATE INDEX tokens_session ON tokens (session_id);
