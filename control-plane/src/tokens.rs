//! Registration tokens: expiring, limited-use secrets an agent presents at
//! enrolment. Shown once at creation, stored as a SHA-256 hash.

use std::collections::BTreeMap;

use bus_schema::now_ms;
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::{json, Value};

use crate::auth::hash_token;
use crate::db::entities::registration_token as token;

pub struct NewToken {
    pub uses: i32,
    pub expires_in_secs: i64,
    pub labels: BTreeMap<String, String>,
    pub auto_approve: bool,
    pub created_by: String,
}

/// Why a token was not accepted. Said to the enrolling agent as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenRefusal {
    #[error("unknown registration token")]
    Unknown,
    #[error("registration token {0} was revoked")]
    Revoked(String),
    #[error(
        "registration token {0} expired; ask an operator for a new one (drover tokens create)"
    )]
    Expired(String),
    #[error("registration token {0} has no uses left")]
    UsedUp(String),
}

fn new_secret() -> String {
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("drvreg_{}", hex::encode(b))
}

/// Parses `24h`, `90m`, `3600s`, `7d` or plain seconds.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30m, 24h or 7d"))?;
    if n <= 0 {
        return Err("a duration must be positive".into());
    }
    Ok(n * mult)
}

pub async fn create(
    db: &DatabaseConnection,
    t: NewToken,
) -> Result<(token::Model, String), sea_orm::DbErr> {
    let secret = new_secret();
    let now = now_ms();
    let m = token::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()[..12].to_string()),
        token_hash: Set(hash_token(&secret)),
        uses_allowed: Set(t.uses),
        uses: Set(0),
        expires_at: Set(now + t.expires_in_secs * 1000),
        labels: Set(serde_json::to_string(&t.labels).unwrap_or_else(|_| "{}".into())),
        auto_approve: Set(t.auto_approve),
        revoked: Set(false),
        created_at: Set(now),
        created_by: Set(t.created_by),
    };
    let model = token::Entity::insert(m).exec_with_returning(db).await?;
    Ok((model, secret))
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<token::Model>, sea_orm::DbErr> {
    token::Entity::find()
        .order_by_desc(token::Column::CreatedAt)
        .all(db)
        .await
}

pub async fn revoke(db: &DatabaseConnection, id: &str) -> Result<bool, sea_orm::DbErr> {
    let r = token::Entity::update_many()
        .col_expr(
            token::Column::Revoked,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(token::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Checks a presented token without using it: known, not revoked, not
/// expired, uses left. Returns its row. (The install bootstrap asks this;
/// enrolment asks [`consume`].)
pub async fn check<C: ConnectionTrait>(
    db: &C,
    secret: &str,
) -> Result<Result<token::Model, TokenRefusal>, sea_orm::DbErr> {
    let Some(t) = token::Entity::find()
        .filter(token::Column::TokenHash.eq(hash_token(secret)))
        .one(db)
        .await?
    else {
        return Ok(Err(TokenRefusal::Unknown));
    };
    Ok(if t.revoked {
        Err(TokenRefusal::Revoked(t.id))
    } else if t.expires_at <= now_ms() {
        Err(TokenRefusal::Expired(t.id))
    } else if t.uses >= t.uses_allowed {
        Err(TokenRefusal::UsedUp(t.id))
    } else {
        Ok(t)
    })
}

/// Checks a presented token ([`check`]) and uses it up by one. Call inside
/// the enrolment transaction.
pub async fn consume<C: ConnectionTrait>(
    db: &C,
    secret: &str,
) -> Result<Result<token::Model, TokenRefusal>, sea_orm::DbErr> {
    let t = match check(db, secret).await? {
        Ok(t) => t,
        Err(refused) => return Ok(Err(refused)),
    };
    let mut am: token::ActiveModel = t.clone().into();
    am.uses = Set(t.uses + 1);
    let updated = token::Entity::update(am).exec(db).await?;
    Ok(Ok(updated))
}

/// The API's view: never the hash.
pub fn token_json(t: &token::Model) -> Value {
    let now = now_ms();
    let state = if t.revoked {
        "revoked"
    } else if t.expires_at <= now {
        "expired"
    } else if t.uses >= t.uses_allowed {
        "used_up"
    } else {
        "active"
    };
    json!({
        "id": t.id,
        "state": state,
        "uses": t.uses,
        "uses_allowed": t.uses_allowed,
        "expires_at": t.expires_at,
        "labels": serde_json::from_str::<Value>(&t.labels).unwrap_or(Value::Null),
        "auto_approve": t.auto_approve,
        "created_at": t.created_at,
        "created_by": t.created_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("24h"), Ok(86_400));
        assert_eq!(parse_duration_secs("90m"), Ok(5_400));
        assert_eq!(parse_duration_secs("15"), Ok(15));
        assert!(parse_duration_secs("soon").is_err());
        assert!(parse_duration_secs("-1h").is_err());
    }
}
