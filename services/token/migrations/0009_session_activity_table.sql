-- Each session's last use, kept apart from the session's row so that it is
-- the same whatever the order its sources arrive in (issue 16): the
-- activity batches (SessionsActive, applied whether or not the session's
-- row exists yet: a rebuild from a compacted TOKEN stream may meet a batch
-- before the session's one remaining event) and the last use each session
-- event carries (SessionSnapshot.last_use). Readers take the newer of this
-- and sessions.last_active_at (imports). Rows go with their session.
CREATE TABLE session_activity (
    session_id     text PRIMARY KEY,
    last_active_at timestamptz NOT NULL,
    ip_address     text NOT NULL DEFAULT '',  -- newest client address noted; '' once erased
    ip_at          timestamptz,               -- when it was noted (NULL: none)
    carried_at     timestamptz,               -- what the session's last event carries:
    carried_ip_at  timestamptz                -- the fold (activity_fold.go) writes the rest
);
