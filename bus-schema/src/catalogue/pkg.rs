//! `pkg`: the package manager (apt or dnf).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::listing::{check_limit, check_pattern};
use super::{check_package, parse_package, ActionSpec, Params, RunsIn};

/// Params of `pkg.install` and `pkg.upgrade`: named packages only, never
/// "everything".
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackagesParams {
    /// Packages, 1 to 50 of them, in the host's package manager's syntax:
    /// `NAME`; apt `NAME=VERSION`, `NAME:ARCH`; dnf `NAME-VERSION`,
    /// `NAME.ARCH`; a version may carry an epoch (`1:2.0-3`). See
    /// [`super::PACKAGE_FORMS`].
    pub packages: Vec<String>,
}
impl Params for PackagesParams {
    fn check(&self) -> Result<(), String> {
        if self.packages.is_empty() || self.packages.len() > 50 {
            return Err("packages: name 1 to 50 packages".into());
        }
        self.packages.iter().try_for_each(|p| check_package(p))
    }
}

/// Packages `pkg.remove` always refuses (compared ignoring ASCII case):
/// Drover's own — the agent (removing it would cut the host off) and the
/// control plane (`drover`, on a host that also runs an agent). rootd also
/// refuses what dpkg marks `Essential: yes` or `Protected: yes`, and any
/// removal that would take packages not named with it.
pub const PROTECTED_PACKAGES: &[&str] = &["drover-agent", "drover"];

/// Whether `name` is one of [`PROTECTED_PACKAGES`].
pub fn is_protected_package(name: &str) -> bool {
    PROTECTED_PACKAGES
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
}

/// Params of `pkg.remove`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveParams {
    /// Packages to remove, 1 to 50, by name (`NAME`, or apt `NAME:ARCH`);
    /// no version. Never `drover-agent`, nor an essential or protected
    /// package.
    pub packages: Vec<String>,
    /// Also delete the packages' configuration files (apt `purge`). Default
    /// false.
    #[serde(default)]
    pub purge: bool,
}
impl Params for RemoveParams {
    fn check(&self) -> Result<(), String> {
        if self.packages.is_empty() || self.packages.len() > 50 {
            return Err("packages: name 1 to 50 packages".into());
        }
        for p in &self.packages {
            let spec = parse_package(p)?;
            if spec.version.is_some() || spec.dnf_epoch {
                return Err(format!(
                    "package {p:?}: pkg.remove takes names (NAME or NAME:ARCH), not versions"
                ));
            }
            let bare = spec.name.as_str();
            if is_protected_package(bare) {
                return Err(format!(
                    "package {bare:?} is Drover's own; removing it would cut the host off \
                     from Drover. Remove it on the host itself if you mean to"
                ));
            }
        }
        Ok(())
    }
}

/// Most packages `pkg.list` returns.
pub const LIST_MAX: u32 = 5000;

/// Params of `pkg.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only packages whose name matches this glob, e.g. `libssl*` (see
    /// [`super::listing::PATTERN_FORMS`]).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Most packages returned, 1 to 5000 (default 1000); the result says
    /// when there were more.
    #[serde(default = "default_list_limit")]
    pub limit: u32,
}
fn default_list_limit() -> u32 {
    1000
}
impl Params for ListParams {
    fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.pattern {
            check_pattern("pattern", p)?;
        }
        check_limit(self.limit, LIST_MAX)
    }
}

/// One upgradable package: an entry of `pkg.scan`'s `upgradable` list.
/// rootd writes it; the control plane reads it into the update inventory.
/// Every field may be missing in results of older rootd versions (read as
/// its default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Upgradable {
    pub name: String,
    /// The candidate's architecture (`amd64`, `all`, `x86_64`, `noarch`).
    pub arch: String,
    /// The installed version (with its epoch when it has one).
    pub current: String,
    /// The version an upgrade installs.
    pub candidate: String,
    /// Where the candidate comes from: every release (apt) or repository
    /// (dnf) that has it, joined with ", ".
    pub origin: String,
    /// Whether a security release or advisory carries the candidate.
    pub security: bool,
    /// The highest severity of the advisories covering it:
    /// `Critical`, `Important`, `Moderate` or `Low`; `None` when unknown
    /// (apt never says).
    pub severity: Option<String>,
    /// Advisory ids (`RHSA-2024:1234`, `FEDORA-2024-…`); empty with apt.
    pub advisories: Vec<String>,
    /// On hold: an upgrade leaves it until the hold is released.
    pub held: bool,
}

