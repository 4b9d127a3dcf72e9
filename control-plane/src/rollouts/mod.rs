//! Staged rollouts of an agent release: canary, waves, pause, failure
//! threshold, pause/resume/abort, offline hosts remembered.

pub mod engine;
pub mod entity;
