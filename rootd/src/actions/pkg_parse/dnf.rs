//! What dnf (4 and 5) and `needs-restarting` print, parsed: `dnf
//! check-update` (the upgradable packages), `dnf updateinfo list` (the
//! advisories per package, with their severity) and `needs-restarting -r`
//! (the packages that want a reboot). Pure functions; running the programs
//! is `pkg_scan.rs`'s job.

use std::collections::BTreeMap;

/// One line of `dnf check-update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnfUpdate {
    pub name: String,
    pub arch: String,
    /// `[epoch:]version-release`.
    pub candidate: String,
    /// The repository id.
    pub repo: String,
}

/// The advisories `dnf updateinfo list` names for one package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advisories {
    /// Advisory ids, sorted, without repeats.
    pub ids: Vec<String>,
    /// Whether any of them is a security advisory.
    pub security: bool,
    /// The highest normalised severity among them (see
    /// [`normalise_severity`]).
    pub severity: Option<String>,
}

/// Lines of `dnf check-update` that are neither packages nor part of one.
fn is_noise(line: &str) -> bool {
    [
        "Last metadata expiration check",
        "Updating ",
        "Repositories loaded",
        "Security: ",
    ]
    .iter()
    .any(|p| line.trim_start().starts_with(p))
}

/// `name.arch  [epoch:]version-release  repo` lines of `dnf check-update`
/// (dnf 4 and 5), up to the "Obsoleting Packages" section. A name too
/// long for its column is wrapped: the version and repository follow on an
/// indented next line.
pub fn parse_dnf_check_update(lines: &[String]) -> Vec<DnfUpdate> {
    let mut out = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for l in lines {
        if l.starts_with("Obsoleting") {
            break;
        }
        if l.trim().is_empty() || is_noise(l) {
            pending.clear();
            continue;
        }
        let words = l.split_whitespace().map(str::to_string);
        if l.starts_with(char::is_whitespace) && !pending.is_empty() {
            pending.extend(words);
        } else {
            pending = words.collect();
        }
        if pending.len() < 3 {
            continue;
        }
        if let [na, version, repo] = &pending[..] {
            if let Some((name, arch)) = na.rsplit_once('.') {
                if !name.is_empty()
                    && is_arch(arch)
                    && version.starts_with(|c: char| c.is_ascii_digit())
                {
                    out.push(DnfUpdate {
                        name: name.to_string(),
                        arch: arch.to_string(),
                        candidate: version.clone(),
                        repo: repo.clone(),
                    });
                }
            }
        }
        pending.clear();
    }
    out
}

fn is_arch(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits `name-[epoch:]version-release.arch` into (name,
/// `[epoch:]version-release`, arch); `None` when it is not one.
pub fn split_nevra(s: &str) -> Option<(&str, &str, &str)> {
    let (rest, arch) = s.rsplit_once('.')?;
    if !is_arch(arch) {
        return None;
    }
    let (nv, release) = rest.rsplit_once('-')?;
    let (name, version) = nv.rsplit_once('-')?;
    let ok = !name.is_empty()
        && !release.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit());
    ok.then(|| (name, &rest[name.len() + 1..], arch))
}

/// A severity as the advisories spell it (`Important`, `important`,
/// `High`, `Medium`…) normalised to `Critical`, `Important`, `Moderate` or
/// `Low`; `None` for none or unknown.
pub fn normalise_severity(s: &str) -> Option<&'static str> {
    match s.to_ascii_lowercase().as_str() {
        "critical" => Some("Critical"),
        "important" | "high" => Some("Important"),
        "moderate" | "medium" => Some("Moderate"),
        "low" => Some("Low"),
        _ => None,
    }
}

fn rank(sev: &str) -> u8 {
    match sev {
        "Critical" => 4,
        "Important" => 3,
        "Moderate" => 2,
        "Low" => 1,
        _ => 0,
    }
}

/// Whether a word is an advisory id (`RHSA-2024:1234`, `ALSA-2024:3138`,
/// `FEDORA-2024-1a2b3c4d5e`, `FEDORA-EPEL-2024-…`).
fn is_advisory_id(s: &str) -> bool {
    s.contains('-')
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '_'))
}

