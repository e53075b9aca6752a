-- Passkeys and second factors.
--
-- passkey_credentials: which user each WebAuthn credential is registered
-- to, kept by the "passkeys" projection from accounts.factors.* (and
-- accounts.user.* for erasures), for passwordless sign-in, where the
-- browser names the credential before anyone knows the user. Credential ids
-- are the authenticator's random ids; nothing personal is kept here (names
-- and user handles stay sealed in the events, and a user's factors are
-- read from the events themselves).
CREATE TABLE passkey_credentials (
    credential_id bytea PRIMARY KEY,
    user_id       text NOT NULL,
    passkey_id    text NOT NULL,
    -- Removed (by the person, a reset or an erasure): kept so that the
    -- credential's addition, delivered again, does not bring it back.
    removed       boolean NOT NULL DEFAULT false,
    version       bigint NOT NULL
);

CREATE INDEX passkey_credentials_user ON passkey_credentials (user_id);

-- How the person last proved who they are in a browser session.
ALTER TABLE browser_sessions ADD COLUMN auth_methods text[] NOT NULL DEFAULT '{}';
