-- What shoppers did with products, for recommendations: views as they are recorded, and the
-- demo history's views and purchases. Cart lines and paid orders are read where they live.
CREATE TABLE interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    shopper TEXT NOT NULL,
    product_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX interactions_by_shopper ON interactions (shopper, at);
CREATE INDEX interactions_by_time ON interactions (at);
-- The trained recommendation model, one row: whoever holds the lease trains and bumps the
-- version; every instance loads the model when the version it holds is older.
CREATE TABLE recommender_models (
    id TEXT PRIMARY KEY NOT NULL,
    version BIGINT NOT NULL,
    trained_at TIMESTAMP,
    lease_until TIMESTAMP NOT NULL,
    model TEXT
);
INSERT INTO recommender_models (id, version, trained_at, lease_until, model)
    VALUES ('current', 0, NULL, '1970-01-01 00:00:00', NULL);
