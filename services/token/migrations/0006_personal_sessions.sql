-- Personal sessions (kind 'personal', personal access tokens): who created
-- one for its user (an administrator for a bot, or the user themselves);
-- empty when a client did (client_id) or the admin CLI.
ALTER TABLE sessions ADD COLUMN owner_user_id text NOT NULL DEFAULT '';
CREATE INDEX sessions_kind ON sessions (kind, session_id);
