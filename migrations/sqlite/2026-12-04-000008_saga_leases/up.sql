-- A saga being charged or refunded belongs to one request (or recovery) until its lease ends;
-- recovery takes only sagas whose lease has run out, so it never races a live charge.
ALTER TABLE checkout_sagas ADD COLUMN lease_until TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE checkout_sagas SET lease_until = updated_at;
DROP INDEX checkout_sagas_step;
CREATE INDEX checkout_sagas_step ON checkout_sagas(step, lease_until);
