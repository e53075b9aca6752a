-- Accounts moved from another homeserver (gatehouse migrate synapse).
--
-- users.imported_from: where the user was imported from ("synapse"), empty
-- for a user created here. users_lower_username finds names differing only
-- in case (Synapse allowed both @Bob and @bob): not unique, as in Synapse.
ALTER TABLE users ADD COLUMN imported_from text NOT NULL DEFAULT '';

CREATE INDEX users_lower_username ON users (lower(username));
