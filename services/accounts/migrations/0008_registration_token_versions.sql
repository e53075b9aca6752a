-- The stream sequence of the last event applied to each registration token,
-- so an event delivered again changes nothing (a use is counted once).
ALTER TABLE registration_tokens ADD COLUMN version bigint NOT NULL DEFAULT 0;
