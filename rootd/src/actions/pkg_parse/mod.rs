//! Parsers of what the package tools print: `dpkg-query` and `rpm -q`
//! (what is installed, in which state, held or not) and apt's lock errors
//! here; `apt-get --simulate` in [`apt`], `dnf check-update`, `dnf
//! updateinfo list` and `needs-restarting -r` in [`dnf`]. Pure functions
//! over lines; running the tools and deciding what to do is `pkg.rs`'s and
//! `pkg_scan.rs`'s job.

use serde::Serialize;

pub mod apt;
pub mod dnf;

pub use apt::parse_apt_simulation;
pub use dnf::{parse_dnf_check_update, parse_needs_restarting, parse_updateinfo};

/// One upgradable package: the wire shape, shared with the control plane.
pub use bus_schema::catalogue::pkg::Upgradable;

/// One installed (or partly installed) package as the package database
/// reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Installed {
    /// The package's own name.
    pub package: String,
    pub arch: String,
    /// With its epoch when it has one (`1:3.0.15-1`).
    pub version: String,
    /// dpkg selection `hold`.
    pub held: bool,
    /// dpkg's status abbreviation without the trailing blank; empty for rpm.
    pub state: String,
    /// Fully installed (dpkg `i`, or triggers awaited/pending); false for
    /// unpacked, half-configured and half-installed packages.
    pub complete: bool,
    /// Found as the provider of this name (dnf `vim` → `vim-enhanced`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provides: Option<String>,
}

impl Installed {
    /// What an incomplete dpkg state means, for a summary.
    pub fn incomplete_reason(&self) -> Option<String> {
        if self.complete {
            return None;
        }
        let what = match self.state.chars().nth(1) {
            Some('U') => "unpacked but not configured",
            Some('F') => "half-configured (its configuration failed)",
            Some('H') => "half-installed (its unpacking failed)",
            _ => "not completely installed",
        };
        Some(format!(
            "{} is {what} (dpkg state {}); `dpkg --configure -a` or pkg.install finishes it",
            self.package, self.state
        ))
    }
}

/// Whether apt-get failed because someone else holds the dpkg lock.
pub fn apt_lock_held(stderr: &[String]) -> bool {
    stderr.iter().any(|l| {
        l.contains("Could not get lock")
            || l.contains("Unable to acquire the dpkg frontend lock")
            || l.contains("Unable to lock directory")
            || l.contains("is another process using it?")
    })
}

/// `name\tarch\tabbrev\tversion` lines of dpkg-query: the packages that
/// are installed at least in part (not `un`, `rc`...).
pub fn parse_dpkg_query(lines: &[String]) -> Vec<Installed> {
    let mut out = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        let [name, arch, status, version] = f[..] else {
            continue;
        };
        let mut c = status.chars();
        let (Some(want), Some(state)) = (c.next(), c.next()) else {
            continue;
        };
        let complete = matches!(state, 'i' | 'W' | 't');
        let present = complete || matches!(state, 'U' | 'F' | 'H');
        if !present || version.is_empty() {
            continue;
        }
        out.push(Installed {
            package: name.to_string(),
            arch: arch.to_string(),
            version: version.to_string(),
            held: want == 'h',
            state: status.trim_end().to_string(),
            complete,
            provides: None,
        });
    }
    out
}

/// `name\tarch\tversion` lines of rpm (it prints "package x is not
/// installed" without a tab for the others). rpm lists installed packages
/// only.
pub fn parse_rpm_q(lines: &[String]) -> Vec<Installed> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [name, arch, version] = f[..] else {
                return None;
            };
            Some(Installed {
                package: name.to_string(),
                arch: arch.to_string(),
                version: version.to_string(),
                held: false,
                state: String::new(),
                complete: true,
                provides: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn parses_dpkg_query() {
        let v = parse_dpkg_query(&lines(&[
            "libc6\tamd64\tii \t2.36-9+deb12u14",
            "hello\tamd64\trc \t2.10-3",
            "held\tall\thi \t1:1.0-1",
            "half\tamd64\tiU \t1.0",
            "failed\tamd64\tiF \t1.0",
            "trig\tamd64\tit \t1.0",
            "gone\tamd64\tun \t",
            "garbage",
        ]));
        let names: Vec<&str> = v.iter().map(|i| i.package.as_str()).collect();
        assert_eq!(
            names,
            ["libc6", "held", "half", "failed", "trig"],
            "rc, un: not installed"
        );
        assert_eq!(v[0].version, "2.36-9+deb12u14");
        assert!(v[0].complete && !v[0].held);
        assert!(v[1].complete && v[1].held && v[1].state == "hi");
        assert!(!v[2].complete);
        assert!(v[2]
            .incomplete_reason()
            .unwrap()
            .contains("unpacked but not configured"));
        assert!(v[3]
            .incomplete_reason()
            .unwrap()
            .contains("half-configured"));
        assert!(v[4].complete);
    }

    #[test]
    fn parses_rpm_q() {
        let v = parse_rpm_q(&lines(&[
            "bash\tx86_64\t5.2.15-5.fc39",
            "package nosuch is not installed",
            "openssl-libs\tx86_64\t1:3.1.4-3.fc39",
        ]));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].version, "5.2.15-5.fc39");
        assert_eq!(v[1].version, "1:3.1.4-3.fc39");
    }

    #[test]
    fn recognises_a_held_lock() {
        assert!(apt_lock_held(&lines(&[
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)",
            "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?",
        ])));
        assert!(!apt_lock_held(&lines(&[
            "E: Unable to locate package nosuch"
        ])));
    }
}
