//! Agent releases for self-update: signed agent binaries in the releases
//! bucket with their rows in `agent_releases` (publish, list, show, yank).
//! The release key that signs them stays with the operator; the control
//! plane only checks signatures with the pinned public half.
//!
//! The rules are in [`store`], the JSON shapes the API and the page show
//! in [`views`]; the rollout engine uses [`find`] and [`is_yanked`], the
//! command path [`check_update`].

pub mod entity;
pub mod selftest;
pub mod store;
pub mod views;

pub use store::{check_update, find, is_yanked, release_key, AgentReleaseError};
