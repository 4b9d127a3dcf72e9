//! Signed release artifacts (the agent's `.deb` and `.rpm` packages) in the
//! JetStream object store bucket [`BUCKET`]: publishing a package file
//! (named as the packaging tools name it, signed with the command-signing
//! key over its bytes exactly, see `bus_schema::signing::artifact`), the
//! list with each artifact's metadata, reading one back as a byte stream,
//! and publishing a directory of packages at start.
//!
//! Owns the bucket's contents and the artifact names' rules. It does not
//! serve HTTP or render the install script (`install.rs`, `http/install.rs`)
//! and holds no key: the caller passes the signer.

use std::collections::HashMap;
use std::path::Path;

use async_nats::jetstream::{self, object_store};
use base64::{engine::general_purpose::STANDARD, Engine};
use bus_schema::signing::artifact::{sign_artifact, ArtifactFormat};
use bus_schema::CommandSigner;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tracing::{info, warn};

/// The object store bucket of signed artifacts (named in `bus-schema`).
pub const BUCKET: &str = bus_schema::subjects::RELEASES_BUCKET;

/// The object metadata key that marks an agent binary (self-update, the
/// `agent_releases` module) in this shared bucket: [`list`] skips such
/// objects, which are not packages.
pub const KIND_KEY: &str = "kind";
/// Its value for an agent binary.
pub const KIND_AGENT_RELEASE: &str = "agent-release";

/// Largest package accepted, in bytes.
pub const MAX_ARTIFACT_BYTES: u64 = 512 * 1024 * 1024;

/// One artifact as the bucket keeps it (object metadata) and the API and
/// `/releases/index` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// The file name, e.g. `drover-agent_0.1.0_amd64.deb`.
    pub name: String,
    /// The package's name inside the file name, e.g. `drover-agent`.
    pub package: String,
    /// `deb` or `rpm`.
    pub format: String,
    /// As `uname -m` says: `x86_64`, `aarch64`.
    pub arch: String,
    /// The version in the file name (`0.1.0`; for an rpm `0.1.0-1`).
    pub version: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// Base64 of the 64-byte Ed25519 signature over the file's bytes.
    pub signature: String,
}

impl Artifact {
    /// The raw 64-byte signature (what `/releases/<name>.sig` serves and
    /// `openssl pkeyutl -sigfile` reads).
    pub fn signature_bytes(&self) -> Vec<u8> {
        STANDARD.decode(&self.signature).unwrap_or_default()
    }

    fn to_metadata(&self) -> HashMap<String, String> {
        [
            ("package", &self.package),
            ("format", &self.format),
            ("arch", &self.arch),
            ("version", &self.version),
            ("size", &self.size.to_string()),
            ("sha256", &self.sha256),
            ("signature", &self.signature),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn from_info(info: &object_store::ObjectInfo) -> Option<Self> {
        let m = &info.metadata;
        let get = |k: &str| m.get(k).cloned();
        Some(Self {
            name: info.name.clone(),
            package: get("package")?,
            format: get("format")?,
            arch: get("arch")?,
            version: get("version")?,
            size: get("size")?.parse().ok()?,
            sha256: get("sha256")?,
            signature: get("signature")?,
        })
    }
}

/// Why an artifact was not published or found.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0:?} is not a release name: expected <package>_<version>_<amd64|arm64>.deb or <package>-<version>-<release>.<x86_64|aarch64>.rpm, characters [A-Za-z0-9._+~-]")]
    BadName(String),
    #[error("{name}: {why}")]
    BadFile { name: String, why: String },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no release artifact {0}")]
    NotFound(String),
    #[error("the release bucket: {0}")]
    Store(String),
}

fn store_err(e: impl std::fmt::Display) -> ReleaseError {
    ReleaseError::Store(e.to_string())
}

/// What a valid name says: (package, version, arch as `uname -m`, format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName {
    pub package: String,
    pub version: String,
    pub arch: String,
    pub format: ArtifactFormat,
}

fn safe_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
}

