-- The token service's OAuth 2.0 and compatibility sessions of users, as far
-- as the admin API's user filters need them (filter[active-oauth2-client],
-- filter[has-active-oauth2-session], filter[has-active-compat-session]):
-- kept by the "user_token_sessions" projection, which follows the TOKEN stream
-- (token.session.*). One row per session of a user, kept once the session
-- ended (ended), so that its start delivered again does not bring it back.
CREATE TABLE user_token_sessions (
    session_id text PRIMARY KEY,
    user_id    text NOT NULL,
    -- "oauth" or "compat" (client_credentials and personal sessions are not kept).
    kind       text NOT NULL,
    client_id  text NOT NULL,
    ended      boolean NOT NULL DEFAULT false
);

CREATE INDEX user_token_sessions_live ON user_token_sessions (user_id, kind, client_id) WHERE NOT ended;
