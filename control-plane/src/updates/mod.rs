//! Patch management's data: the update inventory that scans fill, each
//! host's patch state, and approvals. Does not own when scans run
//! (`crate::schedules`) or installing approved updates inside maintenance
//! windows (`crate::windows`).
//!
//! - [`entities`]: the tables;
//! - [`approvals`]: which of a host's updates may be installed;
//! - [`inventory`]: scan results into the inventory and the patch state.

pub mod approvals;
pub mod entities;
pub mod inventory;
