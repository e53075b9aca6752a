-- A session's kind, so that a client's own ended session (client_credentials)
-- leaves when the TOKEN stream drops it, sooner than a person's
-- (config.EndedClientSessionRetention). Rows from before this column have
-- none and leave at the longer age, as the TOKEN stream keeps their ends.
ALTER TABLE client_token_sessions ADD COLUMN kind text NOT NULL DEFAULT '';
