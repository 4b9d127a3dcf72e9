//! Text from outside (a host's report, a decoder's error about outside
//! bytes) made safe to store and show: every control character — NUL,
//! newlines, escape sequences — becomes a space, and the text is cut at a
//! number of characters, never inside one. PostgreSQL cannot store a NUL
//! (a whole batch's transaction fails on one), and a newline or an escape
//! would forge lines in logs, notifications and terminals.
//!
//! Owns only that transformation; which fields are refused outright instead
//! (host names, versions) is each message's `validate`.

/// `text` with control characters as spaces, at most `max_chars`
/// characters.
pub fn storable(text: &str, max_chars: usize) -> String {
    text.chars()
        .take(max_chars)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Multi-line text from outside (a result's summary, output) as stored:
/// lines kept, each NUL as U+FFFD, at most `max_chars` characters. For
/// text shown escaped (pages, JSON) where newlines carry meaning.
pub fn without_nul(text: &str, max_chars: usize) -> String {
    text.chars()
        .take(max_chars)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_spaces_and_the_cut_is_on_characters() {
        assert_eq!(storable("a\0b\nc\x1b[2J", 100), "a b c [2J");
        assert_eq!(storable("ééé", 2), "éé");
        assert_eq!(storable("", 5), "");
        assert_eq!(without_nul("a\0b\nc", 100), "a\u{FFFD}b\nc");
    }
}
