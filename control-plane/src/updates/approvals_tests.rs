//! Unit tests of approval resolution over real SQLite: explicit approvals,
//! expiry, revocation, declines, rules with and without a delay, held
//! packages, selectors and versions.

use super::*;
use sea_orm::{ActiveModelTrait, DatabaseConnection, IntoActiveModel};

const NOW: i64 = 100 * DAY_MS;

fn host(id: &str, env: &str) -> agent::Model {
    agent::Model {
        os: "Debian GNU/Linux 12".into(),
        ..crate::selector::tests::agent(
            id,
            &format!("h-{id}"),
            &format!(r#"{{"env":"{env}"}}"#),
            "{}",
        )
    }
}

fn row(
    agent: &str,
    package: &str,
    candidate: &str,
    security: bool,
    first_seen: i64,
) -> inventory::Model {
    inventory::Model {
        agent_id: agent.into(),
        package: package.into(),
        arch: "amd64".into(),
        current_version: "1.0".into(),
        candidate_version: candidate.into(),
        origin: "o".into(),
        security,
        severity: None,
        advisories: "[]".into(),
        held: false,
        first_seen,
        last_seen: first_seen,
        scan_command_id: "c".into(),
    }
}

fn decision(
    id: &str,
    decision: &str,
    scope: &str,
    package: Option<&str>,
    selector: &str,
) -> approval::Model {
    approval::Model {
        id: id.into(),
        decision: decision.into(),
        scope: scope.into(),
        package: package.map(str::to_string),
        version: None,
        selector: selector.into(),
        note: String::new(),
        created_by: "alice".into(),
        created_at: NOW - 10,
        expires_at: None,
        revoked_at: None,
        revoked_by: None,
    }
}

fn rule(
    id: &str,
    name: &str,
    scope: &str,
    selector: &str,
    delay_days: i32,
) -> approval_rule::Model {
    approval_rule::Model {
        id: id.into(),
        name: name.into(),
        scope: scope.into(),
        selector: selector.into(),
        delay_days,
        enabled: true,
        created_by: "alice".into(),
        created_at: 0,
        updated_at: 0,
    }
}

async fn db_with(rows: Vec<inventory::Model>) -> (tempfile::TempDir, DatabaseConnection) {
    let (dir, db) = crate::updates::test_db().await;
    for r in rows {
        r.into_active_model().insert(&db).await.unwrap();
    }
    (dir, db)
}

async fn add(db: &DatabaseConnection, a: approval::Model) {
    a.into_active_model().insert(db).await.unwrap();
}

async fn names(db: &DatabaseConnection, h: &agent::Model, now: i64) -> Vec<(String, String)> {
    approved_for(db, h, now)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.package, a.approved_by))
        .collect()
}

const ALL: &str = r#"{"all":true}"#;
const PROD: &str = r#"{"labels":{"env":"prod"}}"#;
const STAGING: &str = r#"{"labels":{"env":"staging"}}"#;

