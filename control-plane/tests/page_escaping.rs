//! The web UI's templates escape what hosts and the database say: a hostile
//! hostname (from a real simulated agent) and a hostile label (written into
//! the row, as a compromised or old database could hold it) show as text on
//! the fleet page and the host's page, never as markup. The same fleet backs
//! `GET /api/v1/agents`'s paging. This file does not test access rules.

mod common;

use std::time::Duration;

use common::*;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::json;

const HOSTILE: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const PW: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread")]
async fn hostile_hostname_and_label_show_escaped() {
    let stack = Stack::start().await;
    let token = stack.token(3, "1h", true).await;
    let extra = [
        std::ffi::OsStr::new("--prefix"),
        std::ffi::OsStr::new(HOSTILE),
    ];
    let _sim = stack.spawn_simulate(3, &token, 2, &extra, "simulate.log");
    let want = format!("{HOSTILE}-0");
    let id = wait_for(
        "the simulated agent with a hostile hostname to be online",
        Duration::from_secs(60),
        || async {
            let (code, v) = stack.get("/agents").await;
            (code == 200)
                .then(|| {
                    v["agents"].as_array().and_then(|a| {
                        a.iter()
                            .find(|x| x["hostname"] == want.as_str() && x["status"] == "online")
                            .map(|x| x["id"].as_str().unwrap().to_string())
                    })
                })
                .flatten()
        },
    )
    .await;
    wait_for("three agents online", Duration::from_secs(60), || async {
        let (_, v) = stack.get("/agents?status=online").await;
        (v["total"] == 3).then_some(())
    })
    .await;

    // The API pages like the fleet page, and without paging answers all.
    let (code, v) = stack.get("/agents").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["agents"].as_array().unwrap().len(), 3, "{v}");
    assert!(v.get("page").is_none(), "{v}");
    let (code, v) = stack.get("/agents?per_page=2&page=2&sort=hostname").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["total"].as_u64(), v["pages"].as_u64()),
        (Some(3), Some(2)),
        "{v}"
    );
    let host = v["agents"][0]["hostname"].as_str().unwrap_or("");
    assert_eq!(v["agents"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(host, format!("{HOSTILE}-2"), "{v}");
    for bad in [
        "per_page=0",
        "per_page=501",
        "page=x",
        "status=gone",
        "sort=id",
        "dir=up",
    ] {
        let (code, v) = stack.get(&format!("/agents?{bad}")).await;
        assert_eq!(code, 400, "{bad}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {v}"
        );
    }

    // A label no API would accept: only the database can hold it.
    let db = stack.db().await;
    let row = control_plane::db::entities::agent::Entity::find_by_id(id.clone())
        .one(&db)
        .await
        .unwrap()
        .expect("the agent's row");
    let mut row: control_plane::db::entities::agent::ActiveModel = row.into();
    row.labels = Set(json!({ "note": HOSTILE }).to_string());
    row.update(&db).await.unwrap();

    stack.add_user("ada", "admin", PW);
    let s = stack.login("ada", PW).await;
    for path in ["/fleet".to_string(), format!("/agents/{id}")] {
        let (code, html) = s.get_html(&path).await;
        assert_eq!(code, 200, "{path}: {html}");
        assert!(
            !html.contains(HOSTILE),
            "{path} carries the hostile text as markup: {html}"
        );
        assert!(
            html.contains(&format!("{ESCAPED}-0")),
            "{path} does not show the hostname escaped: {html}"
        );
        assert!(
            html.contains(&format!("note={ESCAPED}")),
            "{path} does not show the label escaped: {html}"
        );
    }
}
