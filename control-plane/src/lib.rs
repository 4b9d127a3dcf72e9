//! The Drover control plane as a library: `bin/drover/` is only the CLI.
//!
//! - [`serve`]: start-up and the long-running loops;
//! - [`bus`]: streams and consumers on the broker;
//! - [`ingest`]: heartbeats and results into the database, liveness sweeps;
//! - [`poison`]: undecodable messages and refusal floods, counted not stored;
//! - [`commands`]: issuing signed commands;
//! - [`jobs`], [`selector`], [`idempotency`]: jobs, which agents they target, and their idempotency keys;
//! - [`http`]: the HTTP shell — one router, `/healthz`, middleware order;
//! - [`api`]: REST API, event stream;
//! - [`auth`]: API tokens, users, sessions, roles, CSRF — one gate for every route;
//! - [`audit`]: the hash-chained audit trail;
//! - [`ui`]: the web UI's server-rendered pages and embedded assets;
//! - [`nats_auth`]: the broker's trust chain (operator, accounts, user JWTs);
//! - [`tls`]: the CA and certificates `drover init` makes, HTTPS configuration;
//! - [`enroll`], [`tokens`], [`trust`]: enrolment, registration tokens,
//!   approve / reject / revoke and the security overview;
//! - [`releases`], [`install`]: signed agent packages in the object store
//!   and the host install script that fetches them;
//! - [`updates`]: patch management's inventory and approvals;
//! - [`lease`], [`duties`], [`schedules`]: the duties lease, the periodic
//!   duties run under it, and scheduled jobs;
//! - [`windows`]: maintenance windows, the runs that install approved updates in them, history;
//! - [`db`]: entities and migrations;
//! - [`backup`]: `drover backup` / `drover restore` archives and the data-directory lock;
//! - [`dev`]: `drover dev`, the whole stack on one machine;
//! - [`services`], [`alerts`], [`notify`], [`retention`]: watched services,
//!   alert rules and their lifecycle, notifications that are never lost,
//!   what is kept how long;
//! - [`client`]: the CLI's HTTP client.

pub mod agent_releases;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod automation;
pub mod backup;
pub mod broker_cluster;
pub mod bus;
pub mod cancel;
pub mod client;
pub mod clones;
pub mod command_spec;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod db;
pub mod dev;
pub mod duties;
pub mod enroll;
pub mod events;
pub mod fleet;
pub mod http;
pub mod idempotency;
pub mod ingest;
pub mod install;
pub mod inventory;
pub mod jobs;
pub mod keys;
pub mod lease;
pub mod ledger;
pub mod nats_auth;
pub mod notify;
pub mod operations;
pub mod output;
pub mod poison;
pub mod prometheus;
pub mod queues;
pub mod releases;
pub mod result_guard;
pub mod retention;
pub mod rollouts;
pub mod runnable;
pub mod schedules;
pub mod sealing;
pub mod selector;
pub mod serve;
pub mod services;
pub mod skew;
pub mod state;
pub mod tls;
pub mod tokens;
pub mod trust;
pub mod ui;
pub mod updates;
pub mod version_policy;
pub mod windows;
