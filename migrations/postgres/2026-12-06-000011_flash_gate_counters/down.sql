ALTER TABLE flash_sales ADD COLUMN tickets BIGINT NOT NULL DEFAULT 0;
CREATE TABLE flash_sale_attempts (
    sale_id TEXT NOT NULL,
    shopper TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    since TIMESTAMP NOT NULL,
    PRIMARY KEY (sale_id, shopper)
);
