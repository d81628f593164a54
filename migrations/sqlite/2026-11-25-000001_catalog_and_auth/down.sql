DROP TABLE refresh_tokens;
DROP TABLE users;
DROP TABLE inventory;
DROP TABLE products;
DROP TABLE categories;
