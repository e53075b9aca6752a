-- Personal data is sealed under personal keys (platform/personal) and erasable.
--
-- users: erased marks a user deactivated with erase, whose address, display
-- name and password are gone for good (the row keeps the username, reserved);
-- password_personal tells a hash sealed under the user's personal key from
-- one an earlier version sealed under the key-encryption key (sealed again
-- under the personal key at start).
ALTER TABLE users
    ADD COLUMN erased boolean NOT NULL DEFAULT false,
    ADD COLUMN password_personal boolean NOT NULL DEFAULT false;

-- audit_log: each entry's summary as it reads without personal data; erasing
-- the user replaces the summaries of their entries with it. Entries written
-- before this column have none (NULL): an erasure then leaves only the
-- event's type.
ALTER TABLE audit_log ADD COLUMN erased_summary text;

-- browser_sessions: the sessions of an erased user, which keep no address or
-- user agent, not even from activity applied later.
ALTER TABLE browser_sessions ADD COLUMN erased boolean NOT NULL DEFAULT false;

-- email_verifications keeps no address: the claim key of the address
-- (user.EmailKey, a keyed hash) is all a check compares. Confirmations of the
-- last hour recorded before this change no longer prove anything: ask for a
-- new code.
ALTER TABLE email_verifications DROP COLUMN email;
ALTER TABLE email_verifications ADD COLUMN email_key text NOT NULL DEFAULT '';
