//! The production deployment's parts, for real: the control plane on a real
//! PostgreSQL server (what the compose deployment uses).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// The control plane on PostgreSQL (the compose deployment's database):
/// enrolment, heartbeats, a command round trip, a job over two hosts (bulk
/// writes), and the host page's charts (an aggregate query PostgreSQL types
/// differently from SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_runs_on_postgresql() {
    let stack = Stack::start_postgres().await;
    let url = test_database_url(&stack.data_dir).expect("a PostgreSQL stack");
    assert!(url.starts_with("postgres://"), "{url}");
    let a = stack.start_host("pg-a").await;
    let _b = stack.start_host("pg-b").await;
    let done = stack.ping(&a.id).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let (code, job) = stack
        .post(
            "/jobs",
            &json!({"selector": {"all": true}, "action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    let v = stack
        .wait_job_done(job["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(v["counts"]["succeeded"], 2, "{v}");

    // The rows are in PostgreSQL, not in a SQLite file beside the keys.
    assert!(!stack.data_dir.join("drover.db").exists());
    use sea_orm::{EntityTrait, PaginatorTrait};
    let db = stack.db().await;
    assert_eq!(
        db.get_database_backend(),
        sea_orm::DatabaseBackend::Postgres
    );
    let n = control_plane::db::entities::agent::Entity::find()
        .count(&db)
        .await
        .unwrap();
    assert_eq!(n, 2);

    // The host page (metric charts: AVG over integer columns).
    stack.add_user("pgviewer", "viewer", "a long enough password");
    let s = stack.login("pgviewer", "a long enough password").await;
    let (code, html) = s.get_html(&format!("/agents/{}", a.id)).await;
    assert_eq!(code, 200, "{html}");
}
