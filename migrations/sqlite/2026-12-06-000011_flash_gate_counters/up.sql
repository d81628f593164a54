-- A sale's gate (counters in process or in Redis) now counts join attempts and hands out the
-- tickets after the early arrivals', so the store keeps neither.
DROP TABLE flash_sale_attempts;
ALTER TABLE flash_sales DROP COLUMN tickets;
