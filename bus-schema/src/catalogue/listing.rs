//! What the listing actions (`service.list`, `pkg.list`, `sys.processes`)
//! share: the name glob an operator filters by, and the bounds of a list.
//! Owns the glob's alphabet and its check; it does not list anything (rootd
//! and the agent do) and knows no action.

/// Longest name glob, in bytes.
pub const PATTERN_MAX: usize = 128;

/// What [`check_pattern`] accepts, said in every refusal.
pub const PATTERN_FORMS: &str = "a glob on the name: letters, digits and \
     ._-+@:~ with * (any run), ? (one character) and [abc] / [a-z] (one of), \
     at most 128 bytes; no spaces, quotes or shell characters; an exact name \
     matches only itself";

/// A name glob (see [`PATTERN_FORMS`]), checked the same way wherever it is
/// used. The matching itself is [`glob::Pattern`]'s.
pub fn check_pattern(field: &str, s: &str) -> Result<glob::Pattern, String> {
    let refuse = |why: &str| format!("{field} {s:?} is not accepted: {why}; {PATTERN_FORMS}");
    if s.is_empty() {
        return Err(refuse("it is empty (leave it out to list everything)"));
    }
    if s.len() > PATTERN_MAX {
        return Err(refuse("it is longer than 128 bytes"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-+@:~*?[]".contains(*c)))
    {
        return Err(refuse(&format!("{c:?} is not allowed")));
    }
    glob::Pattern::new(s).map_err(|e| refuse(&format!("it is not a valid glob ({e})")))
}

/// Checks a list's `limit`: 1 to `max`.
pub fn check_limit(limit: u32, max: u32) -> Result<(), String> {
    if limit == 0 || limit > max {
        return Err(format!(
            "limit: {limit} is out of range; give 1 to {max} (the list says when it was cut)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_checked() {
        let p = check_pattern("pattern", "ngin*").unwrap();
        assert!(p.matches("nginx.service"));
        assert!(!p.matches("apache2.service"));
        assert!(check_pattern("pattern", "lib[a-c]?")
            .unwrap()
            .matches("libc6"));
        assert!(check_pattern("pattern", "nginx").unwrap().matches("nginx"));
        assert!(!check_pattern("pattern", "nginx")
            .unwrap()
            .matches("nginx-full"));
        for bad in [
            "",
            "a;b",
            "$(id)",
            "`id`",
            "a b",
            "a|b",
            "x\ny",
            "a/b",
            "'q'",
            "a&b",
            "[unclosed",
            "a>b",
        ] {
            assert!(check_pattern("pattern", bad).is_err(), "{bad:?} refused");
        }
        assert!(check_pattern("pattern", &"a".repeat(129))
            .unwrap_err()
            .contains("128"));
        check_pattern("pattern", &"a".repeat(128)).unwrap();
    }

    #[test]
    fn limits_are_checked() {
        check_limit(1, 100).unwrap();
        check_limit(100, 100).unwrap();
        assert!(check_limit(0, 100).unwrap_err().contains("1 to 100"));
        assert!(check_limit(101, 100).is_err());
    }
}
