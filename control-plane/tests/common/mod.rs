//! Test harness: real processes on loopback. A nats-server on a free port in
//! a temporary directory, `drover serve` with a real SQLite file, and real
//! `drover-agent` / `drover-rootd` processes. Nothing here is a mock.
//!
//! Split by concept; every public name is re-exported here, so tests say
//! `common::Stack`, `common::wait_for`, ... whatever file it lives in.
#![allow(dead_code)]

mod api;
pub mod apt_repo;
mod automation;
mod backup;
mod chrome;
mod cluster;
mod deploy;
mod gated;
mod host;
mod hostile;
mod install;
mod mariadb;
pub mod packages;
mod ports;
mod process;
mod rootd;
mod session;
mod stack;
mod stored;
mod tls;
mod updates;
mod wait;
mod windows;

// Each test binary uses some of these names, none uses all.
#[allow(unused_imports)]
pub use api::*;
#[allow(unused_imports)]
pub use apt_repo::*;
#[allow(unused_imports)]
pub use automation::*;
#[allow(unused_imports)]
pub use backup::*;
#[allow(unused_imports)]
pub use chrome::*;
#[allow(unused_imports)]
pub use cluster::*;
pub use deploy::*;
#[allow(unused_imports)]
pub use gated::*;
#[allow(unused_imports)]
pub use host::*;
#[allow(unused_imports)]
pub use hostile::*;
#[allow(unused_imports)]
pub use install::*;
#[allow(unused_imports)]
pub use mariadb::*;
#[allow(unused_imports)]
pub use ports::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use rootd::*;
#[allow(unused_imports)]
pub use session::*;
#[allow(unused_imports)]
pub use stack::*;
#[allow(unused_imports)]
pub use tls::*;
#[allow(unused_imports)]
pub use updates::*;
#[allow(unused_imports)]
pub use wait::*;
#[allow(unused_imports)]
pub use windows::*;
mod self_update;
#[allow(unused_imports)]
pub use self_update::*;
mod rollouts;
#[allow(unused_imports)]
pub use rollouts::*;
mod services;
#[allow(unused_imports)]
pub use services::*;
mod notify;
#[allow(unused_imports)]
pub use notify::*;
mod scrape;
#[allow(unused_imports)]
pub use scrape::*;
mod alerts;
#[allow(unused_imports)]
pub use alerts::*;
mod sealed;
#[allow(unused_imports)]
pub use sealed::*;
pub mod everyday;
mod operations;
#[allow(unused_imports)]
pub use operations::*;
mod replicas;
#[allow(unused_imports)]
pub use replicas::*;
mod measure;
#[allow(unused_imports)]
pub use measure::*;
