//! What `apt-get --simulate dist-upgrade` prints, parsed: its `Inst` lines
//! (upgrades, and new packages an upgrade pulls in) and `Remv` lines.
//! `Conf` lines and the prose around them are ignored. Pure functions; the
//! scan that runs apt-get is `pkg_scan.rs`.
//!
//! An `Inst` line is `Inst NAME [CURRENT] (CANDIDATE RELEASE, RELEASE…
//! [ARCH]) [ordering notes…]`; `[CURRENT]` is missing for a new package.
//! Each release is apt's `Label:Version/Suite` (`Debian:12.9/stable`,
//! `Debian-Security:12/stable-security`, `Ubuntu:22.04/jammy-security`), or
//! `Label:Suite` for a repository whose Release file has no version.

use super::Upgradable;

/// One `Inst` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptInst {
    pub name: String,
    /// `None`: a new package (nothing installed under that name).
    pub current: Option<String>,
    pub candidate: String,
    /// Every release that carries the candidate, as apt names them.
    pub releases: Vec<String>,
    /// The candidate's architecture (`amd64`, `all`); empty if apt gave none.
    pub arch: String,
}

impl AptInst {
    /// The releases joined with ", " (what `pkg.scan` calls `origin`).
    pub fn origin(&self) -> String {
        self.releases.join(", ")
    }

    /// Whether any release is a security one.
    pub fn security(&self) -> bool {
        self.releases.iter().any(|r| is_security_release(r))
    }
}

/// What a simulated dist-upgrade would do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AptPlan {
    /// Installed packages that get a newer version.
    pub upgrades: Vec<Upgradable>,
    /// Packages the upgrade installs that are not installed now (a new
    /// kernel's image, a new dependency).
    pub new: Vec<String>,
    /// Packages the upgrade removes.
    pub removals: Vec<String>,
}

/// Whether one release entry is a security release: its suite ends in
/// `-security`, or its label (or origin) says `Security`.
pub fn is_security_release(entry: &str) -> bool {
    let (label, rest) = entry.split_once(':').unwrap_or((entry, ""));
    let suite = rest.rsplit('/').next().unwrap_or(rest);
    suite.ends_with("-security") || label.to_ascii_lowercase().contains("security")
}

/// Parses one `Inst` line; `None` for any other line or a malformed one.
pub fn parse_apt_inst(line: &str) -> Option<AptInst> {
    let rest = line.strip_prefix("Inst ")?;
    let (name, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start();
    let (current, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (cur, r) = r.split_once(']')?;
            (Some(cur.to_string()), r.trim_start())
        }
        None => (None, rest),
    };
    let inner = rest.strip_prefix('(')?;
    let inner = inner[..inner.find(')')?].trim();
    let (candidate, rest) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
    let mut rest = rest.trim();
    let mut arch = String::new();
    if rest.ends_with(']') {
        if let Some(open) = rest.rfind('[') {
            arch = rest[open + 1..rest.len() - 1].trim().to_string();
            rest = rest[..open].trim_end();
        }
    }
    let releases = rest
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    if name.is_empty() || candidate.is_empty() {
        return None;
    }
    Some(AptInst {
        name: name.to_string(),
        current,
        candidate: candidate.to_string(),
        releases,
        arch,
    })
}

