//! TLS on the routes between the nodes of a broker cluster: the `tls {}`
//! block of a node's `cluster {}` (`drover broker-config --tls`), and the
//! check that the installation's broker certificate can be a node's route
//! identity. nats-server always verifies both ends of a route, so the
//! certificate each node presents when it dials must allow client
//! authentication as well as server authentication. Owns only these two;
//! making certificates is `mod.rs`'s, the rest of the node's configuration
//! `broker_cluster.rs`'s.

use std::path::Path;

use super::{allows, load_certs, TlsError, TlsFiles, NATS_USAGES};

/// Checks that the broker certificate in `files` can be a node's identity
/// on cluster routes, for `drover broker-config --tls`. Errors (each says
/// what to do): the certificate, its key or the CA's certificate missing;
/// the certificate unreadable; or it lacks server or client authentication
/// (a broker certificate of an `init` before 2026-12-02 has the first only).
pub fn check_route_cert(files: &TlsFiles) -> Result<(), TlsError> {
    let (pem, ca) = (files.nats_pem(), files.ca_pem());
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
                what: "is missing: run `drover init` (without --no-tls; with init's ca.key it \
                       issues the broker's certificate and key again), or put the ones your CA \
                       issued there"
                    .into(),
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
    if allows(&pem, NATS_USAGES) {
        return Ok(());
    }
    Err(TlsError::Pem {
        path: pem,
        what: "does not allow both server and client authentication, and cluster routes check \
               both ends: run `drover init` again (with init's ca.key it issues the broker \
               certificate anew, hosts notice nothing), or put a certificate from your CA with \
               both serverAuth and clientAuth there"
            .into(),
    })
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
        check_route_cert(&files).unwrap();
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
        let e = check_route_cert(&files).unwrap_err().to_string();
        assert!(e.contains("clientAuth") && e.contains("drover init"), "{e}");
        // Not a certificate: said so, not blamed on its usages.
        std::fs::write(files.nats_pem(), "not a certificate").unwrap();
        let e = check_route_cert(&files).unwrap_err().to_string();
        assert!(!e.contains("clientAuth"), "{e}");
        // The CA's certificate missing: routes could check nothing. With
        // no ca.key (an operator's own CA): put it there, or run init.
        std::fs::remove_file(files.ca_pem()).unwrap();
        let e = check_route_cert(&files).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("drover init"), "{e}");
        // With init's ca.key left behind, init cannot remake it (it
        // refuses to overwrite the key): restore it, init is no way out.
        std::fs::write(files.ca_key(), "key").unwrap();
        let e = check_route_cert(&files).unwrap_err().to_string();
        assert!(e.contains("restore ca.pem") && e.contains("backup"), "{e}");
    }
}
