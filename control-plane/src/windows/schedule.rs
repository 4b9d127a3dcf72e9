//! Occurrence math of a maintenance window: which occurrence is open at an
//! instant and which one comes next, in the window's IANA time zone. Owns
//! only arithmetic on times; does not read or write the database.
//!
//! An occurrence starts on each listed weekday at `start` local time and
//! lasts `duration_minutes` of elapsed time (so a window over a DST change
//! still lasts as long). A start that falls into a DST gap (the local time
//! does not exist) moves forward by the gap; a start that exists twice (the
//! clocks go back) is the earlier one. A window may cross midnight: it
//! belongs to the day it opens on.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// The days as the API spells them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why a window's schedule is not usable; the text says what to write.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("days: name at least one day, from mon, tue, wed, thu, fri, sat, sun")]
    NoDays,
    #[error("days: {0:?} is not a day; use mon, tue, wed, thu, fri, sat or sun")]
    Day(String),
    #[error("start: {0:?} is not a time; use HH:MM (24-hour), e.g. 02:30")]
    Start(String),
    #[error("duration_minutes must be from 1 to 1440 (24 hours)")]
    Duration,
    #[error("timezone: {0:?} is not an IANA time zone name; use e.g. UTC or Europe/Berlin")]
    Timezone(String),
}

/// One opening of a window: `[start_ms, end_ms)`, milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A window's schedule, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    days: [bool; 7],
    start: NaiveTime,
    duration_minutes: i64,
    tz: Tz,
}

impl Schedule {
    /// Checks and builds a schedule from the API's fields.
    pub fn parse(
        days: &[String],
        start: &str,
        duration_minutes: i64,
        timezone: &str,
    ) -> Result<Self, ScheduleError> {
        let mut set = [false; 7];
        if days.is_empty() {
            return Err(ScheduleError::NoDays);
        }
        for d in days {
            let i = DAYS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(d.trim()))
                .ok_or_else(|| ScheduleError::Day(d.clone()))?;
            set[i] = true;
        }
        let start = parse_hhmm(start).ok_or_else(|| ScheduleError::Start(start.to_string()))?;
        if !(1..=1440).contains(&duration_minutes) {
            return Err(ScheduleError::Duration);
        }
        let tz: Tz = timezone
            .parse()
            .map_err(|_| ScheduleError::Timezone(timezone.to_string()))?;
        Ok(Self {
            days: set,
            start,
            duration_minutes,
            tz,
        })
    }

    /// The days in the API's spelling, Monday first.
    pub fn days(&self) -> Vec<String> {
        DAYS.iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(d, _)| d.to_string())
            .collect()
    }

    /// The occurrence that opens on local date `d`, if `d` is a listed day.
    fn on(&self, d: NaiveDate) -> Option<Occurrence> {
        if !self.days[d.weekday().num_days_from_monday() as usize] {
            return None;
        }
        let local = d.and_time(self.start);
        let start: DateTime<Utc> = match self.tz.from_local_datetime(&local).earliest() {
            Some(t) => t.with_timezone(&Utc),
            // A DST gap: keep the offset from before it, which moves the
            // start forward by the gap's length.
            None => {
                let before = self
                    .tz
                    .offset_from_utc_datetime(&(local - Duration::days(1)))
                    .fix();
                Utc.from_utc_datetime(&(local - Duration::seconds(before.local_minus_utc() as i64)))
            }
        };
        let start_ms = start.timestamp_millis();
        Some(Occurrence {
            start_ms,
            end_ms: start_ms + self.duration_minutes * 60_000,
        })
    }

    fn local_date(&self, at_ms: i64) -> NaiveDate {
        let utc = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or_default();
        utc.with_timezone(&self.tz).date_naive()
    }

    /// The occurrence open at `at_ms` (start ≤ at < end), if any; the latest
    /// one when two overlap.
    pub fn open_at(&self, at_ms: i64) -> Option<Occurrence> {
        let today = self.local_date(at_ms);
        (0..=2)
            .filter_map(|back| today.checked_sub_signed(Duration::days(back)))
            .filter_map(|d| self.on(d))
            .filter(|o| o.start_ms <= at_ms && at_ms < o.end_ms)
            .max_by_key(|o| o.start_ms)
    }

    /// The first occurrence that starts after `at_ms`.
    pub fn next_after(&self, at_ms: i64) -> Option<Occurrence> {
        let today = self.local_date(at_ms);
        (-1..=8)
            .filter_map(|k| today.checked_add_signed(Duration::days(k)))
            .filter_map(|d| self.on(d))
            .filter(|o| o.start_ms > at_ms)
            .min_by_key(|o| o.start_ms)
    }
}

