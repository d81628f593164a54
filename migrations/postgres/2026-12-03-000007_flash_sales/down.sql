ALTER TABLE checkout_sessions DROP COLUMN flash_sale_id;
DROP TABLE flash_sale_attempts;
DROP TABLE flash_sale_entries;
DROP TABLE flash_sales;
