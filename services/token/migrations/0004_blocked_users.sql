-- Users whose tokens must not work, from the accounts service's user events
-- (the blocked_users projection of the ACCOUNTS stream): one row per user who
-- is locked or deactivated now. Every replica loads it at start with the
-- projection's checkpoint and follows the stream from there.
CREATE TABLE blocked_users (
  user_id     text PRIMARY KEY,
  locked      boolean NOT NULL,
  deactivated boolean NOT NULL,
  changed_at  timestamptz NOT NULL
);