/// Parses the whole output of `apt-get --simulate dist-upgrade`.
pub fn parse_apt_simulation(lines: &[String]) -> AptPlan {
    let mut plan = AptPlan::default();
    for l in lines {
        if let Some(removed) = l.strip_prefix("Remv ") {
            if let Some(name) = removed.split_whitespace().next() {
                plan.removals.push(name.to_string());
            }
            continue;
        }
        let Some(inst) = parse_apt_inst(l) else {
            continue;
        };
        match &inst.current {
            None => plan.new.push(inst.name),
            Some(current) => plan.upgrades.push(Upgradable {
                origin: inst.origin(),
                security: inst.security(),
                current: current.clone(),
                name: inst.name,
                arch: inst.arch,
                candidate: inst.candidate,
                severity: None,
                advisories: Vec::new(),
                held: false,
            }),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    //! The fixtures: `apt-debian12-captured.txt` was captured on a Debian 12
    //! machine with its real sources (its releases were then `oldstable`),
    //! `apt-drover-test-captured.txt` from the test repository of
    //! `control-plane/tests/common/apt_repo.rs`. The others (Debian 11 and
    //! 13, a Debian 12 point release as `stable`, Ubuntu 22.04 and 24.04)
    //! are transcribed in apt's exact layout, not captured here.

    use super::*;

    fn plan(text: &str) -> AptPlan {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        parse_apt_simulation(&lines)
    }

    fn find<'a>(p: &'a AptPlan, name: &str) -> &'a Upgradable {
        p.upgrades
            .iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("{name} not among {:?}", p.upgrades))
    }

    #[test]
    fn several_releases_are_all_kept_without_a_trailing_comma() {
        let i = parse_apt_inst(
            "Inst libc6 [2.36-9+deb12u7] (2.36-9+deb12u9 Debian:12.9/stable, Debian-Security:12/stable-security [amd64]) [libc-bin:amd64 ]",
        )
        .unwrap();
        assert_eq!(i.name, "libc6");
        assert_eq!(i.current.as_deref(), Some("2.36-9+deb12u7"));
        assert_eq!(i.candidate, "2.36-9+deb12u9");
        assert_eq!(
            i.origin(),
            "Debian:12.9/stable, Debian-Security:12/stable-security"
        );
        assert_eq!(i.arch, "amd64");
        assert!(i.security());
        let one =
            parse_apt_inst("Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])")
                .unwrap();
        assert_eq!(one.origin(), "Debian:12.15/oldstable");
        assert!(!one.security());
        let new = parse_apt_inst("Inst foo (1.0 Debian:12.9/stable [amd64])").unwrap();
        assert_eq!(new.current, None);
        assert_eq!(new.candidate, "1.0");
        assert!(parse_apt_inst("Conf bash (5.2)").is_none());
        assert!(parse_apt_inst("Remv foo [1.0]").is_none());
        assert!(parse_apt_inst("Inst broken [1.0").is_none());
    }

    #[test]
    fn security_by_suite_or_label() {
        assert!(is_security_release("Debian-Security:12/stable-security"));
        assert!(is_security_release("Ubuntu:22.04/jammy-security"));
        assert!(is_security_release("Debian-Security:10/oldoldstable"));
        assert!(is_security_release("DroverTest-Security:stable-security"));
        assert!(!is_security_release("Ubuntu:22.04/jammy-updates"));
        assert!(!is_security_release("Debian:12.9/stable"));
        assert!(!is_security_release("DroverTest:stable"));
    }

    #[test]
    fn debian12_captured_here() {
        let p = plan(include_str!("fixtures/apt-debian12-captured.txt"));
        assert_eq!(p.upgrades.len(), 133);
        assert!(p.new.is_empty() && p.removals.is_empty());
        for u in &p.upgrades {
            assert!(!u.origin.ends_with(','), "{u:?}");
            assert!(!u.origin.contains(",,"), "{u:?}");
            assert!(!u.arch.is_empty(), "{u:?}");
            assert!(!u.current.is_empty() && !u.candidate.is_empty());
        }
        let g = find(&p, "libgcrypt20");
        assert_eq!(
            g.origin,
            "Debian:12.15/oldstable, Debian-Security:12/oldstable-security"
        );
        assert!(g.security);
        let b = find(&p, "bash");
        assert_eq!(
            (b.current.as_str(), b.candidate.as_str()),
            ("5.2.15-2+b8", "5.2.15-2+b13")
        );
        assert!(!b.security);
        assert_eq!(find(&p, "libpam-runtime").arch, "all");
        assert_eq!(find(&p, "libcap2").candidate, "1:2.66-4+deb12u3+b1");
        // Ordering notes after the parenthesis are not part of anything.
        assert_eq!(
            find(&p, "libpam-modules-bin").origin,
            "Debian-Security:12/oldstable-security"
        );
    }

    #[test]
    fn debian12_point_release_new_and_removed() {
        let p = plan(include_str!("fixtures/apt-debian12-bookworm-stable.txt"));
        let names: Vec<&str> = p.upgrades.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            ["libc6", "libc-bin", "libexpat1", "libfoo-utils", "tzdata"]
        );
        assert_eq!(p.new, ["libfoo2"]);
        assert_eq!(p.removals, ["libfoo-old1"]);
        assert!(find(&p, "libc6").security);
        assert!(!find(&p, "libexpat1").security);
        assert_eq!(find(&p, "tzdata").origin, "Debian:12.9/stable-updates");
        assert_eq!(find(&p, "tzdata").arch, "all");
    }

    #[test]
    fn debian11_and_13() {
        let p = plan(include_str!("fixtures/apt-debian11-bullseye.txt"));
        assert_eq!(p.upgrades.len(), 7);
        assert_eq!(p.new, ["linux-image-5.10.0-33-amd64"]);
        assert!(find(&p, "libssl1.1").security);
        assert!(find(&p, "linux-image-amd64").security);
        assert!(!find(&p, "tzdata").security);
        assert!(!find(&p, "base-files").security);
        let p = plan(include_str!("fixtures/apt-debian13-trixie.txt"));
        assert_eq!(p.upgrades.len(), 4);
        assert!(find(&p, "libssl3t64").security);
        assert!(!find(&p, "systemd").security);
        assert_eq!(find(&p, "systemd").candidate, "257.8-1~deb13u2");
    }

    #[test]
    fn ubuntu_2204_and_2404() {
        let p = plan(include_str!("fixtures/apt-ubuntu2204-jammy.txt"));
        assert_eq!(p.upgrades.len(), 5);
        let ssl = find(&p, "libssl3");
        assert_eq!(
            ssl.origin,
            "Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security"
        );
        assert!(ssl.security);
        assert!(!find(&p, "ubuntu-advantage-tools").security);
        assert_eq!(find(&p, "python3-update-manager").current, "1:22.04.19");
        let p = plan(include_str!("fixtures/apt-ubuntu2404-noble.txt"));
        assert_eq!(p.upgrades.len(), 4);
        assert_eq!(p.new, ["linux-image-6.8.0-51-generic"]);
        assert!(find(&p, "curl").security);
        assert!(!find(&p, "snapd").security);
    }

    #[test]
    fn the_test_repository() {
        let p = plan(include_str!("fixtures/apt-drover-test-captured.txt"));
        let a = find(&p, "drover-test-alpha");
        assert_eq!(
            (a.current.as_str(), a.candidate.as_str(), a.arch.as_str()),
            ("1.0", "1.1", "all")
        );
        assert_eq!(a.origin, "DroverTest:stable");
        assert!(!a.security);
        let b = find(&p, "drover-test-beta");
        assert_eq!(b.candidate, "2.0");
        assert_eq!(b.origin, "DroverTest-Security:stable-security");
        assert!(b.security);
    }
}
