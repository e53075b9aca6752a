-- When a user's session ended, so that the row leaves once the TOKEN stream
-- has dropped the session (oauth.ended_session_retention with
-- compact_sessions): a rebuild then finds neither. Rows ended before this
-- column count from now.
ALTER TABLE user_token_sessions ADD COLUMN ended_at timestamptz;
UPDATE user_token_sessions SET ended_at = now() WHERE ended;
CREATE INDEX user_token_sessions_ended ON user_token_sessions (ended_at) WHERE ended;
