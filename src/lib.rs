//! The shop API: a headless e-commerce GraphQL server. See README.md for the tour.

pub mod app;
pub mod cli;
pub mod config;
pub mod connections;
pub mod db;
pub mod domain;
pub mod error;
pub mod expiring;
pub mod http;
pub mod kv;
pub mod loaders;
pub mod low_priority;
pub mod metrics;
pub mod notifier;
pub mod payments;
pub mod playground;
pub mod ports;
pub mod resolvers;
pub mod rest;
pub mod search;
pub mod server;
pub mod services;
pub mod websocket;
pub mod workers;
