DROP INDEX checkout_sagas_step;
ALTER TABLE checkout_sagas DROP COLUMN lease_until;
CREATE INDEX checkout_sagas_step ON checkout_sagas(step, updated_at);