#[tokio::test]
async fn explicit_approvals_expire_can_be_revoked_and_lose_to_declines() {
    let mut held = row("P", "held", "2", true, 0);
    held.held = true;
    let (_d, db) = db_with(vec![
        row("P", "alpha", "1.1", false, 0),
        row("P", "beta", "2.0", true, 0),
        held,
    ])
    .await;
    let prod = host("P", "prod");
    let staging = host("S", "staging");
    assert!(
        names(&db, &prod, NOW).await.is_empty(),
        "nothing approved yet"
    );

    // A package approval for another version covers nothing.
    let mut wrong = decision("a0", "approve", "package", Some("alpha"), ALL);
    wrong.version = Some("9.9".into());
    add(&db, wrong).await;
    assert!(names(&db, &prod, NOW).await.is_empty());

    // A package approval at the candidate, expiring later.
    let mut a1 = decision("a1", "approve", "package", Some("alpha"), PROD);
    a1.version = Some("1.1".into());
    a1.expires_at = Some(NOW + 1000);
    add(&db, a1).await;
    let got = approved_for(&db, &prod, NOW).await.unwrap();
    assert_eq!(
        got,
        vec![ApprovedUpdate {
            package: "alpha".into(),
            version: "1.1".into(),
            approved_by: "alice".into(),
            approval_id: Some("a1".into()),
            rule_id: None,
        }]
    );
    assert!(names(&db, &staging, NOW).await.is_empty(), "selector");
    assert!(
        names(&db, &prod, NOW + 1000).await.is_empty(),
        "expired at its expiry"
    );

    // All security updates: beta, never the held package.
    add(&db, decision("a2", "approve", "security", None, ALL)).await;
    assert_eq!(
        names(&db, &prod, NOW).await,
        [
            ("alpha".into(), "alice".into()),
            ("beta".into(), "alice".into())
        ]
    );

    // A decline wins over the approval.
    add(&db, decision("d1", "decline", "package", Some("beta"), ALL)).await;
    assert_eq!(
        names(&db, &prod, NOW).await,
        [("alpha".into(), "alice".into())]
    );

    // Revoked: covers nothing.
    let mut a = approval::Entity::find_by_id("a1".to_string())
        .one(&db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    a.revoked_at = sea_orm::ActiveValue::Set(Some(NOW - 1));
    a.update(&db).await.unwrap();
    assert!(names(&db, &prod, NOW).await.is_empty());
}

#[tokio::test]
async fn rules_approve_after_their_delay_and_never_over_a_decline() {
    // beta appeared 2 days before NOW; alpha (not security) 10 days before.
    let (_d, db) = db_with(vec![
        row("P", "alpha", "1.1", false, NOW - 10 * DAY_MS),
        row("P", "beta", "2.0", true, NOW - 2 * DAY_MS),
        row("S", "beta", "2.0", true, NOW - 2 * DAY_MS),
    ])
    .await;
    let prod = host("P", "prod");
    let staging = host("S", "staging");
    for r in [
        rule("r1", "staging-now", "security", STAGING, 0),
        rule("r2", "prod-3d", "security", PROD, 3),
    ] {
        r.into_active_model().insert(&db).await.unwrap();
    }
    let got = approved_for(&db, &staging, NOW).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].approved_by, "rule:staging-now");
    assert_eq!(got[0].rule_id.as_deref(), Some("r1"));
    assert_eq!(got[0].approval_id, None);
    assert!(
        names(&db, &prod, NOW).await.is_empty(),
        "3-day delay not passed"
    );
    // The row's decision says when the rule will approve it.
    let rows = inventory::Entity::find()
        .filter(inventory::Column::AgentId.eq("P"))
        .filter(inventory::Column::Package.eq("beta"))
        .all(&db)
        .await
        .unwrap();
    let rules = load_rules(&db).await.unwrap();
    assert_eq!(
        decide(&prod, &rows[0], &[], &rules, NOW),
        Decision::Pending {
            auto_at: Some(NOW + DAY_MS)
        }
    );
    assert_eq!(
        names(&db, &prod, NOW + DAY_MS).await,
        [("beta".into(), "rule:prod-3d".into())]
    );

    // A disabled rule approves nothing.
    let mut r = approval_rule::Entity::find_by_id("r1".to_string())
        .one(&db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    r.enabled = sea_orm::ActiveValue::Set(false);
    r.update(&db).await.unwrap();
    assert!(names(&db, &staging, NOW).await.is_empty());

    // A decline in force beats a rule; once expired, the rule applies again.
    let mut d = decision("d1", "decline", "security", None, PROD);
    d.expires_at = Some(NOW + 2 * DAY_MS);
    add(&db, d).await;
    assert!(names(&db, &prod, NOW + DAY_MS).await.is_empty());
    assert_eq!(
        names(&db, &prod, NOW + 2 * DAY_MS).await,
        [("beta".into(), "rule:prod-3d".into())]
    );
}
