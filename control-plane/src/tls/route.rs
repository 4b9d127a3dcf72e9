//! TLS on the routes between the nodes of a broker cluster: the `tls {}`
//! block of a node's `cluster {}` (`drover broker-config --tls`), and the
//! check that the installation's broker certificate can be a node's route
//! identity. nats-server always verifies both ends of a route, so the
//! certificate each node presents when it dials must allow client
//! authentication as well as server authentication. Owns only these two;
//! making certificates is `mod.rs`'s, the rest of the node's configuration
//! `broker_cluster.rs`'s.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::InconsistentKeys;

use super::{allows, load_certs, uncovered_names, TlsError, TlsFiles, NATS_USAGES};

/// Checks that the broker certificate in `files` can be a node's identity
/// on cluster routes, for `drover broker-config --tls`, before nats-server
/// would refuse to start or the other nodes would refuse its routes.
/// Errors (each says what to do): the certificate, its key or the CA's
/// certificate missing or unreadable; the certificate lacks server or
/// client authentication (a broker certificate of an `init` before
/// 2026-12-02 has the first only); the key is not the certificate's; or
/// the certificate does not chain to the CA (another CA's, expired, or a
/// CA's own certificate); or it does not name every one of `route_hosts`
/// (the hosts of the nodes' route addresses: the node that dials checks
/// the name). The advice to reissue is [`reissue_hint`]'s.
pub fn check_route_cert(files: &TlsFiles, route_hosts: &[String]) -> Result<(), TlsError> {
    let (pem, ca) = (files.nats_pem(), files.ca_pem());
    let hint = reissue_hint(files, route_hosts);
    if !ca.exists() {
        // init makes a CA only where there is none: with its key left
        // behind it refuses, and a new CA would be one no host trusts.
        let what = if files.ca_key().exists() {
            "is missing while ca.key is there: restore ca.pem from a backup of the data \
             directory (`drover backup` keeps tls/); `drover init` does not remake it, and a new \
             CA would be one no host or node trusts"
        } else {
            "is missing: run `drover init` (without --no-tls) first, or put your CA's \
             certificate there"
        };
        return Err(TlsError::Pem {
            path: ca,
            what: what.into(),
        });
    }
    for f in [&pem, &files.nats_key()] {
        if !f.exists() {
            return Err(TlsError::Pem {
                path: f.clone(),
                what: format!("is missing: {hint}"),
            });
        }
    }
    let certs = load_certs(&pem)?;
    if let Err(e) = x509_parser::parse_x509_certificate(certs[0].as_ref()) {
        return Err(TlsError::Pem {
            path: pem,
            what: format!("not an X.509 certificate: {e}"),
        });
    }
    if !allows(&pem, NATS_USAGES) {
        return Err(TlsError::Pem {
            path: pem,
            what: format!(
                "does not allow both server and client authentication, and cluster routes \
                 check both ends (a certificate from your CA needs serverAuth and clientAuth): \
                 {hint}"
            ),
        });
    }
    check_key_matches(&files.nats_key(), &pem, certs.clone(), &hint)?;
    check_issued_by_ca(&pem, &ca, &certs, &hint)?;
    let missing = uncovered_names(&pem, route_hosts).unwrap_or_else(|| route_hosts.to_vec());
    if missing.is_empty() {
        return Ok(());
    }
    Err(TlsError::Pem {
        path: pem,
        what: format!(
            "does not name the route host(s) {}, and the node that dials a route checks the \
             name, so routes to them would fail: {hint}",
            missing.join(", ")
        ),
    })
}

/// What to do to get a broker certificate that serves these routes. With
/// init's `ca.key`: move `nats.pem` and `nats.key` away and run `drover
/// init` with a `--tls-name` for every name the certificate has now
/// (beyond init's defaults, so that clients keep reaching the broker by
/// them; init keeps no record of an earlier `--tls-name`) and for every
/// route host; it reissues the API's certificate with the same names. The
/// new files then go to every node again. Without `ca.key` init can issue
/// nothing: the certificate must come from the operator's CA.
fn reissue_hint(files: &TlsFiles, route_hosts: &[String]) -> String {
    if !files.ca_key().exists() {
        return "put there a certificate and key from your CA that name every route host and \
                allow serverAuth and clientAuth (there is no init ca.key here to issue them)"
            .into();
    }
    let defaults = super::default_names();
    let mut names: Vec<String> = Vec::new();
    let current = super::san_names(&files.nats_pem()).unwrap_or_default();
    for n in current.into_iter().chain(route_hosts.iter().cloned()) {
        if !defaults.contains(&n) && !names.contains(&n) {
            names.push(n);
        }
    }
    let mut cmd = "drover init".to_string();
    for n in &names {
        cmd.push_str(" --tls-name ");
        cmd.push_str(n);
    }
    format!(
        "move nats.pem and nats.key out of {} and run `{cmd}` (with init's ca.key it issues \
         them anew for these names and its defaults, the API's certificate too; hosts trust the \
         CA and notice nothing), then copy them to every node again; or put there a \
         certificate and key from this CA that do",
        files.dir.display()
    )
}

