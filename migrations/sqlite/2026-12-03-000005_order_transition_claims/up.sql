-- An admin move (approve, cancel, fulfil...) claims the order at the version it read before
-- it calls the payment processor, so two moves cannot both act. A claim lapses at
-- claimed_until if its holder dies before finishing; a finished move's claim never lapses, so
-- a move that read the same version later cannot act on it either.
CREATE TABLE order_claims (
    order_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    claimed_until TIMESTAMP NOT NULL,
    PRIMARY KEY (order_id, version)
);
-- Orders waiting for review, oldest first: the sweeper cancels those past the reservation TTL.
CREATE INDEX orders_by_status_and_age ON orders (status, created_at);
