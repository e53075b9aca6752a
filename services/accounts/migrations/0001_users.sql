-- Read model of users, kept by the "users" projection from accounts.user.* events.
CREATE TABLE users (
    id            text PRIMARY KEY,           -- ULID: ordered by creation
    username      text NOT NULL UNIQUE,       -- Matrix localpart
    email         text NOT NULL DEFAULT '',
    display_name  text NOT NULL DEFAULT '',
    password_hash text NOT NULL DEFAULT '',   -- PHC string; never leaves this service
    admin         boolean NOT NULL DEFAULT false,
    locked        boolean NOT NULL DEFAULT false,
    deactivated   boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint NOT NULL             -- stream sequence of the last event applied
);

CREATE INDEX users_email ON users (email) WHERE email <> '';