/// The private key in `key` is the one of the leaf certificate `certs[0]`
/// (from `pem`), as nats-server needs to start. Errors: `key` unreadable,
/// not a PEM private key, or the key of another certificate. A key of a
/// type ring cannot load (P-521, RSA-PSS; nats-server may take it) is not
/// checked: a warning says so.
fn check_key_matches(
    key: &Path,
    pem: &Path,
    certs: Vec<CertificateDer<'static>>,
    hint: &str,
) -> Result<(), TlsError> {
    let bytes = std::fs::read(key).map_err(|source| TlsError::Io {
        path: key.to_path_buf(),
        source,
    })?;
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: key.to_path_buf(),
        what: format!(
            "not a PEM private key ({e}): put the key of {} there",
            pem.display()
        ),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    match CertifiedKey::from_der(certs, der, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(TlsError::Pem {
            path: key.to_path_buf(),
            what: format!(
                "is not the key of {}: put the certificate and its own key there together, \
                     or {hint}",
                pem.display()
            ),
        }),
        Err(e) => {
            tracing::warn!(key = %key.display(), error = %e, "the broker key is of a kind this check cannot read; not checked against its certificate (nats-server checks it when it starts)");
            Ok(())
        }
    }
}

/// The leaf `certs[0]` (from `pem`, with any intermediates after it) chains
/// to a certificate in `ca`, is valid now and is no CA itself: what the
/// other nodes check of it on a route, as rustls's WebPKI verifier checks
/// it for client authentication (stricter than nats-server's Go verifier
/// on one point: a CA's own certificate as a leaf is refused here).
/// A certificate in `ca` that does not parse is refused: nats-server would
/// skip it, but hosts and the CLI (rustls) refuse the whole file.
/// Not refused, with a warning: a signature algorithm WebPKI does not
/// support (P-521), and the leaf's `anyExtendedKeyUsage`, which WebPKI
/// reads more narrowly than Go.
/// Errors say which file to fix.
// rustls 0.23 still reports some unsupported algorithms with the deprecated
// unit variant (webpki/mod.rs), so it is matched too.
#[allow(deprecated)]
fn check_issued_by_ca(
    pem: &Path,
    ca: &Path,
    certs: &[CertificateDer<'static>],
    hint: &str,
) -> Result<(), TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for (i, c) in load_certs(ca)?.into_iter().enumerate() {
        roots.add(c).map_err(|e| TlsError::Pem {
            path: ca.to_path_buf(),
            what: format!(
                "its certificate number {} does not parse ({e}); hosts and the CLI refuse the \
                 whole file then (nats-server would skip it): keep only the certificates of \
                 the CA that issued {} there",
                i + 1,
                pem.display()
            ),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Pem {
            path: ca.to_path_buf(),
            what: format!("cannot check certificates against it: {e}"),
        })?;
    let Err(e) = verifier.verify_client_cert(&certs[0], &certs[1..], UnixTime::now()) else {
        return Ok(());
    };
    use rustls::CertificateError as C;
    let unreadable = matches!(
        &e,
        rustls::Error::InvalidCertificate(
            C::UnsupportedSignatureAlgorithm
                | C::UnsupportedSignatureAlgorithmContext { .. }
                | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. }
        )
    );
    // WebPKI wants clientAuth itself where Go takes the leaf's "any"
    // purpose; an intermediate without clientAuth Go refuses too.
    let any_purpose = matches!(
        &e,
        rustls::Error::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. })
    ) && leaf_allows_any_purpose(&certs[0]);
    if unreadable || any_purpose {
        tracing::warn!(cert = %pem.display(), error = %e, "the broker certificate's chain was not checked against the CA (a signature algorithm or purpose this check does not read); the other nodes check it on every route");
        return Ok(());
    }
    Err(TlsError::Pem {
        path: pem.to_path_buf(),
        what: format!(
            "does not check out against {} ({e}), so the other nodes would refuse its routes \
             (it must be a certificate, not a CA's, that this CA issued, valid now, followed by \
             any intermediate certificates): {hint}",
            ca.display()
        ),
    })
}

