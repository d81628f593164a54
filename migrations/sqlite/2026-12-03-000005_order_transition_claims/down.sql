DROP INDEX orders_by_status_and_age;
DROP TABLE order_claims;
