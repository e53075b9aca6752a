-- When a session that can be given no more tokens stops being usable (its
-- access token's expiry: a client's own session, or a person's OAuth
-- session without a refresh token); NULL for one that can go on. The token
-- service ends such sessions once that has passed (expiry.go), so that
-- they leave the stream and the read models like any ended one (issue 16).
ALTER TABLE sessions ADD COLUMN usable_until timestamptz;

-- Live sessions started before this column: the same, from their token rows.
UPDATE sessions s SET usable_until = x.until
FROM (SELECT session_id, max(expires_at) AS until,
             bool_or(kind = 'refresh_token' OR expires_at IS NULL) AS goes_on
      FROM tokens GROUP BY session_id) x
WHERE x.session_id = s.session_id AND s.ended_at IS NULL AND s.kind IN ('oauth', 'client_credentials') AND NOT x.goes_on;

CREATE INDEX sessions_usable_until ON sessions (usable_until, session_id)
    WHERE ended_at IS NULL AND usable_until IS NOT NULL;
