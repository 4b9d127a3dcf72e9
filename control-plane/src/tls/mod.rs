//! TLS material of the control plane: the CA and the broker's and HTTP
//! server's certificates `drover init` makes in `<data_dir>/tls/` (with
//! `rcgen`), the broker's `tls {}` block for clients, and loading PEM files
//! into the rustls configurations `drover serve` listens with. The cluster
//! routes' `tls {}` block and the check that the broker certificate can
//! serve routes are `route.rs`'s.
//!
//! Owns making and reading certificate files and the process-wide rustls
//! crypto provider (ring). It does not decide *when* TLS is on (that is
//! `Config::nats_ca_file` and `Config::http_tls_files` in `config.rs`,
//! which call into this file, never the other way), nor connect to
//! anything (`bus.rs`, `client.rs`).
//!
//! Files, all PEM, keys 0600 (existing files are kept, so `drover init` can
//! run again and an operator's own certificates placed there are used):
//!
//! | file | what |
//! |---|---|
//! | `ca.pem` / `ca.key` | the CA (ECDSA P-256, 10 years); hosts need `ca.pem` |
//! | `nats.pem` / `nats.key` | nats-server's certificate (2 years); also its identity on cluster routes, so it allows client authentication too |
//! | `http.pem` / `http.key` | the API's and web UI's certificate (2 years) |

mod route;

pub use route::{check_route_cert, route_tls_block};

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What can go wrong making or reading TLS files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A `--tls-name` / `tls_names` entry is neither a DNS name nor an IP.
    #[error("TLS name {0:?} is neither a DNS name nor an IP address")]
    BadName(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    /// A leaf certificate is missing and there is no CA key to issue it.
    #[error("{missing} is missing and {ca_key} is not there to issue it: put the certificate and key your CA issued at {missing} and its .key (ca.key is not needed then)")]
    NoCaKey { missing: PathBuf, ca_key: PathBuf },
    /// rcgen refused to make a certificate.
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Days a CA made by `drover init` is valid.
pub const CA_DAYS: i64 = 3650;
/// Days a leaf certificate made by `drover init` is valid (re-issued by
/// `drover init` once its files are removed).
pub const LEAF_DAYS: i64 = 730;

/// The file names in `<data_dir>/tls/`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub dir: PathBuf,
}

impl TlsFiles {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("tls"),
        }
    }
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn nats_pem(&self) -> PathBuf {
        self.dir.join("nats.pem")
    }
    pub fn nats_key(&self) -> PathBuf {
        self.dir.join("nats.key")
    }
    pub fn http_pem(&self) -> PathBuf {
        self.dir.join("http.pem")
    }
    pub fn http_key(&self) -> PathBuf {
        self.dir.join("http.key")
    }
}

/// What [`ensure_certs`] did, for `drover init` to print.
#[derive(Debug, Default, Clone)]
pub struct Made {
    /// Files written now (the others existed and were kept).
    pub written: Vec<PathBuf>,
}

/// The names certificates are made for when none are configured:
/// `localhost`, `127.0.0.1`, `::1` and this machine's host name.
pub fn default_names() -> Vec<String> {
    let mut names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = nix::unistd::gethostname() {
        if let Some(h) = h.to_str().filter(|h| check_name(h).is_ok()) {
            if !names.iter().any(|n| n == h) {
                names.push(h.to_string());
            }
        }
    }
    names
}

/// Accepts an IP address or a DNS name (letters, digits, `-`, dots between
/// labels, an optional leading `*.`); anything else is [`TlsError::BadName`].
pub fn check_name(name: &str) -> Result<(), TlsError> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(TlsError::BadName(name.to_string()))
    }
}

fn write_key(path: &Path, pem: &str) -> Result<(), TlsError> {
    bus_schema::signing::write_secret_file(path, pem.as_bytes()).map_err(io(path))
}

fn write_cert(path: &Path, pem: &str) -> Result<(), TlsError> {
    std::fs::write(path, pem).map_err(io(path))
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back: a host whose clock is a little behind still accepts it.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Drover");
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    dn.push(DnType::CommonName, format!("Drover CA {host}").trim_end());
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p, CA_DAYS);
    Ok(p)
}

