-- Carts and outbox events hold whole cart documents (13 KB at 90 lines). PostgreSQL compresses
-- such values with pglz by default, which was a third of its CPU under the cart bench; lz4 is
-- several times faster. A server built without lz4 (or older than PostgreSQL 14) keeps pglz.
DO $$
BEGIN
    ALTER TABLE carts ALTER COLUMN lines SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'lz4 compression is not available; documents stay compressed with pglz';
END $$;
