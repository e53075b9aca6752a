-- The token service's OAuth 2.0 sessions of each client (a person's, or the
-- client's own: client_credentials), as far as the admin API's clients list
-- needs them (filter[has-active-sessions]): kept by the "client_token_sessions"
-- projection, which follows the TOKEN stream (token.session.*). One row per
-- session, kept once the session ended (ended), so that its start delivered
-- again does not bring it back.
CREATE TABLE client_token_sessions (
    session_id text PRIMARY KEY,
    client_id  text NOT NULL,
    ended      boolean NOT NULL DEFAULT false
);

CREATE INDEX client_token_sessions_live ON client_token_sessions (client_id) WHERE NOT ended;