fn leaf_params(
    cn: &str,
    names: &[String],
    usages: &[ExtendedKeyUsagePurpose],
) -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Drover");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = usages.to_vec();
    p.use_authority_key_identifier_extension = true;
    validity(&mut p, LEAF_DAYS);
    Ok(p)
}

/// Makes whatever of the CA, the broker's and the HTTP certificate is
/// missing in `files.dir`, for `names` (checked with [`check_name`] first;
/// nothing is written when one is bad). Existing files are kept, with one
/// exception: while init's own `ca.key` is there, a leaf that does not name
/// every one of `names` or lacks a usage it needs (the broker's: client
/// authentication too, for cluster routes) is issued again, key and all.
/// A missing leaf is issued by the existing CA (which then needs `ca.key`);
/// an operator's own leaves (no `ca.key`) are never replaced.
pub fn ensure_certs(files: &TlsFiles, names: &[String]) -> Result<Made, TlsError> {
    for n in names {
        check_name(n)?;
    }
    std::fs::create_dir_all(&files.dir).map_err(io(&files.dir))?;
    let mut made = Made::default();
    // The broker's certificate is also each node's identity on cluster
    // routes, where nats-server always checks both ends: it needs client
    // authentication beside server authentication.
    let leaves = [
        (
            "Drover NATS",
            files.nats_pem(),
            files.nats_key(),
            NATS_USAGES,
        ),
        (
            "Drover API",
            files.http_pem(),
            files.http_key(),
            HTTP_USAGES,
        ),
    ];
    // With init's CA key at hand, a certificate that does not cover every
    // name asked for now, or lacks a usage it needs (a broker certificate
    // of an earlier `drover init`, made for clients only), is issued again
    // (hosts trust the CA, not the leaf, so they notice nothing); an
    // operator's own certificates (no ca.key) are never replaced.
    let can_issue = files.ca_key().exists();
    let missing: Vec<_> = leaves
        .iter()
        .filter(|(_, pem, key, usages)| {
            !(pem.exists() && key.exists())
                || (can_issue && !(covers(pem, names) && allows(pem, usages)))
        })
        .collect();
    if missing.is_empty() {
        return Ok(made);
    }
    let (ca_pem, ca_key) = (files.ca_pem(), files.ca_key());
    let issuer = if ca_pem.exists() {
        if !ca_key.exists() {
            return Err(TlsError::NoCaKey {
                missing: missing[0].1.clone(),
                ca_key,
            });
        }
        let key_pem = std::fs::read_to_string(&ca_key).map_err(io(&ca_key))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let cert_pem = std::fs::read_to_string(&ca_pem).map_err(io(&ca_pem))?;
        Issuer::from_ca_cert_pem(&cert_pem, key)?
    } else {
        let key = KeyPair::generate()?;
        let params = ca_params()?;
        let cert = params.self_signed(&key)?;
        write_key(&ca_key, &key.serialize_pem())?;
        write_cert(&ca_pem, &cert.pem())?;
        made.written.extend([ca_pem.clone(), ca_key.clone()]);
        Issuer::new(params, key)
    };
    for (cn, pem, key_path, usages) in missing {
        let key = KeyPair::generate()?;
        let cert = leaf_params(cn, names, usages)?.signed_by(&key, &issuer)?;
        // A key left without its certificate is replaced with the pair.
        match std::fs::remove_file(key_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(key_path)(e)),
            _ => {}
        }
        write_key(key_path, &key.serialize_pem())?;
        write_cert(pem, &cert.pem())?;
        made.written.extend([pem.clone(), key_path.clone()]);
    }
    Ok(made)
}

/// The broker certificate's extended key usages: server (clients and
/// routes dialling in) and client (this node dialling its routes).
pub(crate) const NATS_USAGES: &[ExtendedKeyUsagePurpose] = &[
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];
/// The API's certificate's extended key usages.
pub(crate) const HTTP_USAGES: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ServerAuth];

