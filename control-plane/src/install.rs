//! One-line host onboarding, the control plane's side: the install script
//! rendered for this control plane (`packaging/install.sh` with the API URL,
//! broker URL, command-signing key, release key and broker CA baked in), the install line
//! an operator copies, and the per-address rate limit of the public
//! endpoints. Checking a token without using it up is `tokens::check`.
//!
//! It does not serve HTTP (`http/install.rs`, `api/install.rs`), keep
//! artifacts (`releases.rs`) or enrol agents (`enroll.rs`, which uses the
//! token up when the agent presents it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use bus_schema::signing::release::ReleaseKey;
use bus_schema::VerifyingKey;

use crate::config::Config;

/// The script template (POSIX sh), with `__DROVER_..__` markers.
pub const TEMPLATE: &str = include_str!("../../packaging/install.sh");

/// What the script carries.
#[derive(Debug, Clone)]
pub struct Baked {
    /// The API's base URL, no trailing slash.
    pub public_url: String,
    /// Broker URL(s) for the hosts' `agent.toml`.
    pub nats_url: String,
    /// The command-signing key.
    pub key: VerifyingKey,
    /// The broker's CA certificate(s), PEM, if the broker speaks TLS.
    pub ca_pem: Option<String>,
    /// The fleet's release key (`release_key`), pinned on the host as
    /// `release_key` in agent.toml and rootd.toml; `None` when the control
    /// plane has none (the hosts then refuse every `agent.update`).
    pub release_key: Option<ReleaseKey>,
}

/// Why the script could not be rendered (a configuration problem of the
/// control plane, never the caller's).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("{what} {value:?} cannot go into the install script: only A-Z a-z 0-9 and : / . _ - [ ] @ % , + ~ are allowed")]
    UnsafeValue { what: &'static str, value: String },
    #[error("{0} must start with {1}")]
    BadScheme(&'static str, &'static str),
    #[error("the broker CA is not a PEM certificate")]
    BadCa,
}

fn safe_url_chars(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1000
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":/._-[]@%,+~".contains(&b))
}

/// True when every line is PEM armour or base64 (what can sit in a quoted
/// here-document without ending it).
fn pem_lines_only(pem: &str) -> bool {
    let mut armour = 0;
    for line in pem.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("-----BEGIN ") || line.starts_with("-----END ") {
            if !line.ends_with("-----")
                || !line
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b" -".contains(&b))
            {
                return false;
            }
            armour += 1;
        } else if !line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            return false;
        }
    }
    armour >= 2
}

/// The broker CA `install.sh` carries: the one the control plane checks
/// the broker against (`nats_ca`, else `<data_dir>/tls/ca.pem` when
/// `drover init` made one), if any.
pub fn broker_ca_path(cfg: &Config) -> Option<PathBuf> {
    cfg.nats_ca_file().filter(|p| p.is_file())
}

/// What this control plane bakes into its script. Errors: the broker CA
/// or the configured release key cannot be read.
pub fn baked(cfg: &Config, key: VerifyingKey) -> std::io::Result<Baked> {
    let ca_pem = match broker_ca_path(cfg) {
        Some(p) => Some(std::fs::read_to_string(p)?),
        None => None,
    };
    let release_key = crate::agent_releases::release_key(cfg)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Baked {
        public_url: cfg.public_url(),
        nats_url: cfg.agent_nats_url(),
        key,
        ca_pem,
        release_key,
    })
}

