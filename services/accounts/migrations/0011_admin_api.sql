-- What the admin API shows and filters on.

-- When users were locked and deactivated (kept by the "users" projection).
-- Before this, the time of the user's last change is the best known.
ALTER TABLE users ADD COLUMN locked_at timestamptz, ADD COLUMN deactivated_at timestamptz;
UPDATE users SET locked_at = updated_at WHERE locked;
UPDATE users SET deactivated_at = updated_at WHERE deactivated;

-- Each address's id: a ULID of the millisecond it was added and the first 80
-- bits of SHA-256("user_email\n<user id>\n<address>"), as the projection
-- computes it (ids.Derived), so it sorts by time and a rebuild gives the same.
CREATE FUNCTION pg_temp.derived_ulid(at timestamptz, seed text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    alphabet text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    ms bigint := floor(extract(epoch FROM at) * 1000);
    raw bytea := substring(int8send(ms) FROM 3 FOR 6) || substring(sha256(convert_to(seed, 'UTF8')) FROM 1 FOR 10);
    bits bit(130) := B'00' || ('x' || encode(raw, 'hex'))::bit(128);
    out text := '';
BEGIN
    FOR i IN 0..25 LOOP
        out := out || substr(alphabet, substring(bits FROM i * 5 + 1 FOR 5)::int + 1, 1);
    END LOOP;
    RETURN out;
END $$;
ALTER TABLE user_emails ADD COLUMN email_id text;
UPDATE user_emails SET email_id = pg_temp.derived_ulid(added_at, 'user_email' || chr(10) || user_id || chr(10) || email);
ALTER TABLE user_emails ALTER COLUMN email_id SET NOT NULL;
CREATE UNIQUE INDEX user_emails_id ON user_emails (email_id);

-- Registration tokens' last use and revocation (the "registration_tokens" projection).
-- Before this, no time is known: a used or revoked token gets its creation
-- time, the earliest it can have been (so it does not read as never used or
-- not revoked); `gatehouse projections rebuild accounts.registration_tokens`
-- gives the exact times, as it gives sign-ins recorded before their address
-- in the audit log (accounts.audit) and users their exact lock times (accounts.users).
ALTER TABLE registration_tokens ADD COLUMN last_used_at timestamptz, ADD COLUMN revoked_at timestamptz;
UPDATE registration_tokens SET last_used_at = created_at WHERE uses > 0;
UPDATE registration_tokens SET revoked_at = created_at WHERE revoked;

-- The audit log's pages go by event id (a ULID: time), per user; a sign-in's address.
ALTER TABLE audit_log ADD COLUMN ip_address text NOT NULL DEFAULT '';
CREATE INDEX audit_log_event ON audit_log (event_id);
CREATE INDEX audit_log_user_event ON audit_log (user_id, event_id);
