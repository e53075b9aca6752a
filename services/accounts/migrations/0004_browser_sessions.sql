-- Signed-in browsers, kept by the "browser_sessions" projection from
-- accounts.browser.* (started, ended) and accounts.activity.* (last activity,
-- written in batches) events.
CREATE TABLE browser_sessions (
    session_id       text PRIMARY KEY,        -- ULID: ordered by creation
    user_id          text NOT NULL,
    secret_hash      text NOT NULL UNIQUE,    -- hex SHA-256 of the cookie secret; never leaves this service
    user_agent       text NOT NULL DEFAULT '',
    ip_address       text NOT NULL DEFAULT '',  -- at the last recorded activity
    created_at       timestamptz NOT NULL,
    authenticated_at timestamptz NOT NULL,    -- when the user last proved who they are in it
    last_active_at   timestamptz NOT NULL,
    ended_at         timestamptz,
    end_reason       text NOT NULL DEFAULT '',
    version          bigint NOT NULL          -- stream sequence of the session's last event applied
);

CREATE INDEX browser_sessions_user ON browser_sessions (user_id, session_id DESC);
