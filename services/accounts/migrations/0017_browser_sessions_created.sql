-- The hourly sweep of browser sessions past their longest life and the
-- retention (browser_retention.go) finds them by their start instead of
-- reading every session.
CREATE INDEX browser_sessions_created ON browser_sessions (created_at);
