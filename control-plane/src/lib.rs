//! The Drover control plane as a library: `main.rs` is only the CLI.
//!
//! - [`serve`]: start-up and the long-running loops;
//! - [`bus`]: streams and consumers on the broker;
//! - [`ingest`]: heartbeats and results into the database, liveness sweeps;
//! - [`commands`]: issuing signed commands;
//! - [`api`]: REST API, event stream, web page;
//! - [`auth`]: API tokens;
//! - [`db`]: entities and migrations;
//! - [`dev`]: `drover dev`, the whole stack on one machine;
//! - [`client`]: the CLI's HTTP client.

pub mod api;
pub mod auth;
pub mod bus;
pub mod client;
pub mod commands;
pub mod config;
pub mod db;
pub mod dev;
pub mod events;
pub mod ingest;
pub mod serve;
pub mod state;
