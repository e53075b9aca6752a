-- Verifications moved from NOTIFY to NOTIFY_PENDING, where their events
-- expire. The read model is fed from the new stream from its start: the
-- rows of verifications recorded in NOTIFY are dropped (those in flight at
-- the upgrade are started again), and the checkpoints of the read model and
-- of the delivery reactor, which counted NOTIFY's sequences, start over.
-- A row goes when the marker of its verification's expiry comes, or when an
-- event later than its purge_at is applied.
TRUNCATE verifications, recovery_tickets;
ALTER TABLE verifications ADD COLUMN purge_at timestamptz NOT NULL DEFAULT 'infinity';
CREATE INDEX verifications_purge ON verifications (purge_at);
CREATE INDEX recovery_tickets_verification ON recovery_tickets (verification_id);
DO $$
BEGIN
    IF to_regclass('projection_checkpoints') IS NOT NULL THEN
        UPDATE projection_checkpoints SET last_seq = 0 WHERE name IN ('verifications', 'delivery');
    END IF;
END
$$;