/// Whether the host needs a reboot, and which packages asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RebootNeed {
    pub required: bool,
    /// Sorted, without repeats; may be empty when a reboot is required for
    /// reasons no package names.
    pub packages: Vec<String>,
}

/// `pkg.scan`'s result: `{"manager", "upgradable": [...], "held": [names],
/// "reboot": {"required", "packages"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanReport {
    /// `apt` or `dnf`; empty when not reported.
    pub manager: String,
    pub upgradable: Vec<Upgradable>,
    /// Names on hold on the host.
    pub held: Vec<String>,
    pub reboot: RebootNeed,
}

/// Params of `pkg.scan`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanParams {
    /// Refresh the package lists first (`apt-get update`, `dnf makecache`)
    /// so the scan sees what the repositories offer now, not what the
    /// host's own timer last fetched. Takes the package manager's lock.
    /// Default: false. Scheduled scans set it.
    #[serde(default)]
    pub refresh: bool,
}
impl Params for ScanParams {}

pub fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new::<ScanParams>(
            "pkg.scan",
            "List upgradable packages (current and candidate version, origin, security flag, advisories) and whether a reboot is required; `refresh` fetches the package lists first.",
            RunsIn::Rootd,
            300,
        ),
        ActionSpec::new::<PackagesParams>(
            "pkg.install",
            "Install the named packages (non-interactive).",
            RunsIn::Rootd,
            900,
        ),
        ActionSpec::new::<PackagesParams>(
            "pkg.upgrade",
            "Upgrade the named, already installed packages to their candidate version.",
            RunsIn::Rootd,
            900,
        ),
        ActionSpec::new::<RemoveParams>(
            "pkg.remove",
            "Remove the named packages (non-interactive); `purge` also deletes their configuration files. Refuses drover-agent and essential or protected packages.",
            RunsIn::Rootd,
            900,
        ),
        ActionSpec::new::<ListParams>(
            "pkg.list",
            "List installed packages with version and architecture, filtered by a name glob.",
            RunsIn::Rootd,
            120,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::parse;
    use serde_json::json;

    #[test]
    fn remove_params_are_checked() {
        let p: RemoveParams = parse(&json!({"packages": ["hello", "libc6:i386"]})).unwrap();
        assert!(!p.purge);
        let bad = |v| parse::<RemoveParams>(&v).unwrap_err();
        assert!(bad(json!({"packages": []})).contains("1 to 50"));
        assert!(bad(json!({"packages": ["drover-agent"]})).contains("Drover's own"));
        assert!(bad(json!({"packages": ["drover-agent:amd64"]})).contains("Drover's own"));
        // The control plane's package too, and any spelling of either.
        assert!(bad(json!({"packages": ["drover"]})).contains("Drover's own"));
        assert!(bad(json!({"packages": ["Drover-Agent"]})).contains("Drover's own"));
        assert!(bad(json!({"packages": ["hello=1.0"]})).contains("not versions"));
        assert!(bad(json!({"packages": ["hello; rm -rf /"]})).contains("not accepted"));
        assert!(bad(json!({"packages": ["-y"]})).contains("not accepted"));
        assert!(bad(json!({"packages": ["x"], "force": true})).contains("unknown field"));
        assert!(bad(json!({"packages": ["x"], "purge": "yes"})).contains("invalid type"));
    }

    #[test]
    fn list_params_are_checked() {
        let p: ListParams = parse(&json!({})).unwrap();
        assert_eq!((p.pattern, p.limit), (None, 1000));
        parse::<ListParams>(&json!({"pattern": "lib*", "limit": 5000})).unwrap();
        let bad = |v| parse::<ListParams>(&v).unwrap_err();
        assert!(bad(json!({"limit": 5001})).contains("1 to 5000"));
        assert!(bad(json!({"pattern": "a|b"})).contains("not allowed"));
        assert!(bad(json!({"names": []})).contains("unknown field"));
    }
}
