//! Patch management's data: the update inventory that scans fill, each
//! host's patch state, and approvals. Does not own when scans run
//! (`crate::schedules`) or installing approved updates inside maintenance
//! windows (`crate::windows`).
//!
//! - [`entities`]: the tables;
//! - [`approvals`]: which of a host's updates may be installed;
//! - [`inventory`]: scan results into the inventory and the patch state;
//! - [`store`]: writing approvals, declines and rules, with their checks;
//! - [`views`]: listings by package and by host, a host's updates, counts;
//! - [`audit`]: how the audit trail describes those writes.

pub mod approvals;
pub mod audit;
pub mod entities;
pub mod inventory;
pub mod store;
pub mod views;

/// A fresh, migrated SQLite database in a temporary directory (removed
/// when the returned guard drops), for this module's unit tests.
#[cfg(test)]
pub(crate) async fn test_db() -> (tempfile::TempDir, sea_orm::DatabaseConnection) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = crate::db::connect(&url).await.unwrap();
    (dir, db)
}
