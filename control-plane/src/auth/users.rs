//! People's accounts: password hashing and policy, user names, adding,
//! listing, removing users and changing roles (the last admin cannot go).
//! Sessions and the gate are elsewhere; this file knows no HTTP.

use super::*;
use crate::db::entities::session;

pub fn hash_password(pw: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .expect("argon2 hashing with default parameters")
        .to_string()
}

pub fn verify_password(hash: &str, pw: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Checked where passwords are set (CLI, API).
pub fn check_new_password(pw: &str) -> Result<(), String> {
    if pw.chars().count() < 12 {
        return Err("passwords must have at least 12 characters".into());
    }
    if pw.len() > 1024 {
        return Err("passwords must be at most 1024 bytes".into());
    }
    Ok(())
}

pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?}: 1..=64 of letters, digits and - _ . @"
        ))
    }
}

/// Generates a password for `drover init` (shown once).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    Unknown(String),
    #[error("the last admin cannot be removed or demoted")]
    LastAdmin,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

pub async fn add_user(
    db: &DatabaseConnection,
    name: &str,
    role: &str,
    password: &str,
) -> Result<user::Model, UserError> {
    check_user_name(name).map_err(UserError::Invalid)?;
    Role::parse(role).ok_or_else(|| {
        UserError::Invalid(format!("role {role:?}: use admin, operator or viewer"))
    })?;
    check_new_password(password).map_err(UserError::Invalid)?;
    if find_user(db, name).await?.is_some() {
        return Err(UserError::Exists(name.into()));
    }
    let now = bus_schema::now_ms();
    let m = user::Model {
        id: uuid::Uuid::now_v7().simple().to_string(),
        name: name.into(),
        role: role.into(),
        password_hash: hash_password(password),
        totp_secret: None,
        totp_pending: None,
        created_at: now,
        updated_at: now,
    };
    user::Entity::insert(user::ActiveModel {
        id: Set(m.id.clone()),
        name: Set(m.name.clone()),
        role: Set(m.role.clone()),
        password_hash: Set(m.password_hash.clone()),
        totp_secret: Set(None),
        totp_pending: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec(db)
    .await?;
    Ok(m)
}

pub async fn find_user(
    db: &DatabaseConnection,
    name: &str,
) -> Result<Option<user::Model>, sea_orm::DbErr> {
    user::Entity::find()
        .filter(user::Column::Name.eq(name))
        .one(db)
        .await
}

pub async fn list_users(db: &DatabaseConnection) -> Result<Vec<user::Model>, sea_orm::DbErr> {
    user::Entity::find()
        .order_by_asc(user::Column::Name)
        .all(db)
        .await
}

pub(super) async fn admins(db: &DatabaseConnection) -> Result<usize, sea_orm::DbErr> {
    Ok(user::Entity::find()
        .filter(user::Column::Role.eq("admin"))
        .all(db)
        .await?
        .len())
}

pub async fn set_role(db: &DatabaseConnection, name: &str, role: &str) -> Result<(), UserError> {
    Role::parse(role).ok_or_else(|| {
        UserError::Invalid(format!("role {role:?}: use admin, operator or viewer"))
    })?;
    let u = find_user(db, name)
        .await?
        .ok_or_else(|| UserError::Unknown(name.into()))?;
    if u.role == "admin" && role != "admin" && admins(db).await? <= 1 {
        return Err(UserError::LastAdmin);
    }
    user::Entity::update(user::ActiveModel {
        id: Set(u.id.clone()),
        role: Set(role.into()),
        updated_at: Set(bus_schema::now_ms()),
        ..Default::default()
    })
    .exec(db)
    .await?;
    // A changed role takes effect at once: end the user's sessions.
    end_sessions_of(db, &u.id).await?;
    Ok(())
}

pub async fn remove_user(db: &DatabaseConnection, name: &str) -> Result<(), UserError> {
    let u = find_user(db, name)
        .await?
        .ok_or_else(|| UserError::Unknown(name.into()))?;
    if u.role == "admin" && admins(db).await? <= 1 {
        return Err(UserError::LastAdmin);
    }
    end_sessions_of(db, &u.id).await?;
    user::Entity::delete_by_id(u.id).exec(db).await?;
    Ok(())
}

pub async fn set_password(
    db: &DatabaseConnection,
    user_id: &str,
    password: &str,
) -> Result<(), UserError> {
    check_new_password(password).map_err(UserError::Invalid)?;
    user::Entity::update(user::ActiveModel {
        id: Set(user_id.into()),
        password_hash: Set(hash_password(password)),
        updated_at: Set(bus_schema::now_ms()),
        ..Default::default()
    })
    .exec(db)
    .await?;
    Ok(())
}

pub async fn end_sessions_of(db: &DatabaseConnection, user_id: &str) -> Result<(), sea_orm::DbErr> {
    session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends every session of `user_id` except `keep` (the session row id, the
/// SHA-256 of its cookie), if given: after a password or TOTP change only
/// the session that made it stays logged in.
pub async fn end_other_sessions(
    db: &DatabaseConnection,
    user_id: &str,
    keep: Option<&str>,
) -> Result<u64, sea_orm::DbErr> {
    let mut q = session::Entity::delete_many().filter(session::Column::UserId.eq(user_id));
    if let Some(k) = keep {
        q = q.filter(session::Column::Id.ne(k));
    }
    Ok(q.exec(db).await?.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterY"));
    }
}
