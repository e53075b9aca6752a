-- Read models of AUTHORIZE_PENDING (short-lived aggregates that expire).
-- Each row goes when its aggregate's events expire (the marker JetStream
-- leaves), or when a later event finds its purge_at passed. They replace
-- "grants" and "devices", fed from AUTHORIZE before the split; those tables
-- are no longer written or read (grants and device grants in flight at the
-- upgrade are started again), and a later version drops them.

-- Authorization grants, kept by the "pending_grants" projection. The code
-- hash finds the grant at exchange; the aggregate itself decides.
CREATE TABLE pending_grants (
    grant_id    text PRIMARY KEY,
    client_id   text NOT NULL,
    status      text NOT NULL,
    code_hash   text UNIQUE,
    user_id     text NOT NULL DEFAULT '',
    purge_at    timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint NOT NULL DEFAULT 0
);
CREATE INDEX pending_grants_purge ON pending_grants (purge_at);

-- Device authorization grants (RFC 8628), kept by the "pending_devices"
-- projection: the device code hash finds the grant when the device polls,
-- the user code hash (not unique: codes are short and repeat over time, never
-- among live grants) when a person types the code.
CREATE TABLE pending_devices (
    device_grant_id  text PRIMARY KEY,
    client_id        text NOT NULL,
    device_code_hash text NOT NULL UNIQUE,
    user_code_hash   text NOT NULL,
    status           text NOT NULL,
    user_id          text NOT NULL DEFAULT '',
    expires_at       timestamptz NOT NULL,
    purge_at         timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint NOT NULL DEFAULT 0
);
CREATE INDEX pending_devices_user_code ON pending_devices (user_code_hash, created_at DESC);
CREATE INDEX pending_devices_purge ON pending_devices (purge_at);

-- Dynamically registered clients no person has approved yet, kept by the
-- "pending_clients" projection until they expire; an approved client is in
-- "clients".
CREATE TABLE pending_clients (
    client_id     text PRIMARY KEY,
    metadata      jsonb NOT NULL,
    secret_hash   text NOT NULL DEFAULT '',
    expires_at    timestamptz NOT NULL,
    registered_at timestamptz NOT NULL,
    version       bigint NOT NULL DEFAULT 0
);
CREATE INDEX pending_clients_expiry ON pending_clients (expires_at);
