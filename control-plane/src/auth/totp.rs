//! Time-based one-time codes (RFC 6238) for accounts that enable them:
//! secrets, the provisioning URI, checking a code. No HTTP, no database.

pub fn totp_for(secret_b32: &str, account: &str) -> Option<totp_rs::TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .ok()?;
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some("Drover".into()),
        account.to_string(),
    )
    .ok()
}

pub fn new_totp_secret() -> String {
    match totp_rs::Secret::generate_secret().to_encoded() {
        totp_rs::Secret::Encoded(s) => s,
        totp_rs::Secret::Raw(_) => unreachable!("to_encoded gives Encoded"),
    }
}

pub fn totp_ok(secret_b32: &str, account: &str, code: &str) -> bool {
    let code = code.trim();
    code.len() == 6
        && totp_for(secret_b32, account)
            .and_then(|t| t.check_current(code).ok())
            .unwrap_or(false)
}