/// `HH:MM`, 24-hour.
fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// `mon` … `sun` of a weekday.
pub fn day_name(d: Weekday) -> &'static str {
    DAYS[d.num_days_from_monday() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn sched(days: &[&str], start: &str, dur: i64, tz: &str) -> Schedule {
        let days: Vec<String> = days.iter().map(|d| d.to_string()).collect();
        Schedule::parse(&days, start, dur, tz).unwrap()
    }

    #[test]
    fn open_and_next_in_utc() {
        // 2026-11-30 is a Monday.
        let s = sched(&["mon", "wed"], "02:00", 60, "UTC");
        let o = s.open_at(ms("2026-11-30T02:30:00Z")).unwrap();
        assert_eq!(o.start_ms, ms("2026-11-30T02:00:00Z"));
        assert_eq!(o.end_ms, ms("2026-11-30T03:00:00Z"));
        assert_eq!(
            s.open_at(ms("2026-11-30T03:00:00Z")),
            None,
            "end is exclusive"
        );
        assert_eq!(
            s.open_at(ms("2026-12-01T02:30:00Z")),
            None,
            "tuesday is not listed"
        );
        let n = s.next_after(ms("2026-11-30T02:30:00Z")).unwrap();
        assert_eq!(n.start_ms, ms("2026-12-02T02:00:00Z"));
        let n = s.next_after(ms("2026-12-02T05:00:00Z")).unwrap();
        assert_eq!(n.start_ms, ms("2026-12-07T02:00:00Z"));
    }

    #[test]
    fn a_window_may_cross_midnight() {
        // Saturday 23:00 for three hours: open on Sunday at 01:00.
        let s = sched(&["sat"], "23:00", 180, "Europe/Berlin");
        // 2026-12-06 01:00 Berlin (UTC+1) = 00:00Z, a Sunday.
        let o = s.open_at(ms("2026-12-06T00:00:00Z")).unwrap();
        assert_eq!(o.start_ms, ms("2026-12-05T22:00:00Z"));
        assert_eq!(o.end_ms, ms("2026-12-06T01:00:00Z"));
        assert_eq!(s.open_at(ms("2026-12-06T01:00:00Z")), None);
    }

    #[test]
    fn dst_changes_keep_local_start_and_elapsed_duration() {
        // Berlin springs forward on 2026-03-29 (02:00 → 03:00).
        let s = sched(&["sat", "sun"], "01:30", 120, "Europe/Berlin");
        let sat = s.open_at(ms("2026-03-28T01:00:00Z")).unwrap();
        assert_eq!(sat.start_ms, ms("2026-03-28T00:30:00Z"), "01:30 CET");
        let sun = s.next_after(sat.start_ms).unwrap();
        assert_eq!(
            sun.start_ms,
            ms("2026-03-29T00:30:00Z"),
            "01:30 CET, before the jump"
        );
        assert_eq!(
            sun.end_ms,
            ms("2026-03-29T02:30:00Z"),
            "two hours of elapsed time"
        );
        let next = s.next_after(sun.start_ms).unwrap();
        // The following Saturday is in summer time: 01:30 CEST = 23:30Z.
        assert_eq!(next.start_ms, ms("2026-04-03T23:30:00Z"));
    }

    #[test]
    fn a_start_in_a_dst_gap_moves_forward_and_a_repeated_one_is_the_first() {
        let gap = sched(&["sun"], "02:30", 60, "Europe/Berlin");
        let o = gap.next_after(ms("2026-03-28T12:00:00Z")).unwrap();
        // 02:30 does not exist that night: 03:30 CEST = 01:30Z.
        assert_eq!(o.start_ms, ms("2026-03-29T01:30:00Z"));
        // Berlin falls back on 2026-10-25: 02:30 happens twice.
        let twice = gap.next_after(ms("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(
            twice.start_ms,
            ms("2026-10-25T00:30:00Z"),
            "02:30 CEST, the first"
        );
        assert!(gap.open_at(ms("2026-10-25T01:15:00Z")).is_some());
    }

    #[test]
    fn bad_schedules_say_what_to_write() {
        let d = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Schedule::parse(&d(&[]), "02:00", 60, "UTC"),
            Err(ScheduleError::NoDays)
        );
        assert!(matches!(
            Schedule::parse(&d(&["monday"]), "02:00", 60, "UTC"),
            Err(ScheduleError::Day(_))
        ));
        for bad in ["2:00", "24:00", "02:60", "0200", "ab:cd"] {
            assert!(matches!(
                Schedule::parse(&d(&["mon"]), bad, 60, "UTC"),
                Err(ScheduleError::Start(_))
            ));
        }
        assert_eq!(
            Schedule::parse(&d(&["mon"]), "02:00", 0, "UTC"),
            Err(ScheduleError::Duration)
        );
        assert_eq!(
            Schedule::parse(&d(&["mon"]), "02:00", 1441, "UTC"),
            Err(ScheduleError::Duration)
        );
        assert!(matches!(
            Schedule::parse(&d(&["mon"]), "02:00", 60, "Mars/Olympus"),
            Err(ScheduleError::Timezone(_))
        ));
    }
}
