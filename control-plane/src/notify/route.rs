//! Routing: which channels a transition goes to, and whether a channel's
//! quiet hours hold a notification now (and until when).
//!
//! Owns those two decisions, as pure functions of a channel row and a
//! transition; not the stream, the database or sending.

use chrono::{TimeZone, Timelike};

use super::channels::severity_rank;
use super::model::channel;
use crate::alerts::transition::alert_transition;

/// The rule id of test notifications (`POST .../channels/{id}/test`): such a
/// transition goes only to the channel named in its `channel` label.
pub const TEST_RULE: &str = "drover-test";

/// Whether `t` goes to channel `c`: enabled, at least its severity, one of
/// its rules (none listed: all), and every label matcher equal.
pub fn selects(c: &channel::Model, t: &alert_transition::Model) -> bool {
    let labels: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&t.labels).unwrap_or_default();
    if !c.enabled {
        return false;
    }
    if t.rule_id == TEST_RULE {
        return labels.get("channel").and_then(|v| v.as_str()) == Some(c.id.as_str());
    }
    if severity_rank(&t.severity) < severity_rank(&c.min_severity) {
        return false;
    }
    let rules: Vec<String> = serde_json::from_str(&c.rule_ids).unwrap_or_default();
    if !rules.is_empty() && !rules.contains(&t.rule_id) {
        return false;
    }
    let matchers: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&c.matchers).unwrap_or_default();
    matchers
        .iter()
        .all(|(k, v)| labels.get(k).and_then(|l| l.as_str()) == Some(v.as_str()))
}

/// When channel `c`'s quiet hours hold a notification at `now_ms`: the end
/// of those quiet hours (ms since the epoch); `None` when it may go now
/// (no quiet hours, outside them, or `critical` with the bypass on).
pub fn quiet_until(c: &channel::Model, now_ms: i64, critical: bool) -> Option<i64> {
    let (start, end) = (c.quiet_start?, c.quiet_end?);
    if critical && c.quiet_bypass_critical {
        return None;
    }
    let tz: chrono_tz::Tz = c
        .quiet_timezone
        .as_deref()
        .unwrap_or("UTC")
        .parse()
        .unwrap_or(chrono_tz::UTC);
    let local = tz.timestamp_millis_opt(now_ms).single()?;
    let minute = (local.hour() * 60 + local.minute()) as i32;
    let quiet = if start < end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    };
    if !quiet {
        return None;
    }
    // The next `end` minute boundary, counted in local wall minutes (a DST
    // change inside quiet hours shifts it by at most the change).
    let minutes_left = (end - minute).rem_euclid(1440) as i64;
    let into_minute_ms = (local.second() as i64) * 1000 + (now_ms.rem_euclid(1000));
    Some(now_ms + minutes_left * 60_000 - into_minute_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chan(start: Option<i32>, end: Option<i32>, tz: &str) -> channel::Model {
        channel::Model {
            id: "c1".into(),
            name: "ops".into(),
            kind: "webhook".into(),
            config: "{}".into(),
            secret_sealed: None,
            min_severity: "warning".into(),
            rule_ids: "[]".into(),
            matchers: r#"{"team":"db"}"#.into(),
            quiet_start: start,
            quiet_end: end,
            quiet_timezone: Some(tz.into()),
            quiet_bypass_critical: true,
            group_secs: 0,
            enabled: true,
            created_at: 0,
            created_by: "t".into(),
        }
    }

    fn tr(sev: &str, labels: &str) -> alert_transition::Model {
        alert_transition::Model {
            id: 1,
            alert_id: "a".into(),
            rule_id: "r".into(),
            rule_name: "disk".into(),
            agent_id: None,
            hostname: None,
            target: "fleet".into(),
            state: "firing".into(),
            severity: sev.into(),
            summary: "s".into(),
            labels: labels.into(),
            at: 0,
            suppressed: None,
            dispatched_at: None,
        }
    }

    #[test]
    fn severity_and_matchers_route() {
        let c = chan(None, None, "UTC");
        assert!(selects(&c, &tr("critical", r#"{"team":"db"}"#)));
        assert!(!selects(&c, &tr("info", r#"{"team":"db"}"#)));
        assert!(!selects(&c, &tr("critical", r#"{"team":"web"}"#)));
    }

    #[test]
    fn quiet_hours_span_midnight_and_end_on_the_minute() {
        // 23:30 UTC on 2026-01-01.
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 23, 30, 0)
            .unwrap()
            .timestamp_millis();
        let c = chan(Some(22 * 60), Some(7 * 60), "UTC");
        assert_eq!(quiet_until(&c, at, false), Some(at + 450 * 60_000));
        assert_eq!(quiet_until(&c, at, true), None, "critical bypasses");
        let day = chan(Some(8 * 60), Some(9 * 60), "UTC");
        assert_eq!(quiet_until(&day, at, false), None);
        // Paris is UTC+1 in January: 23:30 UTC is 00:30 there.
        let paris = chan(Some(0), Some(60), "Europe/Paris");
        assert_eq!(quiet_until(&paris, at, false), Some(at + 30 * 60_000));
    }
}
