//! Rules for strings that end up as argv entries, SQL identifiers or file
//! names. Each refuses anything outside a small, known alphabet, so shell
//! metacharacters, newlines and `../` never get through.

/// `^[A-Za-z0-9_]{1,64}$`: database, user and table names.
pub fn check_ident(field: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{field} {s:?} is not allowed: use 1 to 64 letters, digits or underscores"
        ));
    }
    Ok(())
}

/// A systemd unit name: letters, digits and `@._:-`, not starting with `-`
/// (so it can never be read as an option), at most 255 bytes.
pub fn check_unit(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('-')
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._:-".contains(c));
    if !ok {
        return Err(format!(
            "unit {s:?} is not a valid systemd unit name (letters, digits and @._:- only)"
        ));
    }
    Ok(())
}

/// A package name as apt and dnf spell them: starts with a letter or digit,
/// then letters, digits and `+._-`, at most 128 bytes.
pub fn check_package(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = s.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+._-".contains(c));
    if !ok {
        return Err(format!(
            "package {s:?} is not a valid package name (letters, digits and +._- only)"
        ));
    }
    Ok(())
}

/// An id for an app manifest: lower-case letters, digits and `-`, 1 to 64;
/// never a path.
pub fn check_app_id(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(format!(
            "app id {s:?} is not allowed: use 1 to 64 lower-case letters, digits or -"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_strings_are_refused() {
        for bad in [
            "",
            "a;b",
            "$(reboot)",
            "`id`",
            "a\nb",
            "../etc",
            "a b",
            "-rf",
            "x'--",
        ] {
            assert!(check_ident("name", bad).is_err(), "{bad:?}");
            assert!(check_unit(bad).is_err(), "{bad:?}");
            assert!(check_package(bad).is_err(), "{bad:?}");
            assert!(check_app_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_ident("name", &"a".repeat(65)).is_err());
        check_ident("name", "shop_db1").unwrap();
        check_unit("nginx.service").unwrap();
        check_unit("getty@tty1.service").unwrap();
        check_package("libc6").unwrap();
        check_package("g++").unwrap();
        check_app_id("node-exporter").unwrap();
    }
}
