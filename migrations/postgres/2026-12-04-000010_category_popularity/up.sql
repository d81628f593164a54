-- Recommendations read a category's in-stock products by popularity; this index walks them in
-- that order instead of sorting the whole category on every read.
CREATE INDEX products_category_popularity ON products (category_id, popularity DESC, id);
