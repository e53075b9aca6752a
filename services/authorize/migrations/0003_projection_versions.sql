-- The stream sequence of the last event applied to each row, so an event
-- delivered again changes nothing (an older registration does not undo a
-- newer one, an approval does not reopen an exchanged grant).
ALTER TABLE clients ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN version bigint NOT NULL DEFAULT 0;
