//! Test harness: real processes on loopback. A nats-server on a free port in
//! a temporary directory, `drover serve` with a real SQLite file, and real
//! `drover-agent` / `drover-rootd` processes. Nothing here is a mock.
//!
//! Split by concept; every public name is re-exported here, so tests say
//! `common::Stack`, `common::wait_for`, ... whatever file it lives in.
#![allow(dead_code, unused_imports)]

mod api;
mod automation;
mod gated;
mod hostile;
mod mariadb;
mod process;
mod rootd;
mod session;
mod stack;
mod wait;

pub use api::*;
pub use automation::*;
pub use gated::*;
pub use hostile::*;
pub use mariadb::*;
pub use process::*;
pub use rootd::*;
pub use session::*;
pub use stack::*;
pub use wait::*;
