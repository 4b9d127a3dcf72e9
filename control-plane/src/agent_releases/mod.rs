//! Agent releases for self-update: signed agent binaries in the releases
//! bucket with their rows in `agent_releases` (publish, list, show, yank).
//! The release key that signs them stays with the operator; the control
//! plane only checks signatures with the pinned public half.

pub mod entity;
pub mod selftest;
