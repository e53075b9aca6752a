-- A user's email addresses, kept by the "users" projection from accounts.user.*
-- events (UserRegistered, EmailAdded, EmailRemoved, PrimaryEmailSet).
-- users.email stays the primary address. Every address here is verified.
CREATE TABLE user_emails (
    email      text PRIMARY KEY,              -- lower-cased; held by one user at a time
    user_id    text NOT NULL,
    is_primary boolean NOT NULL DEFAULT false,
    added_at   timestamptz NOT NULL
);

CREATE INDEX user_emails_user ON user_emails (user_id, added_at);

-- Before this table, a user's only address was the one given at registration:
-- the rows the projection would have written for the events so far.
INSERT INTO user_emails (email, user_id, is_primary, added_at)
SELECT email, id, true, created_at FROM users WHERE email <> ''
ON CONFLICT (email) DO NOTHING;