/// Whether the leaf certificate in `pem` may be used for every one of
/// `usages` (server and client authentication only are asked here): an
/// extended key usage extension that lists them or `any`, or none at all
/// (then nothing is restricted). An unreadable certificate allows nothing.
pub(crate) fn allows(pem: &Path, usages: &[ExtendedKeyUsagePurpose]) -> bool {
    let Ok(certs) = load_certs(pem) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(certs[0].as_ref()) else {
        return false;
    };
    let eku = match cert.extended_key_usage() {
        Ok(None) => return true,
        Ok(Some(e)) => e.value,
        Err(_) => return false,
    };
    eku.any
        || usages.iter().all(|u| match u {
            ExtendedKeyUsagePurpose::ServerAuth => eku.server_auth,
            ExtendedKeyUsagePurpose::ClientAuth => eku.client_auth,
            _ => false,
        })
}

/// Whether the leaf certificate in `pem` names every one of `names` in its
/// subject alternative names ([`uncovered_names`] finds none missing). An
/// unreadable certificate covers nothing.
fn covers(pem: &Path, names: &[String]) -> bool {
    uncovered_names(pem, names).is_some_and(|missing| missing.is_empty())
}

/// Those of `names` the leaf certificate in `pem` does not name in its
/// subject alternative names, as a TLS client checks a server's name: DNS
/// names case-insensitively, a `*.` wildcard standing for exactly one
/// left-most label (RFC 6125 §6.4.3), IP addresses by value. `None` when
/// the certificate cannot be read (or names nothing).
pub(crate) fn uncovered_names(pem: &Path, names: &[String]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let certs = load_certs(pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let dns_matches = |pattern: &str, name: &str| {
        if pattern.eq_ignore_ascii_case(name) {
            return true;
        }
        let Some(suffix) = pattern.strip_prefix("*.") else {
            return false;
        };
        name.split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
    };
    let named = |n: &String| {
        let ip: Option<IpAddr> = n.parse().ok();
        san.value.general_names.iter().any(|g| match (g, ip) {
            (GeneralName::DNSName(d), None) => dns_matches(d, n),
            // As Go's net.IP.Equal: an IPv4 address and its IPv4-mapped
            // IPv6 form are the same.
            (GeneralName::IPAddress(b), Some(ip)) => {
                san_ip(b).is_some_and(|s| s.to_canonical() == ip.to_canonical())
            }
            _ => false,
        })
    };
    Some(names.iter().filter(|n| !named(n)).cloned().collect())
}

/// An IP address SAN's bytes (4 or 16) as an address.
fn san_ip(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The DNS names and IP addresses the leaf certificate in `pem` names in
/// its subject alternative names, as text, in its order. `None` when it
/// cannot be read.
pub(crate) fn san_names(pem: &Path) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let certs = load_certs(pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    Some(
        san.value
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(d) => Some(d.to_string()),
                GeneralName::IPAddress(b) => san_ip(b).map(|ip| ip.to_string()),
                _ => None,
            })
            .collect(),
    )
}

/// The broker's `tls {}` block for its certificate and key: with it
/// nats-server requires TLS of every client (`allow_non_tls` stays false)
/// and closes a connection that does not start the TLS handshake within
/// `timeout` seconds.
pub fn broker_tls_block(cert: &Path, key: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    format!(
        "# Written by `drover init`: clients must speak TLS; they check this\n\
         # certificate against the CA in the control plane's tls/ca.pem.\n\
         tls {{\n  cert_file: {}\n  key_file: {}\n  timeout: 2\n}}\n\
         allow_non_tls: false\n",
        serde_json::json!(abs(cert).display().to_string()),
        serde_json::json!(abs(key).display().to_string()),
    )
}

/// Installs ring as the process's rustls crypto provider, once; later calls
/// (and a provider installed already) are fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Every certificate in a PEM file (the leaf first, then its chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "holds no certificate".into(),
        });
    }
    Ok(certs)
}

