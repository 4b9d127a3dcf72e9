//! Time as the agent and rootd judge it: the process's notion of "now"
//! (with the test-only offset), the bounded tolerance for a host clock that
//! disagrees with the control plane's, and the check that tells "this
//! command expired" from "this host's clock is wrong". Does not own how the
//! control plane measures a host's skew (that is `control-plane/src/skew.rs`)
//! nor the other command checks (`signing`).

use std::sync::OnceLock;

use crate::{Command, Refusal};

/// How far (milliseconds, either way) a host's clock may disagree with the
/// control plane's before commands are refused as [`Refusal::ClockSkew`].
/// Expiry checks on the agent and rootd allow this much past `expires_at`.
/// Five minutes, as Kerberos allows by default: a clock two minutes off
/// still runs a command with a one-minute lifetime.
pub const CLOCK_SKEW_TOLERANCE_MS: i64 = 300_000;

/// From this much skew (milliseconds, either way) the control plane warns
/// operators, long before commands are refused.
pub const CLOCK_SKEW_WARN_MS: i64 = 30_000;

/// What operators are told to do about a skewed clock.
pub const CLOCK_SKEW_ADVICE: &str = "fix the host's clock (timedatectl / chrony)";

/// TEST ONLY: milliseconds added to this process's clock, so a test can
/// fake a host whose clock is off without changing the real one. Read once
/// from the environment; unset (or not an integer) means no offset.
pub const TEST_CLOCK_OFFSET_ENV: &str = "DROVER_TEST_CLOCK_OFFSET_MS";

/// The test-only offset of this process's clock, in milliseconds (0 unless
/// [`TEST_CLOCK_OFFSET_ENV`] is set).
pub fn test_offset_ms() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var(TEST_CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0)
    })
}

/// Milliseconds since the Unix epoch by the system clock, plus the
/// test-only offset.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + test_offset_ms()
}

/// "12.3 s ahead of" / "4.0 s behind" for a skew in milliseconds
/// (positive: the host's clock is ahead).
pub fn describe_skew(skew_ms: i64) -> String {
    let secs = skew_ms.abs() as f64 / 1000.0;
    if skew_ms >= 0 {
        format!("{secs:.1} s ahead of")
    } else {
        format!("{secs:.1} s behind")
    }
}

/// The host's clock skew as far as this command shows it, in milliseconds
/// (positive: ahead): the control plane's measurement carried in the signed
/// command, or, beyond the tolerance, a command issued in this clock's
/// future (which proves the clock is behind by at least that much).
pub fn skew_of(cmd: &Command, now_ms: i64) -> Option<i64> {
    let behind = cmd.issued_at - now_ms;
    if behind > CLOCK_SKEW_TOLERANCE_MS {
        return Some(-behind);
    }
    cmd.clock_skew_ms
}

/// Refuses a command when this host's clock is off by more than
/// [`CLOCK_SKEW_TOLERANCE_MS`]; `Ok` otherwise. Expiry is checked apart
/// ([`expired`]): skew never makes an expired command acceptable.
pub fn check_skew(cmd: &Command, now_ms: i64) -> Result<(), Refusal> {
    match skew_of(cmd, now_ms) {
        Some(skew_ms) if skew_ms.abs() > CLOCK_SKEW_TOLERANCE_MS => {
            Err(Refusal::ClockSkew { skew_ms })
        }
        _ => Ok(()),
    }
}

/// Whether a command with this expiry must not start at `now_ms`: past
/// `expires_at` by more than the skew tolerance.
pub fn expired(expires_at: i64, now_ms: i64) -> bool {
    expires_at.saturating_add(CLOCK_SKEW_TOLERANCE_MS) <= now_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;

    fn cmd(issued_at: i64, skew: Option<i64>) -> Command {
        Command {
            id: "c".into(),
            agent_id: "A".into(),
            action: "sys.ping".into(),
            params: serde_json::json!({}),
            issued_at,
            expires_at: issued_at + 60_000,
            timeout_secs: 10,
            requested_by: "admin".into(),
            source: Source::User,
            job_id: None,
            clock_skew_ms: skew,
        }
    }

    #[test]
    fn tolerance_and_skew() {
        // Two minutes ahead, measured: runs.
        let c = cmd(0, Some(120_000));
        assert!(check_skew(&c, 120_000).is_ok());
        assert!(!expired(c.expires_at, 120_000));
        // Ten minutes ahead, measured: refused as skew.
        let c = cmd(0, Some(600_000));
        assert_eq!(
            check_skew(&c, 600_000),
            Err(Refusal::ClockSkew { skew_ms: 600_000 })
        );
        // Ten minutes behind, unmeasured: the issue time proves it.
        let c = cmd(600_000, None);
        assert_eq!(
            check_skew(&c, 0),
            Err(Refusal::ClockSkew { skew_ms: -600_000 })
        );
        // A plain late command is expired, not skewed.
        let c = cmd(0, Some(0));
        assert!(check_skew(&c, 400_000).is_ok());
        assert!(expired(c.expires_at, 400_000));
        assert!(!expired(c.expires_at, 60_000 + CLOCK_SKEW_TOLERANCE_MS - 1));
    }

    #[test]
    fn skew_is_described_with_advice() {
        let r = Refusal::ClockSkew { skew_ms: 600_000 };
        let text = r.to_string();
        assert!(text.contains("600.0 s ahead of"), "{text}");
        assert!(text.contains(CLOCK_SKEW_ADVICE), "{text}");
        assert_eq!(r.label(), "clock_skew");
    }
}
