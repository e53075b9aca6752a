-- Upstream identity providers (0009 is left to the personal-data migration).
--
-- upstream_links: a user's links to upstream identities, kept by the "users"
-- projection from UpstreamLinked and UpstreamUnlinked. The subject and the
-- address stay sealed as the events hold them (SealedSecret, protobuf) and
-- are opened only to be shown; provider is the provider's id or
-- "synapse:<auth_provider>" for an imported link.
CREATE TABLE upstream_links (
    link_id        text PRIMARY KEY,
    user_id        text NOT NULL,
    provider       text NOT NULL,
    subject_sealed bytea,
    email_sealed   bytea,
    claim_key      text NOT NULL,
    source         text NOT NULL DEFAULT '',
    linked_at      timestamptz NOT NULL
);

CREATE INDEX upstream_links_user ON upstream_links (user_id, link_id);
CREATE INDEX upstream_links_provider ON upstream_links (provider, link_id);

-- The upstream session a browser session came from, for back-channel logout.
ALTER TABLE browser_sessions
    ADD COLUMN upstream_provider text NOT NULL DEFAULT '',
    ADD COLUMN upstream_sid      text NOT NULL DEFAULT '';

CREATE INDEX browser_sessions_upstream ON browser_sessions (upstream_provider, upstream_sid) WHERE upstream_provider <> '';