/// Whether the certificate's extended key usages include
/// `anyExtendedKeyUsage`.
fn leaf_allows_any_purpose(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .ok()
        .and_then(|(_, c)| c.extended_key_usage().ok().flatten().map(|e| e.value.any))
        .unwrap_or(false)
}

/// The `tls {}` block of a cluster node's `cluster {}`: routes in both
/// directions speak TLS with the broker certificate and check the other
/// node's against the installation's CA (the certificate must name every
/// node's route host). Paths absolute; indented for its place inside
/// `cluster {}`.
pub fn route_tls_block(files: &TlsFiles) -> String {
    let abs = |p: &Path| {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        serde_json::json!(p.display().to_string())
    };
    format!(
        "  tls {{\n    cert_file: {}\n    key_file: {}\n    ca_file: {}\n    timeout: 2\n  }}\n",
        abs(&files.nats_pem()),
        abs(&files.nats_key()),
        abs(&files.ca_pem()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::{ensure_certs, HTTP_USAGES};
    use super::*;

    #[test]
    fn the_broker_certificate_serves_routes_and_the_apis_only_clients() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        let names = vec!["localhost".to_string()];
        ensure_certs(&files, &names).unwrap();
        assert!(allows(&files.nats_pem(), NATS_USAGES));
        assert!(allows(&files.http_pem(), HTTP_USAGES));
        assert!(!allows(&files.http_pem(), NATS_USAGES));
        check_route_cert(&files, &names).unwrap();
        let block = route_tls_block(&files);
        assert!(
            block.contains("ca_file:") && block.contains("nats.pem"),
            "{block}"
        );
        // An operator's own broker certificate for clients only (no
        // ca.key: never replaced) is refused for routes, saying what to do.
        std::fs::copy(files.http_pem(), files.nats_pem()).unwrap();
        std::fs::copy(files.http_key(), files.nats_key()).unwrap();
        std::fs::remove_file(files.ca_key()).unwrap();
        assert!(ensure_certs(&files, &names).unwrap().written.is_empty());
        let e = check_route_cert(&files, &names).unwrap_err().to_string();
        assert!(
            e.contains("clientAuth") && e.contains("no init ca.key"),
            "{e}"
        );
        // Not a certificate: said so, not blamed on its usages.
        std::fs::write(files.nats_pem(), "not a certificate").unwrap();
        let e = check_route_cert(&files, &names).unwrap_err().to_string();
        assert!(!e.contains("clientAuth"), "{e}");
        // The CA's certificate missing: routes could check nothing. With
        // no ca.key (an operator's own CA): put it there, or run init.
        std::fs::remove_file(files.ca_pem()).unwrap();
        let e = check_route_cert(&files, &names).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("drover init"), "{e}");
        // With init's ca.key left behind, init cannot remake it (it
        // refuses to overwrite the key): restore it, init is no way out.
        std::fs::write(files.ca_key(), "key").unwrap();
        let e = check_route_cert(&files, &names).unwrap_err().to_string();
        assert!(e.contains("restore ca.pem") && e.contains("backup"), "{e}");
    }

    /// What nats-server or the other nodes would refuse later is refused by
    /// `broker-config --tls` now, naming the file to fix: a key that is not
    /// the certificate's, a CA file that is none, a certificate another CA
    /// issued, and the CA's own certificate put there as the broker's.
    #[test]
    fn a_wrong_key_a_bad_ca_file_or_a_foreign_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        let names = vec!["localhost".to_string()];
        ensure_certs(&files, &names).unwrap();
        let (pem, key, ca) = (files.nats_pem(), files.nats_key(), files.ca_pem());
        let keep = |p: &Path| std::fs::read(p).unwrap();
        let (good_pem, good_key, good_ca) = (keep(&pem), keep(&key), keep(&ca));
        let restore = || {
            std::fs::write(&pem, &good_pem).unwrap();
            std::fs::write(&key, &good_key).unwrap();
            std::fs::write(&ca, &good_ca).unwrap();
            check_route_cert(&files, &names).unwrap();
        };
        let refused = |needle: &str, file: &str| {
            let e = check_route_cert(&files, &names).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(file), "{e}");
        };
        // Another certificate's key (the API's).
        std::fs::copy(files.http_key(), &key).unwrap();
        refused("is not the key of", "nats.key");
        restore();
        // Not a key at all.
        std::fs::write(&key, "not a key").unwrap();
        refused("not a PEM private key", "nats.key");
        restore();
        // A CA file that holds no certificate.
        std::fs::write(&ca, "not a certificate").unwrap();
        refused("holds no certificate", "ca.pem");
        restore();
        // A certificate and key that another installation's CA issued.
        let other = tempfile::tempdir().unwrap();
        let theirs = TlsFiles::new(other.path());
        ensure_certs(&theirs, &names).unwrap();
        std::fs::copy(theirs.nats_pem(), &pem).unwrap();
        std::fs::copy(theirs.nats_key(), &key).unwrap();
        refused("does not check out against", "nats.pem");
        // What the message says to do: moved away, init issues them anew.
        std::fs::remove_file(&pem).unwrap();
        std::fs::remove_file(&key).unwrap();
        ensure_certs(&files, &names).unwrap();
        check_route_cert(&files, &names).unwrap();
        // The CA's own certificate and key as the broker's.
        std::fs::copy(&ca, &pem).unwrap();
        std::fs::copy(files.ca_key(), &key).unwrap();
        refused("does not check out against", "nats.pem");
        restore();
    }

    /// The node that dials a route checks the other's name: a certificate
    /// that does not name every route host is refused, the advice carries
    /// a --tls-name per route host, and following it (init with its
    /// ca.key reissues) gives a certificate that passes.
    #[test]
    fn a_certificate_that_does_not_name_every_route_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        let names = vec!["localhost".to_string(), "nats1.example".to_string()];
        ensure_certs(&files, &names).unwrap();
        let hosts: Vec<String> = ["nats1.example", "nats2.example", "10.9.9.9"]
            .map(String::from)
            .to_vec();
        let e = check_route_cert(&files, &hosts).unwrap_err().to_string();
        assert!(
            e.contains("nats2.example, 10.9.9.9")
                && !e.contains("host(s) nats1")
                && e.contains(
                    "drover init --tls-name nats1.example --tls-name nats2.example \
                     --tls-name 10.9.9.9"
                ),
            "{e}"
        );
        let mut all = names.clone();
        all.extend(hosts.iter().cloned());
        assert!(!ensure_certs(&files, &all).unwrap().written.is_empty());
        check_route_cert(&files, &hosts).unwrap();
    }

    #[test]
    fn a_wildcard_names_one_label_only() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        ensure_certs(&files, &["*.example.com".to_string()]).unwrap();
        let missing = |n: &[&str]| {
            let n: Vec<String> = n.iter().map(|s| s.to_string()).collect();
            uncovered_names(&files.nats_pem(), &n).unwrap()
        };
        assert!(missing(&["nats1.example.com", "NATS2.Example.COM"]).is_empty());
        assert_eq!(
            missing(&["a.b.example.com", "example.com", ".example.com"]),
            ["a.b.example.com", "example.com", ".example.com"]
        );
    }

    /// A certificate block in ca.pem that does not parse: nats-server would
    /// skip it, hosts and the CLI refuse the whole file.
    #[test]
    fn a_ca_file_with_a_broken_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        let names = vec!["localhost".to_string()];
        ensure_certs(&files, &names).unwrap();
        let mut ca = std::fs::read_to_string(files.ca_pem()).unwrap();
        ca.push_str("-----BEGIN CERTIFICATE-----\nZm9vYmFy\n-----END CERTIFICATE-----\n");
        std::fs::write(files.ca_pem(), ca).unwrap();
        let e = check_route_cert(&files, &names).unwrap_err().to_string();
        assert!(
            e.contains("certificate number 2") && e.contains("ca.pem"),
            "{e}"
        );
    }

    /// As Go compares addresses: an IPv4 address and its IPv4-mapped IPv6
    /// form are the same name.
    #[test]
    fn an_ipv4_route_host_matches_its_mapped_form() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::new(dir.path());
        ensure_certs(&files, &["10.0.0.2".to_string()]).unwrap();
        let hosts = ["::ffff:10.0.0.2", "10.0.0.2", "10.0.0.3"].map(String::from);
        assert_eq!(
            uncovered_names(&files.nats_pem(), &hosts).unwrap(),
            ["10.0.0.3"]
        );
    }
}
