//! One integration binary; one module per capability. Every server test runs on SQLite and on
//! PostgreSQL (see `helpers::on_both_backends`).

mod helpers;

mod auth;
mod cart;
mod catalog;
mod checkout;
mod cli;
mod cluster;
mod faults;
mod flash_sales;
mod graphql_http;
mod limits;
mod opensearch;
mod payments;
mod playground;
mod recommendations;
mod relevance;
mod review;
mod schema;
mod search;
mod statements;
mod store;
mod websockets;