/// The install script for `b`. Every baked value is checked to be inert in
/// the script (single-quoted URLs of a fixed character set, PEM in quoted
/// here-documents).
pub fn render(b: &Baked) -> Result<String, RenderError> {
    let url = b.public_url.trim_end_matches('/');
    if !safe_url_chars(url) {
        return Err(RenderError::UnsafeValue {
            what: "public_url",
            value: url.into(),
        });
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(RenderError::BadScheme("public_url", "http:// or https://"));
    }
    if !safe_url_chars(&b.nats_url) {
        return Err(RenderError::UnsafeValue {
            what: "agent_nats_url",
            value: b.nats_url.clone(),
        });
    }
    let ca = match &b.ca_pem {
        Some(pem) if pem_lines_only(pem) => pem.trim_end().to_string(),
        Some(_) => return Err(RenderError::BadCa),
        None => String::new(),
    };
    Ok(TEMPLATE
        .replace("__DROVER_PUBLIC_URL__", url)
        .replace("__DROVER_NATS_URL__", &b.nats_url)
        .replace("__DROVER_CONTROL_PLANE_KEY__", &b.key.to_base64())
        // Base64 of 32 bytes: only A-Z a-z 0-9 + / =, inert in quotes.
        .replace(
            "__DROVER_RELEASE_KEY__",
            &b.release_key.map(|k| k.to_base64()).unwrap_or_default(),
        )
        .replace(
            "__DROVER_HAS_CA__",
            if ca.is_empty() { "no" } else { "yes" },
        )
        .replace("__DROVER_PUBLIC_KEY_PEM__", b.key.to_pem().trim_end())
        .replace("__DROVER_BROKER_CA_PEM__", &ca))
}

/// The line an operator runs on a new host for registration token
/// `secret` (a `drvreg_` token: no character the shell would read).
///
/// When the API's certificate is the one `drover init` made (its CA is
/// private, so a new host cannot check it), the line pins the certificate's
/// public key instead (`--insecure --pinnedpubkey sha256//…`: curl skips
/// the CA check and refuses any other key); the script then trusts the CA
/// it carries for everything it fetches. With the operator's own
/// certificate, or plain HTTP, the line is the usual one.
pub fn install_line(cfg: &Config, secret: &str) -> String {
    let made_by_init = cfg.tls_files().http_pem();
    let pin = match cfg.http_tls_files() {
        Ok(Some((cert, _))) if cert == made_by_init => crate::tls::spki_pin(&cert).ok(),
        _ => None,
    };
    let curl = match pin {
        Some(pin) => format!("curl -fsSL --insecure --pinnedpubkey '{pin}'"),
        None => "curl -fsSL".to_string(),
    };
    format!(
        "{curl} {}/install.sh | sudo sh -s -- --token {secret}",
        cfg.public_url()
    )
}

/// The public endpoints' limits: requests one address may make at once
/// (the bucket), and per minute after that.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub per_minute: u32,
}

/// `POST /api/v1/enroll/bootstrap`: a token guesser gets 10 tries, then 20
/// a minute.
pub const BOOTSTRAP_RATE: Rate = Rate {
    burst: 10,
    per_minute: 20,
};
/// `/install.sh` and `/releases/...`: a host needs four requests.
pub const DOWNLOAD_RATE: Rate = Rate {
    burst: 40,
    per_minute: 60,
};

