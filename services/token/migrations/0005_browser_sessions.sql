-- The browser session (accounts) each OAuth or compat session was started
-- from: the grant's, the device approval's or the login token's; '' when none
-- (client_credentials, password logins, sessions started before this column).
-- A back-channel logout from an upstream provider set to logout_all ends the
-- sessions started from the browser sessions it ends.
ALTER TABLE sessions ADD COLUMN browser_session_id text NOT NULL DEFAULT '';

CREATE INDEX sessions_browser_session ON sessions (browser_session_id) WHERE browser_session_id <> '';
