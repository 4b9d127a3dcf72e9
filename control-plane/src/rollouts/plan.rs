//! A rollout's plan: reading the operator's `--canary`, `--waves`,
//! `--pause` and `--max-failures`, and putting each target host into its
//! wave. Pure functions, no database; the engine (`engine.rs`) and the
//! start (`mod.rs`) use them. Owns the rounding rules, nothing else.

/// A host count or a share of hosts, as `--canary` and `--max-failures`
/// take it: `3` or `5%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Hosts(usize),
    /// 1..=100.
    Percent(u32),
}

impl Amount {
    /// Reads `3` or `5%`; `field` names the option in the error, which
    /// says what to write instead.
    pub fn parse(field: &str, text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            match p.trim().parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Self::Percent(p)),
                _ => Err(format!(
                    "{field} {text:?} is not a percentage from 1% to 100%; write e.g. 5% or a host count like 2"
                )),
            }
        } else {
            t.parse::<usize>().map(Self::Hosts).map_err(|_| {
                format!(
                    "{field} {text:?} is neither a host count nor a percentage; write e.g. 2 or 5%"
                )
            })
        }
    }

    /// How many of `n` hosts: a count is capped at `n`; a percentage is
    /// rounded up.
    pub fn of(self, n: usize) -> usize {
        match self {
            Self::Hosts(h) => h.min(n),
            Self::Percent(p) => (n * p as usize).div_ceil(100),
        }
    }
}

/// Reads `--waves`: comma-separated cumulative percentages of the hosts
/// after the canary, strictly rising, the last 100% (`10%,50%,100%`).
/// Empty means one wave of everyone (`100%`).
pub fn parse_waves(text: &str) -> Result<Vec<u32>, String> {
    if text.trim().is_empty() {
        return Ok(vec![100]);
    }
    let mut out: Vec<u32> = Vec::new();
    for part in text.split(',') {
        let p = part.trim();
        let n = p
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<u32>().ok())
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                format!("wave {p:?} is not a percentage from 1% to 100%; write cumulative shares like 10%,50%,100%")
            })?;
        if out.last().is_some_and(|&last| n <= last) {
            return Err(format!(
                "waves must rise: {n}% comes after {}%; write cumulative shares like 10%,50%,100%",
                out.last().unwrap_or(&0)
            ));
        }
        out.push(n);
    }
    if out.last() != Some(&100) {
        return Err(format!(
            "the last wave must be 100% so every host is reached; write e.g. {}100%",
            text.trim().trim_end_matches(',').to_string() + ","
        ));
    }
    if out.len() > 20 {
        return Err("at most 20 waves; merge some".into());
    }
    Ok(out)
}

/// Reads `--pause`: `0`, `90` (seconds), `30s`, `10m`, `2h`; at most 7 days.
/// Returns seconds.
pub fn parse_pause(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad =
        || format!("pause {text:?} is not a duration; write e.g. 30s, 10m or 2h (0 for none)");
    let (num, mult) = match t.char_indices().last() {
        None => return Ok(0),
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        Some(_) => (t, 1),
    };
    let n: i64 = num.trim().parse().map_err(|_| bad())?;
    if n < 0 {
        return Err(bad());
    }
    let secs = n.saturating_mul(mult);
    if secs > 7 * 86_400 {
        return Err(format!(
            "pause {text:?} is longer than 7 days; pause the rollout by hand instead"
        ));
    }
    Ok(secs)
}

