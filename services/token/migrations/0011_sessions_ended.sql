-- The hourly sweep of long-ended sessions (dropEnded) finds them by their end
-- instead of reading every session: a person's at the retention's age, a
-- client's own (client_credentials) sooner.
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX sessions_client_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL AND kind = 'client_credentials';
