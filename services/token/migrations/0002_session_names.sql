-- Display names of sessions' devices (compat logins give one; people rename them).
ALTER TABLE sessions ADD COLUMN device_display_name text NOT NULL DEFAULT '';
