//! CSRF protection for the login form itself, before any session exists: a
//! signed double-submit token. `GET /login` (and every re-rendered login
//! form) issues a token, sets it in the `drover_login` cookie
//! (`HttpOnly; Secure; SameSite=Strict; Path=/login`) and puts the same
//! value in the form's hidden `login_csrf` field; `POST /login` is only
//! looked at when both are present, equal (constant time), carry this
//! process's HMAC and have not expired. A cross-site form post has no cookie
//! (SameSite) and cannot read the field, so it cannot log a victim in. It
//! owns only the token; the form and the checks of names, passwords and
//! codes live in `ui::login` and the rest of [`crate::auth`].

use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie that carries the login token.
pub const LOGIN_COOKIE: &str = "drover_login";
/// The form field that carries it.
pub const LOGIN_FIELD: &str = "login_csrf";
/// How long a login form stays usable (1 hour).
pub const LOGIN_TOKEN_MS: i64 = 3600 * 1000;

/// This process's signing key: random at start, never stored. A restart
/// makes open login forms stale (the user reloads the page).
static KEY: LazyLock<[u8; 32]> = LazyLock::new(|| {
    let mut k = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
    k
});

fn mac(body: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(&*KEY).expect("HMAC takes any key length");
    m.update(b"drover-login-csrf|");
    m.update(body.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A fresh token `<expiry ms>.<32 hex random>.<64 hex HMAC>` valid for
/// [`LOGIN_TOKEN_MS`] from `now_ms`.
pub fn issue_login_token(now_ms: i64) -> String {
    let body = format!("{}.{}", now_ms + LOGIN_TOKEN_MS, super::random_hex(16));
    let sig = mac(&body);
    format!("{body}.{sig}")
}

/// The `Set-Cookie` value that carries `token`.
pub fn login_cookie(token: &str) -> String {
    format!(
        "{LOGIN_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/login; Max-Age={}",
        LOGIN_TOKEN_MS / 1000
    )
}

/// Why a login post was refused before its name and password were looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginCsrfError {
    #[error("no sign-in token (the form did not come from this site, or cookies are off)")]
    Missing,
    #[error("the sign-in token does not match")]
    Mismatch,
    #[error("the sign-in form has expired")]
    Expired,
}

/// Checks the cookie's and the field's tokens at `now_ms`.
pub fn check_login_token(
    cookie: Option<&str>,
    field: Option<&str>,
    now_ms: i64,
) -> Result<(), LoginCsrfError> {
    let (Some(c), Some(f)) = (cookie, field) else {
        return Err(LoginCsrfError::Missing);
    };
    if c.is_empty() || !bool::from(c.as_bytes().ct_eq(f.as_bytes())) {
        return Err(LoginCsrfError::Mismatch);
    }
    let Some((body, sig)) = c.rsplit_once('.') else {
        return Err(LoginCsrfError::Mismatch);
    };
    if !bool::from(mac(body).as_bytes().ct_eq(sig.as_bytes())) {
        return Err(LoginCsrfError::Mismatch);
    }
    let exp: i64 = body
        .split_once('.')
        .and_then(|(e, _)| e.parse().ok())
        .ok_or(LoginCsrfError::Mismatch)?;
    if exp <= now_ms {
        return Err(LoginCsrfError::Expired);
    }
    Ok(())
}

/// The request's login token when it is valid for at least 10 more
/// minutes: a login page shown again (a reload, a second tab, a browser
/// that loads the page twice) keeps the token the browser already holds
/// instead of replacing the cookie under a form that is still open.
pub fn reusable_login_token(headers: &axum::http::HeaderMap, now_ms: i64) -> Option<&str> {
    let c = login_cookie_value(headers)?;
    check_login_token(Some(c), Some(c), now_ms + 10 * 60 * 1000)
        .ok()
        .map(|_| c)
}

/// The login token in a request's cookies, if any.
pub fn login_cookie_value(headers: &axum::http::HeaderMap) -> Option<&str> {
    super::session::cookie_value(headers, LOGIN_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_matching_signed_fresh_token_passes() {
        let t = issue_login_token(1_000);
        assert_eq!(check_login_token(Some(&t), Some(&t), 2_000), Ok(()));
        assert_eq!(
            check_login_token(None, Some(&t), 2_000),
            Err(LoginCsrfError::Missing)
        );
        assert_eq!(
            check_login_token(Some(&t), None, 2_000),
            Err(LoginCsrfError::Missing)
        );
        let other = issue_login_token(1_000);
        assert_eq!(
            check_login_token(Some(&t), Some(&other), 2_000),
            Err(LoginCsrfError::Mismatch)
        );
        // Double-submitted but not signed here: an attacker-planted cookie.
        let forged =
            "9999999999999.00112233445566778899aabbccddeeff.".to_string() + &"0".repeat(64);
        assert_eq!(
            check_login_token(Some(&forged), Some(&forged), 2_000),
            Err(LoginCsrfError::Mismatch)
        );
        assert_eq!(
            check_login_token(Some(&t), Some(&t), 1_000 + LOGIN_TOKEN_MS),
            Err(LoginCsrfError::Expired)
        );
    }
}
