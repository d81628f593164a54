-- Units an order sold, on their way out of the product's reserved count. The order inserts
-- them rather than updating the stock row, so that a hot product's row is not held locked
-- through each order's durable commit; the stock-sales worker takes them out of reserved in
-- batches, deleting them in the same transaction. Reads of reserved subtract what is here.
CREATE TABLE stock_sales (
    id BIGSERIAL PRIMARY KEY,
    product_id TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0)
);
CREATE INDEX stock_sales_product_id ON stock_sales(product_id);
