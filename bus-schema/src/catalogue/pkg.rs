//! `pkg`: the package manager (apt or dnf).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_package, ActionSpec, Params, RunsIn};

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
    ]
}
