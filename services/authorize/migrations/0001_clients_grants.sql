-- Read models of the authorize service.

-- Registered clients, kept by the "clients" projection.
CREATE TABLE clients (
    client_id     text PRIMARY KEY,
    metadata      jsonb NOT NULL,
    secret_hash   text NOT NULL DEFAULT '',
    source        text NOT NULL,
    registered_at timestamptz NOT NULL
);

-- Authorization grants, kept by the "grants" projection. The code hash finds
-- the grant at exchange; the aggregate itself decides.
CREATE TABLE grants (
    grant_id    text PRIMARY KEY,
    client_id   text NOT NULL,
    status      text NOT NULL,
    code_hash   text UNIQUE,
    user_id     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