/// Checks a release name (also what `/releases/<name>` accepts): 1..=128
/// characters of `[A-Za-z0-9._+~-]`, not starting with `.` or `-`, no
/// `..`, and named as `dpkg-deb`/`cargo-deb` (`pkg_ver_debarch.deb`) or
/// `rpmbuild` (`pkg-ver-rel.arch.rpm`) name packages, for x86_64 or aarch64,
/// with a version that starts with a digit.
pub fn parse_name(name: &str) -> Result<ParsedName, ReleaseError> {
    let bad = || ReleaseError::BadName(name.chars().take(140).collect());
    if name.len() > 128 || !safe_chars(name) || name.starts_with(['.', '-']) || name.contains("..")
    {
        return Err(bad());
    }
    if let Some(stem) = name.strip_suffix(".deb") {
        let mut parts = stem.split('_');
        let (Some(package), Some(version), Some(debarch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let arch = match debarch {
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            _ => return Err(bad()),
        };
        if package.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad());
        }
        return Ok(ParsedName {
            package: package.into(),
            version: version.into(),
            arch: arch.into(),
            format: ArtifactFormat::Deb,
        });
    }
    if let Some(stem) = name.strip_suffix(".rpm") {
        let (rest, arch) = stem.rsplit_once('.').ok_or_else(bad)?;
        if !["x86_64", "aarch64"].contains(&arch) {
            return Err(bad());
        }
        let mut parts = rest.rsplitn(3, '-');
        let (Some(release), Some(version), Some(package)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if package.is_empty()
            || !version.starts_with(|c: char| c.is_ascii_digit())
            || release.is_empty()
        {
            return Err(bad());
        }
        return Ok(ParsedName {
            package: package.into(),
            version: format!("{version}-{release}"),
            arch: arch.into(),
            format: ArtifactFormat::Rpm,
        });
    }
    Err(bad())
}

/// The bucket, created (one replica) when missing.
pub async fn bucket(js: &jetstream::Context) -> Result<object_store::ObjectStore, ReleaseError> {
    bucket_replicated(js, 1).await
}

/// The bucket, created with `replicas` copies when missing
/// ([`crate::config::Config::stream_replicas`]; `drover serve` declares it
/// at start, so later [`bucket`] calls find it).
pub async fn bucket_replicated(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<object_store::ObjectStore, ReleaseError> {
    match js.get_object_store(BUCKET).await {
        Ok(s) => Ok(s),
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: BUCKET.into(),
                description: Some("Drover: signed agent packages for install.sh".into()),
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(store_err),
    }
}

/// Publishes one package file: checks its name and contents, signs its
/// bytes, and stores it with its metadata. An artifact of the same name and
/// SHA-256 already in the bucket is left alone. Returns the artifact and
/// whether it was stored now.
pub async fn publish_file(
    js: &jetstream::Context,
    signer: &CommandSigner,
    path: &Path,
) -> Result<(Artifact, bool), ReleaseError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ReleaseError::BadName(path.display().to_string()))?
        .to_string();
    let parsed = parse_name(&name)?;
    let io = |source| ReleaseError::Io {
        path: path.display().to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_ARTIFACT_BYTES {
        return Err(ReleaseError::BadFile {
            name,
            why: format!("{size} bytes, more than the {MAX_ARTIFACT_BYTES} allowed"),
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(io)?;
    publish_bytes(js, signer, &name, &parsed, bytes).await
}

async fn publish_bytes(
    js: &jetstream::Context,
    signer: &CommandSigner,
    name: &str,
    parsed: &ParsedName,
    bytes: Vec<u8>,
) -> Result<(Artifact, bool), ReleaseError> {
    let (sig, format) = sign_artifact(signer, &bytes).map_err(|e| ReleaseError::BadFile {
        name: name.into(),
        why: e.to_string(),
    })?;
    if format != parsed.format {
        return Err(ReleaseError::BadFile {
            name: name.into(),
            why: format!(
                "the file is a .{} package but is named .{}",
                format.as_str(),
                parsed.format.as_str()
            ),
        });
    }
    let artifact = Artifact {
        name: name.into(),
        package: parsed.package.clone(),
        format: format.as_str().into(),
        arch: parsed.arch.clone(),
        version: parsed.version.clone(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        signature: STANDARD.encode(sig),
    };
    let store = bucket(js).await?;
    if let Ok(info) = store.info(name).await {
        if Artifact::from_info(&info).is_some_and(|a| a.sha256 == artifact.sha256) {
            return Ok((artifact, false));
        }
    }
    let meta = object_store::ObjectMetadata {
        name: name.into(),
        description: Some(format!(
            "{} {} ({}, {})",
            artifact.package, artifact.version, artifact.format, artifact.arch
        )),
        metadata: artifact.to_metadata(),
        ..Default::default()
    };
    store
        .put(meta, &mut bytes.as_slice())
        .await
        .map_err(store_err)?;
    Ok((artifact, true))
}

/// Every package in the bucket, sorted by name (objects without Drover's
/// package metadata, and the agent binaries of self-update, are left out).
pub async fn list(js: &jetstream::Context) -> Result<Vec<Artifact>, ReleaseError> {
    let store = bucket(js).await?;
    let mut objects = store.list().await.map_err(store_err)?;
    let mut out = vec![];
    // Bounded: the bucket holds a handful of packages per release.
    while let Some(info) = objects.next().await {
        let info = info.map_err(store_err)?;
        // Agent binaries for self-update share the bucket; not packages.
        let agent_binary = info.metadata.get(KIND_KEY) == Some(&KIND_AGENT_RELEASE.to_string());
        if info.deleted || agent_binary {
            continue;
        }
        if let Some(a) = Artifact::from_info(&info) {
            out.push(a);
        }
        if out.len() >= 10_000 {
            break;
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One artifact's metadata.
pub async fn info(js: &jetstream::Context, name: &str) -> Result<Artifact, ReleaseError> {
    parse_name(name)?;
    let store = bucket(js).await?;
    let info = store
        .info(name)
        .await
        .map_err(|_| ReleaseError::NotFound(name.into()))?;
    if info.deleted {
        return Err(ReleaseError::NotFound(name.into()));
    }
    Artifact::from_info(&info).ok_or_else(|| ReleaseError::NotFound(name.into()))
}

/// The artifact's bytes as a stream of chunks (64 KiB), read from the
/// bucket as they are sent.
pub async fn open(
    js: &jetstream::Context,
    name: &str,
) -> Result<impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send, ReleaseError> {
    parse_name(name)?;
    let store = bucket(js).await?;
    let object = store
        .get(name)
        .await
        .map_err(|_| ReleaseError::NotFound(name.into()))?;
    Ok(futures::stream::unfold(Some(object), |obj| async move {
        let mut obj = obj?;
        let mut buf = vec![0u8; 64 * 1024];
        match obj.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(obj)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}

/// `/releases/index`: one line per artifact, `name format arch version
/// sha256`, for `install.sh` to read without a JSON parser.
pub fn index_text(artifacts: &[Artifact]) -> String {
    artifacts
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {} {}\n",
                a.name, a.format, a.arch, a.version, a.sha256
            )
        })
        .collect()
}

/// Publishes every `*.deb` and `*.rpm` in `dir` not yet in the bucket (what
/// `drover serve` does at start with `releases_dir`). A missing directory
/// is nothing to do; a bad file is logged and skipped. Returns how many
/// were stored now.
pub async fn publish_dir(js: &jetstream::Context, signer: &CommandSigner, dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut stored = 0;
    for e in entries.flatten().take(1000) {
        let p = e.path();
        let is_pkg = p.extension().is_some_and(|x| x == "deb" || x == "rpm");
        if !is_pkg || !p.is_file() {
            continue;
        }
        match publish_file(js, signer, &p).await {
            Ok((a, true)) => {
                stored += 1;
                info!(name = %a.name, sha256 = %a.sha256, "published a release artifact");
            }
            Ok((_, false)) => {}
            Err(e) => warn!(path = %p.display(), error = %e, "release artifact not published"),
        }
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names() {
        let p = parse_name("drover-agent_0.1.0_amd64.deb").unwrap();
        assert_eq!(
            (p.package.as_str(), p.version.as_str(), p.arch.as_str()),
            ("drover-agent", "0.1.0", "x86_64")
        );
        assert_eq!(p.format, ArtifactFormat::Deb);
        let p = parse_name("drover-agent_0.2.0~rc1+git5_arm64.deb").unwrap();
        assert_eq!(
            (p.version.as_str(), p.arch.as_str()),
            ("0.2.0~rc1+git5", "aarch64")
        );
        let p = parse_name("drover-agent-0.1.0-1.x86_64.rpm").unwrap();
        assert_eq!(
            (p.package.as_str(), p.version.as_str(), p.arch.as_str()),
            ("drover-agent", "0.1.0-1", "x86_64")
        );
        assert_eq!(p.format, ArtifactFormat::Rpm);
        for bad in [
            "",
            "../etc/passwd",
            "..deb",
            ".hidden_1_amd64.deb",
            "-rf_1_amd64.deb",
            "a/b_1_amd64.deb",
            "drover-agent_0.1.0_amd64.deb.sig",
            "drover-agent_0.1.0_i386.deb",
            "drover-agent_0.1.0.deb",
            "drover agent_0.1.0_amd64.deb",
            "drover-agent_0.1.0_amd64.tar.gz",
            "drover-agent-0.1.0.x86_64.rpm",
            "drover-agent-0.1.0-1.ppc64le.rpm",
            "x_1_amd64.deb\n",
            "x_1_amd64.deb%00",
            "drover-agent_0..1_amd64.deb",
        ] {
            assert!(parse_name(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}_1_amd64.deb", "a".repeat(130));
        assert!(parse_name(&long).is_err());
    }

    #[test]
    fn index_lines() {
        let a = Artifact {
            name: "drover-agent_0.1.0_amd64.deb".into(),
            package: "drover-agent".into(),
            format: "deb".into(),
            arch: "x86_64".into(),
            version: "0.1.0".into(),
            size: 3,
            sha256: "ab".repeat(32),
            signature: STANDARD.encode([0u8; 64]),
        };
        assert_eq!(
            index_text(std::slice::from_ref(&a)),
            format!(
                "drover-agent_0.1.0_amd64.deb deb x86_64 0.1.0 {}\n",
                "ab".repeat(32)
            )
        );
        assert_eq!(a.signature_bytes().len(), 64);
        assert_eq!(Artifact::from_info(&info_of(&a)), Some(a));
    }

    fn info_of(a: &Artifact) -> object_store::ObjectInfo {
        serde_json::from_value(serde_json::json!({
            "name": a.name, "bucket": BUCKET, "nuid": "n", "size": a.size,
            "chunks": 1, "metadata": a.to_metadata(),
        }))
        .unwrap()
    }
}
