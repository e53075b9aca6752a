-- Whether each user's tokens must be refused, from the accounts service's
-- user events (the user_blocks projection of the ACCOUNTS stream): a row per
-- user ever locked or deactivated, blocked while locked or deactivated.
-- version is the stream sequence of the last event applied to the row, so
-- an event delivered again changes nothing. Every replica loads the blocked
-- rows at start with the projection's checkpoint and follows the stream from
-- there.
CREATE TABLE user_blocks (
  user_id     text PRIMARY KEY,
  locked      boolean NOT NULL,
  deactivated boolean NOT NULL,
  changed_at  timestamptz NOT NULL,
  version     bigint NOT NULL
);
CREATE INDEX user_blocks_blocked ON user_blocks (user_id) WHERE locked OR deactivated;

-- The sequence of the last event applied to each session row (SessionStarted,
-- SessionRenamed, SessionEnded), so an event delivered again changes nothing.
ALTER TABLE sessions ADD COLUMN version bigint NOT NULL DEFAULT 0;