/// curl's pin of the leaf certificate in `cert`: `sha256//<base64 of the
/// SHA-256 of its SubjectPublicKeyInfo>` (the form `curl --pinnedpubkey`
/// takes). Lets a host that does not have the CA yet fetch the install
/// script from a control plane whose certificate `drover init` made.
pub fn spki_pin(cert: &Path) -> Result<String, TlsError> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let certs = load_certs(cert)?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(certs[0].as_ref()).map_err(|e| TlsError::Pem {
            path: cert.to_path_buf(),
            what: format!("not an X.509 certificate: {e}"),
        })?;
    let spki = parsed.tbs_certificate.subject_pki.raw;
    Ok(format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki))
    ))
}

/// The HTTPS server configuration for a certificate (chain) and its key,
/// speaking HTTP/2 and HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let certs = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        path: key.to_path_buf(),
        what: format!("not a PEM private key: {e}"),
    })?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn names_are_checked() {
        for ok in [
            "localhost",
            "127.0.0.1",
            "::1",
            "cp.example.com",
            "*.example.com",
        ] {
            check_name(ok).unwrap();
        }
        for bad in ["", "a b", "-x.example", "x..y", "é.example", "a;rm -rf /"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn init_makes_a_chain_and_keeps_files() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let made = ensure_certs(&files, &names).unwrap();
        assert_eq!(made.written.len(), 6);
        use std::os::unix::fs::PermissionsExt;
        for k in [files.ca_key(), files.nats_key(), files.http_key()] {
            let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", k.display());
        }
        let before = std::fs::read(files.nats_pem()).unwrap();
        // Re-run: nothing rewritten.
        assert!(ensure_certs(&files, &names).unwrap().written.is_empty());
        assert_eq!(std::fs::read(files.nats_pem()).unwrap(), before);
        // A removed leaf is issued again by the same CA.
        std::fs::remove_file(files.http_pem()).unwrap();
        let made = ensure_certs(&files, &names).unwrap();
        assert_eq!(made.written, vec![files.http_pem(), files.http_key()]);
        server_config(&files.http_pem(), &files.http_key()).unwrap();
        // The leaf verifies against the CA.
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(load_certs(&files.ca_pem()).unwrap());
        let verifier = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let leaf = load_certs(&files.http_pem()).unwrap().remove(0);
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
    }

    #[test]
    fn a_new_name_reissues_init_made_leaves_but_not_an_operators_own() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        let first = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        ensure_certs(&files, &first).unwrap();
        assert!(covers(&files.http_pem(), &first));
        let ca_before = std::fs::read(files.ca_pem()).unwrap();
        // A name added later: both leaves again, same CA, covering it.
        let more = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "CP.example.com".to_string(),
            "10.0.0.5".to_string(),
        ];
        assert!(!covers(&files.http_pem(), &more));
        let made = ensure_certs(&files, &more).unwrap();
        assert_eq!(made.written.len(), 4, "{:?}", made.written);
        assert!(covers(&files.http_pem(), &more) && covers(&files.nats_pem(), &more));
        assert!(covers(&files.http_pem(), &["cp.EXAMPLE.com".to_string()]));
        assert_eq!(std::fs::read(files.ca_pem()).unwrap(), ca_before);
        // Names already covered: nothing rewritten.
        assert!(ensure_certs(&files, &first).unwrap().written.is_empty());
        // Without ca.key the certificates are the operator's: kept as they are.
        std::fs::remove_file(files.ca_key()).unwrap();
        let before = std::fs::read(files.http_pem()).unwrap();
        let other = vec!["other.example.com".to_string()];
        assert!(ensure_certs(&files, &other).unwrap().written.is_empty());
        assert_eq!(std::fs::read(files.http_pem()).unwrap(), before);
    }

    #[test]
    fn a_bad_name_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        assert!(ensure_certs(&files, &["ok".into(), "not ok".into()]).is_err());
        assert!(!files.dir.exists());
    }

    #[test]
    fn a_leaf_without_the_ca_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        ensure_certs(&files, &["localhost".into()]).unwrap();
        std::fs::remove_file(files.ca_key()).unwrap();
        std::fs::remove_file(files.nats_pem()).unwrap();
        let e = ensure_certs(&files, &["localhost".into()]).unwrap_err();
        assert!(matches!(e, TlsError::NoCaKey { .. }), "{e}");
    }
}