/// Addresses tracked per limit before idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// (limit, address) -> (requests left, when last filled).
type Buckets = HashMap<(&'static str, String), (f64, Instant)>;
static BUCKETS: LazyLock<Mutex<Buckets>> = LazyLock::new(Default::default);

/// Takes one request from `ip`'s bucket for the limit called `kind`; false
/// when it is empty (answer 429). Per process.
pub fn allow(kind: &'static str, rate: Rate, ip: &str) -> bool {
    let now = Instant::now();
    let per_sec = f64::from(rate.per_minute) / 60.0;
    let burst = f64::from(rate.burst);
    let mut buckets = BUCKETS.lock().expect("rate buckets");
    let key = (kind, ip.to_string());
    if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
        buckets.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * per_sec < burst);
        if buckets.len() >= MAX_TRACKED {
            return false;
        }
    }
    let b = buckets.entry(key).or_insert((burst, now));
    b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * per_sec).min(burst);
    b.1 = now;
    if b.0 >= 1.0 {
        b.0 -= 1.0;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baked(url: &str, nats: &str, ca: Option<&str>) -> Baked {
        Baked {
            public_url: url.into(),
            nats_url: nats.into(),
            key: bus_schema::CommandSigner::generate().public(),
            ca_pem: ca.map(str::to_string),
            release_key: None,
        }
    }

    const CA: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\nAbC+/9==\n-----END CERTIFICATE-----\n";

    #[test]
    fn rendered_script_carries_the_values_and_no_marker() {
        let b = baked(
            "https://cp.example:8443/",
            "tls://a:4222,tls://b:4222",
            Some(CA),
        );
        let s = render(&b).unwrap();
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("DROVER_URL='https://cp.example:8443'\n"));
        assert!(s.contains("DROVER_NATS_URL='tls://a:4222,tls://b:4222'\n"));
        assert!(s.contains(&format!(
            "DROVER_CONTROL_PLANE_KEY='{}'\n",
            b.key.to_base64()
        )));
        assert!(s.contains("DROVER_HAS_CA='yes'\n"));
        assert!(s.contains(&b.key.to_pem()));
        assert!(s.contains("\n-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\nAbC+/9==\n-----END CERTIFICATE-----\nDROVER_END_OF_CA\n"));
        // Every marker is filled (the script's own comment names them with
        // dots, which is no marker).
        assert!(
            !s.contains("__DROVER_P")
                && !s.contains("__DROVER_N")
                && !s.contains("__DROVER_C")
                && !s.contains("__DROVER_H")
                && !s.contains("__DROVER_B")
        );
        let plain = render(&baked("http://10.0.0.5:8080", "nats://10.0.0.5:4222", None)).unwrap();
        assert!(plain.contains("DROVER_HAS_CA='no'\n"));
        assert!(plain.contains("DROVER_RELEASE_KEY=''\n") && !plain.contains("__DROVER_R"));
        let mut with_key = baked("http://cp", "nats://cp:4222", None);
        let rk = bus_schema::signing::release::ReleaseSigner::generate().public();
        with_key.release_key = Some(rk);
        let s = render(&with_key).unwrap();
        assert!(s.contains(&format!("DROVER_RELEASE_KEY='{}'\n", rk.to_base64())));
    }

    #[test]
    fn values_that_could_break_out_are_refused() {
        for url in [
            "http://cp'; rm -rf /; '",
            "http://cp/$(id)",
            "http://cp/`id`",
            "http://cp\nrm",
            "http://cp\"x",
            "http://cp x",
            "",
        ] {
            assert!(
                matches!(
                    render(&baked(url, "nats://x:4222", None)),
                    Err(RenderError::UnsafeValue { .. })
                ),
                "{url:?}"
            );
        }
        assert!(matches!(
            render(&baked("ftp://cp", "nats://x", None)),
            Err(RenderError::BadScheme(..))
        ));
        assert!(matches!(
            render(&baked("http://cp", "nats://x'", None)),
            Err(RenderError::UnsafeValue { .. })
        ));
        let sneaky = format!("{CA}DROVER_END_OF_CA\nrm -rf /\n");
        assert_eq!(
            render(&baked("http://cp", "nats://x", Some(&sneaky))).unwrap_err(),
            RenderError::BadCa
        );
        assert_eq!(
            render(&baked("http://cp", "nats://x", Some("not pem"))).unwrap_err(),
            RenderError::BadCa
        );
    }

    /// `sh -n` parses the rendered script; shellcheck (when installed,
    /// scripts/test-deps/install.sh adds it) finds nothing in it.
    #[test]
    fn rendered_script_parses_and_passes_shellcheck() {
        let s = render(&baked(
            "https://cp.example",
            "tls://cp.example:4222",
            Some(CA),
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.sh");
        std::fs::write(&path, &s).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        match std::process::Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(&path)
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "shellcheck:\n{}",
                String::from_utf8_lossy(&out.stdout)
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("shellcheck is not installed (scripts/test-deps/install.sh installs it); skipped")
            }
            Err(e) => panic!("shellcheck: {e}"),
        }
    }

    #[test]
    fn rate_limit_empties_and_is_per_address() {
        let r = Rate {
            burst: 3,
            per_minute: 1,
        };
        let ip = "192.0.2.77";
        assert!((0..3).all(|_| allow("test", r, ip)));
        assert!(!allow("test", r, ip));
        assert!(allow("test", r, "192.0.2.78"));
        assert!(allow("other", r, ip));
    }
}
