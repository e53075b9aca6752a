-- The verifications read model keeps no address: the events keep it sealed
-- under a personal key (the user's, or the verification's own, which
-- expires), and only the delivery, which reads the events, needs it.
DROP INDEX verifications_email;
ALTER TABLE verifications DROP COLUMN email;
