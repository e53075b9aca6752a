-- When sessions were last used (SessionsActive batches) and where their
-- clients were (the login, then refreshes), with the login's User-Agent.
ALTER TABLE sessions
  ADD COLUMN last_active_at timestamptz,
  ADD COLUMN ip_address text NOT NULL DEFAULT '',
  ADD COLUMN user_agent text NOT NULL DEFAULT '';
