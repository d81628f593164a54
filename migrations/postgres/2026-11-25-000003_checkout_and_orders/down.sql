DROP TABLE notifications;
DROP TABLE order_events;
DROP TABLE orders;
DROP TABLE payments;
DROP TABLE checkout_sagas;
DROP TABLE reservations;
DROP TABLE checkout_sessions;
