-- The dispatcher claims a batch (until claimed_until), publishes it with no transaction open,
-- then marks it published; a dispatcher that dies in between leaves a claim that lapses, and the
-- batch is published again (at least once).
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMP;
