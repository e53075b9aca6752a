-- Proof of email addresses.
--
-- email_verifications is kept by the "email_verifications" projection from the
-- notify service's stream (NOTIFY, notify.verification.*): one row per
-- VerificationConfirmed. Registering with an address or adding one requires a
-- row here that matches (see verifications.go in the service).
CREATE TABLE email_verifications (
    verification_id text PRIMARY KEY,
    email           text NOT NULL,                 -- normalized (lower-cased)
    purpose         text NOT NULL,                 -- registration, add_email, recovery
    user_id         text NOT NULL DEFAULT '',      -- the account concerned, if any
    confirmed_at    timestamptz NOT NULL,
    seq             bigint NOT NULL                -- NOTIFY stream sequence of the confirmation
);

-- Confirmations older than an hour prove nothing any more; the projection
-- drops them as it goes (see verifications.go).
CREATE INDEX email_verifications_confirmed_at ON email_verifications (confirmed_at);

-- Which verification proved each address a user holds; empty when an
-- administrator vouched for it.
ALTER TABLE user_emails ADD COLUMN verification_id text NOT NULL DEFAULT '';