/// `dnf updateinfo list`, by package name. dnf 4 prints `ID TYPE NEVRA`
/// with TYPE `Important/Sec.`, `Unknown/Sec.`, `bugfix`, `enhancement`…;
/// dnf 5 prints a header and `ID TYPE [SEVERITY] NEVRA ISSUED` with TYPE
/// `security`, `bugfix`… and SEVERITY a word or `None`.
pub fn parse_updateinfo(lines: &[String]) -> BTreeMap<String, Advisories> {
    let mut out: BTreeMap<String, Advisories> = BTreeMap::new();
    for l in lines {
        let words: Vec<&str> = l.split_whitespace().collect();
        if words.len() < 3 || !is_advisory_id(words[0]) {
            continue;
        }
        let Some((name, _, _)) = words[2..].iter().find_map(|w| split_nevra(w)) else {
            continue;
        };
        let (security, severity) = match words[1].split_once('/') {
            Some((sev, sec)) if sec.starts_with("Sec") => (true, normalise_severity(sev)),
            _ => (
                words[1].eq_ignore_ascii_case("security"),
                normalise_severity(words[2]),
            ),
        };
        let entry = out.entry(name.to_string()).or_default();
        if !entry.ids.iter().any(|i| i == words[0]) {
            entry.ids.push(words[0].to_string());
            entry.ids.sort();
        }
        entry.security |= security;
        if let Some(sev) = severity {
            if entry
                .severity
                .as_deref()
                .is_none_or(|s| rank(s) < rank(sev))
            {
                entry.severity = Some(sev.to_string());
            }
        }
    }
    out
}

