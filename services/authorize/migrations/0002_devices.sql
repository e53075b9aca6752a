-- Device authorization grants (RFC 8628), kept by the "devices" projection.
-- The device code hash finds the grant when the device polls, the user code
-- hash when a person types the code on the /link page; the aggregate itself
-- decides. User codes are short (about 35 bits) and may repeat over time, so
-- their hash is not unique: the newest grant with a code wins, and a new code
-- is drawn when a live grant already has it.
CREATE TABLE devices (
    device_grant_id  text PRIMARY KEY,
    client_id        text NOT NULL,
    device_code_hash text NOT NULL UNIQUE,
    user_code_hash   text NOT NULL,
    status           text NOT NULL,
    user_id          text NOT NULL DEFAULT '',
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE INDEX devices_user_code ON devices (user_code_hash, created_at DESC);