/// A pause in seconds as [`parse_pause`] reads it back: `0`, `90s`,
/// `10m`, `2h`.
pub fn pause_text(secs: i64) -> String {
    match secs {
        0 => "0".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Each of `n` hosts' wave, in the hosts' order: the first `canary` hosts
/// are wave 0; of the `r` others, host `j` is in the first wave `i` (1..)
/// whose cumulative share reaches it (`j < ceil(r * waves[i-1] / 100)`).
/// A wave may come out empty on a small fleet; the engine skips it.
pub fn assign(n: usize, canary: Option<Amount>, waves: &[u32]) -> Vec<i32> {
    let c = match canary {
        // A canary asked for has at least one host (when there is one).
        Some(a) => a.of(n).max(1).min(n),
        None => 0,
    };
    let rest = n - c;
    let mut out = vec![0; c];
    for j in 0..rest {
        let i = waves
            .iter()
            .position(|&p| j < (rest * p as usize).div_ceil(100))
            .unwrap_or(waves.len().saturating_sub(1));
        out.push(i as i32 + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_up_and_cap() {
        assert_eq!(Amount::parse("canary", "5%").unwrap().of(30), 2);
        assert_eq!(Amount::parse("canary", "5%").unwrap().of(20), 1);
        assert_eq!(Amount::parse("canary", "3").unwrap().of(2), 2);
        assert_eq!(
            Amount::parse("canary", " 10 % ").unwrap(),
            Amount::Percent(10)
        );
        for bad in ["0%", "101%", "-1", "abc", "5.5%", ""] {
            let e = Amount::parse("canary", bad).unwrap_err();
            assert!(e.contains("write e.g."), "{bad}: {e}");
        }
    }

    #[test]
    fn waves_are_cumulative_and_end_at_100() {
        assert_eq!(parse_waves("10%,50%,100%").unwrap(), vec![10, 50, 100]);
        assert_eq!(parse_waves("").unwrap(), vec![100]);
        assert!(parse_waves("50%,10%,100%")
            .unwrap_err()
            .contains("must rise"));
        assert!(parse_waves("10%,50%").unwrap_err().contains("10%,50%,100%"));
        assert!(parse_waves("10,100%").unwrap_err().contains("percentage"));
    }

    #[test]
    fn pauses_read_units() {
        assert_eq!(parse_pause("10m").unwrap(), 600);
        assert_eq!(parse_pause("30s").unwrap(), 30);
        assert_eq!(parse_pause("90").unwrap(), 90);
        assert_eq!(parse_pause("2h").unwrap(), 7200);
        assert_eq!(parse_pause("").unwrap(), 0);
        assert!(parse_pause("10x").is_err());
        assert!(parse_pause("8000h").unwrap_err().contains("7 days"));
        for t in ["0", "90s", "10m", "2h"] {
            assert_eq!(pause_text(parse_pause(t).unwrap()), t);
        }
    }

    #[test]
    fn plan_puts_canary_first_then_waves() {
        // 10 hosts, canary 1, waves 25%,100% of the other 9: ceil(2.25)=3.
        let p = assign(10, Some(Amount::Hosts(1)), &[25, 100]);
        assert_eq!(p, vec![0, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
        // 5% of 10 rounds up to 1 canary host.
        let p = assign(10, Some(Amount::Percent(5)), &[100]);
        assert_eq!(p.iter().filter(|&&w| w == 0).count(), 1);
        // No canary: nobody in wave 0.
        let p = assign(4, None, &[50, 100]);
        assert_eq!(p, vec![1, 1, 2, 2]);
        // A canary of 0 hosts asked for still takes one.
        let p = assign(3, Some(Amount::Hosts(0)), &[100]);
        assert_eq!(p, vec![0, 1, 1]);
        // Small fleet: the 10% wave is empty, nothing is lost.
        let p = assign(2, None, &[10, 50, 100]);
        assert_eq!(p, vec![1, 3]);
        // Everyone in the canary.
        assert_eq!(assign(2, Some(Amount::Hosts(5)), &[100]), vec![0, 0]);
    }

    #[test]
    fn every_host_gets_exactly_one_wave() {
        for n in 0..60 {
            let p = assign(n, Some(Amount::Percent(7)), &[10, 33, 100]);
            assert_eq!(p.len(), n);
            assert!(p.windows(2).all(|w| w[0] <= w[1]), "{p:?}");
            assert!(p.iter().all(|&w| (0..=3).contains(&w)));
        }
    }
}