/// The packages `needs-restarting -r` names (`  * kernel`).
pub fn parse_needs_restarting(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("* "))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    //! The dnf fixtures (RHEL 9, Rocky 8, Alma 8 and 9, Fedora 40 with dnf 4
    //! and 41 with dnf 5) are transcribed in the exact published layout of
    //! those releases' output: this machine (Debian) cannot run them.

    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    fn up(name: &str, arch: &str, candidate: &str, repo: &str) -> DnfUpdate {
        DnfUpdate {
            name: name.into(),
            arch: arch.into(),
            candidate: candidate.into(),
            repo: repo.into(),
        }
    }

    #[test]
    fn rhel9_check_update_with_a_wrapped_name() {
        let u = parse_dnf_check_update(&lines(include_str!("fixtures/dnf-rhel9-check-update.txt")));
        let repo = "rhel-9-for-x86_64-baseos-rpms";
        assert_eq!(
            u,
            vec![
                up("kernel", "x86_64", "5.14.0-362.24.1.el9_3", repo),
                up("kernel-core", "x86_64", "5.14.0-362.24.1.el9_3", repo),
                up("openssl", "x86_64", "1:3.0.7-25.el9_3", repo),
                up("openssl-libs", "x86_64", "1:3.0.7-25.el9_3", repo),
                up(
                    "python3-dnf-plugin-subscription-manager",
                    "x86_64",
                    "1.29.38-1.el9_3",
                    repo
                ),
                up("tzdata", "noarch", "2024a-1.el9", repo),
            ]
        );
    }

    #[test]
    fn rocky8_stops_at_obsoleting_and_keeps_both_arches() {
        let u =
            parse_dnf_check_update(&lines(include_str!("fixtures/dnf-rocky8-check-update.txt")));
        let names: Vec<(&str, &str)> = u
            .iter()
            .map(|u| (u.name.as_str(), u.arch.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("bind-libs", "x86_64"),
                ("bind-license", "noarch"),
                ("glibc", "i686"),
                ("glibc", "x86_64"),
                ("NetworkManager-cloud-setup", "x86_64"),
            ]
        );
        assert_eq!(u[0].candidate, "32:9.11.36-11.el8_9.1");
        assert_eq!(u[0].repo, "appstream");
    }

    #[test]
    fn alma9_and_fedora41_dnf5() {
        let u = parse_dnf_check_update(&lines(include_str!("fixtures/dnf-alma9-check-update.txt")));
        assert_eq!(u.len(), 3);
        assert_eq!(
            u[2],
            up("openssh-server", "x86_64", "8.7p1-38.el9_4.1", "baseos")
        );
        let u = parse_dnf_check_update(&lines(include_str!(
            "fixtures/dnf5-fedora41-check-update.txt"
        )));
        assert_eq!(u.len(), 3);
        assert_eq!(
            u[2],
            up("vim-enhanced", "x86_64", "2:9.1.866-1.fc41", "updates")
        );
    }

    #[test]
    fn nevra() {
        assert_eq!(
            split_nevra("openssl-libs-1:3.0.7-25.el9_3.x86_64"),
            Some(("openssl-libs", "1:3.0.7-25.el9_3", "x86_64"))
        );
        assert_eq!(
            split_nevra("tzdata-2024a-1.el9.noarch"),
            Some(("tzdata", "2024a-1.el9", "noarch"))
        );
        assert_eq!(split_nevra("2024-11-01"), None);
        assert_eq!(split_nevra("None"), None);
        assert_eq!(split_nevra("Important/Sec."), None);
    }

    #[test]
    fn rhel9_advisories_take_the_highest_severity() {
        let a = parse_updateinfo(&lines(include_str!("fixtures/dnf-rhel9-updateinfo.txt")));
        let core = &a["kernel-core"];
        assert_eq!(core.ids, ["RHSA-2024:1248", "RHSA-2024:1301"]);
        assert!(core.security);
        assert_eq!(core.severity.as_deref(), Some("Critical"));
        let libs = &a["openssl-libs"];
        assert_eq!(libs.ids, ["RHSA-2024:0999", "RHSA-2024:1234"]);
        assert_eq!(libs.severity.as_deref(), Some("Important"));
        let sm = &a["python3-dnf-plugin-subscription-manager"];
        assert_eq!(sm.ids, ["RHBA-2024:1100"]);
        assert!(!sm.security && sm.severity.is_none());
        assert!(!a["tzdata"].security);
        assert!(!a.contains_key("Last"));
    }

    #[test]
    fn alma8_unknown_severity_and_fedora40() {
        let a = parse_updateinfo(&lines(include_str!("fixtures/dnf-alma8-updateinfo.txt")));
        assert_eq!(a["bind-libs"].severity.as_deref(), Some("Low"));
        assert!(a["glibc"].security);
        assert_eq!(
            a["glibc"].severity, None,
            "Unknown/Sec.: security, no severity"
        );
        assert!(!a["NetworkManager-cloud-setup"].security);
        let a = parse_updateinfo(&lines(include_str!("fixtures/dnf-fedora40-updateinfo.txt")));
        assert_eq!(a["openssl-libs"].ids, ["FEDORA-2024-1a2b3c4d5e"]);
        assert_eq!(a["openssl"].severity.as_deref(), Some("Moderate"));
        assert!(!a["bash"].security);
        assert_eq!(a["htop"].ids, ["FEDORA-EPEL-2024-0011223344"]);
    }

    #[test]
    fn fedora41_dnf5_layout() {
        let a = parse_updateinfo(&lines(include_str!(
            "fixtures/dnf5-fedora41-updateinfo.txt"
        )));
        assert_eq!(a.len(), 3, "{a:?}");
        let libs = &a["openssl-libs"];
        assert!(libs.security);
        assert_eq!(libs.severity.as_deref(), Some("Important"));
        assert!(!a["bash"].security && a["bash"].severity.is_none());
        assert_eq!(a["vim-enhanced"].ids, ["FEDORA-2024-77aa88bb99"]);
    }

    #[test]
    fn severities() {
        assert_eq!(normalise_severity("IMPORTANT"), Some("Important"));
        assert_eq!(normalise_severity("medium"), Some("Moderate"));
        assert_eq!(normalise_severity("None"), None);
        assert_eq!(normalise_severity("Unknown"), None);
    }

    #[test]
    fn needs_restarting() {
        let p = parse_needs_restarting(&lines(include_str!("fixtures/dnf-needs-restarting.txt")));
        assert_eq!(p, ["glibc", "kernel", "systemd"]);
    }
}
