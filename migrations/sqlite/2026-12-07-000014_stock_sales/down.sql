-- Sales not yet settled leave reserved before their table goes.
UPDATE inventory
SET reserved = reserved - (SELECT SUM(quantity) FROM stock_sales WHERE stock_sales.product_id = inventory.product_id)
WHERE product_id IN (SELECT product_id FROM stock_sales);
DROP TABLE stock_sales;
