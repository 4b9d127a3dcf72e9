//! What the deployment tests run besides the usual stack: a private
//! PostgreSQL server ([`Postgres`], which [`crate::common::Stack`] can use
//! instead of SQLite) and a private Docker engine with a compose project on
//! it ([`Dockerd`], [`Compose`]). Nothing here is a mock.

mod docker;
mod postgres;

#[allow(unused_imports)]
pub use docker::*;
#[allow(unused_imports)]
pub use postgres::*;
