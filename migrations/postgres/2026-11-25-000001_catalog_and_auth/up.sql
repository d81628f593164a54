-- Catalog, inventory and accounts. Money is integer minor units; ids are opaque text.
CREATE TABLE categories (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    parent_id TEXT REFERENCES categories(id),
    path TEXT NOT NULL UNIQUE,
    depth INTEGER NOT NULL CHECK (depth >= 0)
);
CREATE INDEX categories_parent_id ON categories(parent_id);

CREATE TABLE products (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    brand TEXT,
    category_id TEXT REFERENCES categories(id),
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency_code TEXT NOT NULL,
    rating DOUBLE PRECISION CHECK (rating IS NULL OR (rating >= 0 AND rating <= 5)),
    review_count INTEGER NOT NULL CHECK (review_count >= 0),
    popularity BIGINT NOT NULL CHECK (popularity >= 0),
    attributes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX products_category_id ON products(category_id);

CREATE TABLE inventory (
    product_id TEXT PRIMARY KEY NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    available INTEGER NOT NULL CHECK (available >= 0),
    reserved INTEGER NOT NULL CHECK (reserved >= 0),
    version BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Refresh tokens are stored as SHA-256 hashes; a family links the rotations of one sign-in so that
-- replaying a used token revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens(user_id);
