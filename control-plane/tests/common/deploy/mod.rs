//! What the deployment tests run besides the usual stack: a private
//! PostgreSQL server ([`Postgres`], which [`crate::common::Stack`] can use
//! instead of SQLite). Nothing here is a mock.

mod postgres;

#[allow(unused_imports)]
pub use postgres::*;
