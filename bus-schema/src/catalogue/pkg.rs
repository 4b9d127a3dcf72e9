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
