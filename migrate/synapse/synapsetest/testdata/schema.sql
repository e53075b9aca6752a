-- Synapse's schema for the tables Gatehouse's importer reads, as a database
-- at SCHEMA_VERSION 94 holds them (PostgreSQL). Written from the facts in
-- shared/reference/synapse-migration.md: the full_schemas/72 snapshot plus the
-- deltas up to 94 that touch these tables. Column types, NULLs, defaults,
-- unique constraints and the few foreign keys are Synapse's; everything else
-- Synapse has (rooms, events, ...) is left out. The generator drops the
-- columns a younger database lacks (see synapsetest.Options.SchemaVersion).

-- The schema version: one row. Synapse refuses to start on a database whose
-- schema_compat_version is newer than its own SCHEMA_VERSION.
CREATE TABLE schema_version (
    lock character(1) DEFAULT 'X' NOT NULL UNIQUE,
    version integer NOT NULL,
    upgraded boolean NOT NULL,
    CHECK (lock = 'X')
);

CREATE TABLE schema_compat_version (
    lock character(1) DEFAULT 'X' NOT NULL UNIQUE,
    compat_version integer NOT NULL,
    CHECK (lock = 'X')
);

CREATE TABLE applied_schema_deltas (
    version integer NOT NULL,
    file text NOT NULL,
    UNIQUE (version, file)
);

-- One row per local account; no primary key. name is the full MXID, compared
-- case-sensitively. creation_ts and upgrade_ts are SECONDS; admin, is_guest
-- and deactivated are smallint 0/1.
CREATE TABLE users (
    name text,
    password_hash text,
    creation_ts bigint,
    admin smallint DEFAULT 0 NOT NULL,
    upgrade_ts bigint,
    is_guest smallint DEFAULT 0 NOT NULL,
    appservice_id text,
    consent_version text,
    consent_server_notice_sent text,
    user_type text,
    deactivated smallint DEFAULT 0 NOT NULL,
    shadow_banned boolean,
    consent_ts bigint,
    approved boolean,                       -- v73; NULL counts as true
    locked boolean DEFAULT false NOT NULL,  -- v80
    suspended boolean DEFAULT false NOT NULL, -- v85
    UNIQUE (name)
);
CREATE INDEX users_creation_ts ON users USING btree (creation_ts);
CREATE INDEX users_lower_name ON users USING btree (lower(name));

-- Third-party identifiers: email (canonicalised when added) and msisdn
-- (digits, E.164 without the +). Timestamps in milliseconds.
CREATE TABLE user_threepids (
    user_id text NOT NULL,
    medium text NOT NULL,
    address text NOT NULL,
    validated_at bigint NOT NULL,
    added_at bigint NOT NULL,
    CONSTRAINT medium_address UNIQUE (medium, address)
);
CREATE INDEX user_threepids_user_id ON user_threepids USING btree (user_id);

-- Devices, including the hidden pseudo-devices of cross-signing keys.
-- last_seen is milliseconds; ip may be '-'.
CREATE TABLE devices (
    user_id text NOT NULL,
    device_id text NOT NULL,
    display_name text,
    last_seen bigint,
    ip text,
    user_agent text,
    hidden boolean DEFAULT false,
    CONSTRAINT device_uniqueness UNIQUE (user_id, device_id)
);

-- Refresh tokens (plaintext). A refresh points next_token_id at its successor;
-- a chain holds at most two. Timestamps in milliseconds.
CREATE TABLE refresh_tokens (
    id bigint NOT NULL PRIMARY KEY,
    user_id text NOT NULL,
    device_id text NOT NULL,
    token text NOT NULL UNIQUE,
    next_token_id bigint REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    expiry_ts bigint,
    ultimate_session_expiry_ts bigint
);
CREATE INDEX refresh_tokens_next_token_id ON refresh_tokens USING btree (next_token_id) WHERE next_token_id IS NOT NULL;

-- Access tokens (plaintext). id is MAX(id)+1, no sequence. device_id NULL is
-- a deviceless token; puppets_user_id names the admin impersonating user_id.
-- valid_until_ms and last_validated are milliseconds.
CREATE TABLE access_tokens (
    id bigint NOT NULL PRIMARY KEY,
    user_id text NOT NULL,
    device_id text,
    token text NOT NULL UNIQUE,
    valid_until_ms bigint,
    puppets_user_id text,
    last_validated bigint,
    refresh_token_id bigint REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    used boolean
);
CREATE INDEX access_tokens_device_id ON access_tokens USING btree (user_id, device_id);
CREATE INDEX access_tokens_refresh_token_id_idx ON access_tokens USING btree (refresh_token_id); -- v84, background

-- SSO links. auth_provider is oidc-<idp_id>, oidc, cas, saml or the leftover
-- oauth-delegated.
CREATE TABLE user_external_ids (
    auth_provider text NOT NULL,
    external_id text NOT NULL,
    user_id text NOT NULL,
    UNIQUE (auth_provider, external_id)
);
CREATE INDEX user_external_ids_user_id_idx ON user_external_ids USING btree (user_id);

-- Profiles are keyed by LOCALPART; full_user_id (v76) is the MXID, NULL on
-- rows the backfill missed.
CREATE TABLE profiles (
    user_id text NOT NULL,
    displayname text,
    avatar_url text,
    full_user_id text,  -- v76
    fields jsonb,       -- v88
    CONSTRAINT profiles_user_id_key UNIQUE (user_id)
);
-- v77 adds this NOT VALID, v78 validates it.
ALTER TABLE profiles ADD CONSTRAINT full_user_id_not_null CHECK (full_user_id IS NOT NULL);
CREATE UNIQUE INDEX profiles_full_user_id_key ON profiles USING btree (full_user_id); -- background

CREATE TABLE erased_users (
    user_id text NOT NULL
);
CREATE UNIQUE INDEX erased_users_user ON erased_users USING btree (user_id);

CREATE TABLE users_pending_deactivation (
    user_id text NOT NULL
);

CREATE TABLE user_ips (
    user_id text NOT NULL,
    access_token text NOT NULL,
    device_id text,
    ip text NOT NULL,
    user_agent text NOT NULL,
    last_seen bigint NOT NULL
);
CREATE UNIQUE INDEX user_ips_user_token_ip_unique_index ON user_ips USING btree (user_id, access_token, ip);

CREATE TABLE ratelimit_override (
    user_id text NOT NULL,
    messages_per_second bigint,
    burst_count bigint
);
CREATE UNIQUE INDEX ratelimit_override_idx ON ratelimit_override USING btree (user_id);

-- Registration tokens; expiry_time in milliseconds, uses_allowed NULL is
-- unlimited.
CREATE TABLE registration_tokens (
    token text NOT NULL,
    uses_allowed integer,
    pending integer NOT NULL,
    completed integer NOT NULL,
    expiry_time bigint,
    UNIQUE (token)
);

-- Short-lived syl_ tokens (v73); never imported.
CREATE TABLE login_tokens (
    token text PRIMARY KEY,
    user_id text NOT NULL,
    expiry_ts bigint NOT NULL,
    used_ts bigint,
    auth_provider_id text,
    auth_provider_session_id text
);

CREATE TABLE device_auth_providers (
    user_id text NOT NULL,
    device_id text NOT NULL,
    auth_provider_id text NOT NULL,
    auth_provider_session_id text NOT NULL
);
