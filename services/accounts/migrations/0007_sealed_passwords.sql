-- Password hashes are sealed in the events (platform/sealed) and stay sealed
-- here: password_sealed is the SealedSecret (protobuf) and password_key_id the
-- key-encryption key that sealed it, so the start-up reseal after a key
-- rotation finds the hashes still sealed under an older key. password_hash
-- keeps only hashes that events written before sealing held in clear (until
-- they are sealed too); it is '' whenever password_sealed is set.
ALTER TABLE users
    ADD COLUMN password_sealed bytea,
    ADD COLUMN password_key_id text NOT NULL DEFAULT '';
