//! The broker's trust chain: operator → accounts → users, as NATS JWTs made
//! with `nats-jwt-rs` and signed with nkeys.
//!
//! - The **operator** signs two accounts: `SYS` (the server's system account)
//!   and `DROVER` (everything of ours, JetStream enabled).
//! - `DROVER` has a **scoped signing key** for agents. Users it signs get the
//!   scope's permission template, filled in with the user's name (= the
//!   agent id): their own subjects, their own consumer, their own inbox.
//! - The control plane's user and the enrolment-only user are signed by the
//!   account key itself; the enrolment user may only ask `drover.enroll`.
//! - The enrolment responder has a user of its own, also signed by the
//!   account key: it may listen on `drover.enroll` and publish only under the
//!   enrolment inbox prefix, so a reply subject a requester names can never
//!   make the broker carry the control plane's words anywhere else.
//! - Revoking an agent re-signs `DROVER` with the agent in its revocation
//!   list and pushes it to the full resolver (`$SYS.REQ.CLAIMS.UPDATE`).
//!
//! Seeds live in `<data_dir>/nats-auth/` (0600). `drover init` writes the
//! server's resolver configuration to `<data_dir>/nats-config/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bus_schema::subjects;
use indexmap::IndexSet;
use nats_jwt_rs::account::{Account, JetStreamLimits};
use nats_jwt_rs::operator::Operator;
use nats_jwt_rs::types::{Permission, Permissions, ScopeType, SigningKey, UserScope};
use nats_jwt_rs::user::{User, UserPermissionLimits};
use nkeys::KeyPair;
use serde_json::json;

/// The broker's base configuration for an installation (what `drover init`
/// writes): [`BASE_CONF`] without its `drover dev` comments, named
/// `drover`, listening on `listen` (`host:port`, e.g. `0.0.0.0:4222`).
/// Refuses an address with characters a NATS config could read as syntax.
pub fn installation_base_conf(listen: &str) -> anyhow::Result<String> {
    let ok = !listen.is_empty()
        && listen.len() <= 200
        && listen
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        && listen
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    anyhow::ensure!(
        ok,
        "broker_listen {listen:?} is not host:port (e.g. 0.0.0.0:4222 or [::]:4222)"
    );
    let mut out = String::from(
        "# The broker of this installation, written by `drover init` (run it\n\
         # again after changing broker_listen): operator mode, JetStream.\n",
    );
    for line in BASE_CONF.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            continue;
        }
        if t.starts_with("server_name:") {
            out.push_str("server_name: drover\n");
        } else if t.starts_with("listen:") {
            out.push_str(&format!("listen: \"{listen}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The broker's base configuration (listeners, JetStream, limits), from
/// `nats-config/dev.conf`. `drover init` appends the operator-mode resolver
/// to it and, unless `--no-tls`, an include of the `tls {}` block
/// ([`crate::tls::broker_tls_block`], in `nats-config/tls.conf`); `drover
/// dev` runs it with the resolver and without TLS.
pub const BASE_CONF: &str = include_str!("../../nats-config/dev.conf");

pub struct NatsAuth {
    dir: PathBuf,
    operator: KeyPair,
    sys_account: KeyPair,
    account: KeyPair,
    agent_signer: KeyPair,
}

fn load_or_create(path: &Path, make: fn() -> KeyPair) -> anyhow::Result<KeyPair> {
    match std::fs::read_to_string(path) {
        Ok(seed) => KeyPair::from_seed(seed.trim())
            .with_context(|| format!("{} is not an nkey seed", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = make();
            bus_schema::signing::write_secret_file(path, kp.seed()?.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(kp)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A `.creds` file as nats-server tools and async-nats read it.
pub fn creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

fn allow(list: &[String]) -> Permission {
    Permission {
        allow: list.to_vec(),
        deny: vec![],
    }
}

/// What an agent may do, as a template over its user name (its id).
pub fn agent_permissions(name: &str) -> Permissions {
    // Any command stream, but only the consumer named after this agent: the
    // consumer name carries the identity, so the shard need not be in the
    // template.
    let cmd = "*";
    let consumer = subjects::agent_consumer(name);
    Permissions {
        publish: allow(
            &[
                subjects::heartbeat(name),
                format!("{}.>", subjects::result(name, "*").trim_end_matches(".*")),
                format!("{}.>", subjects::output(name, "*").trim_end_matches(".*")),
                subjects::refusal(name),
                format!("$JS.API.CONSUMER.MSG.NEXT.{cmd}.{consumer}"),
                format!("$JS.API.CONSUMER.INFO.{cmd}.{consumer}"),
                format!("$JS.ACK.{cmd}.{consumer}.>"),
                // Asking for a fresh JWT before this one expires.
                bus_schema::credentials::renew_subject(name),
            ]
            .into_iter()
            .chain(releases_read_only())
            .collect::<Vec<_>>(),
        ),
        subscribe: allow(&[format!("{}.>", subjects::inbox_prefix(name))]),
        resp: None,
    }
}

/// Reading the releases object store (self-update): its stream's info, a
/// message by subject (the object's metadata), and an ordered consumer over
/// its chunks delivered to the agent's own inbox (with the flow-control
/// replies it needs). Nothing here writes: no `$O.` subject and no
/// `STREAM.MSG.DELETE`/`PURGE`; no other bucket's stream is named.
pub fn releases_read_only() -> Vec<String> {
    let stream = format!("OBJ_{}", subjects::RELEASES_BUCKET);
    vec![
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
        format!("$JS.FC.{stream}.>"),
    ]
}

/// What the enrolment responder may do: hear requests, answer on enrolment
/// inboxes — nothing else.
pub fn enroll_responder_permissions() -> Permissions {
    Permissions {
        publish: allow(&[format!("{}.>", subjects::ENROLL_INBOX_PREFIX)]),
        subscribe: allow(&[subjects::ENROLL.to_string()]),
        resp: None,
    }
}

impl NatsAuth {
    /// Loads the keys, creating any that are missing.
    pub fn load_or_init(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("nats-auth");
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            operator: load_or_create(&dir.join("operator.nk"), KeyPair::new_operator)?,
            sys_account: load_or_create(&dir.join("sys-account.nk"), KeyPair::new_account)?,
            account: load_or_create(&dir.join("account.nk"), KeyPair::new_account)?,
            agent_signer: load_or_create(&dir.join("agent-signer.nk"), KeyPair::new_account)?,
            dir,
        })
    }

    /// Loads the keys of an initialised installation and never makes one:
    /// a node's configuration names the installation's operator and
    /// accounts, so new keys would make a broker nothing else trusts.
    /// Errors (naming `drover init`) when any of the four seeds is missing
    /// or is not an nkey seed.
    pub fn load_existing(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("nats-auth");
        let load = |file: &str| -> anyhow::Result<KeyPair> {
            let path = dir.join(file);
            match std::fs::read_to_string(&path) {
                Ok(seed) => KeyPair::from_seed(seed.trim())
                    .with_context(|| format!("{} is not an nkey seed", path.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "{} does not exist: {} is not an initialised data directory; \
                     run `drover init` first (the data directory is `data_dir` in drover.toml or DROVER_DATA_DIR)",
                    path.display(),
                    data_dir.display()
                ),
                Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
            }
        };
        Ok(Self {
            operator: load("operator.nk")?,
            sys_account: load("sys-account.nk")?,
            account: load("account.nk")?,
            agent_signer: load("agent-signer.nk")?,
            dir,
        })
    }

    pub fn account_public_key(&self) -> String {
        self.account.public_key()
    }

    fn operator_jwt(&self) -> anyhow::Result<String> {
        let mut c = Operator::new_claims("drover".into(), self.operator.public_key());
        c.nats.system_account = Some(self.sys_account.public_key());
        c.encode(&self.operator)
    }

    fn sys_account_jwt(&self) -> anyhow::Result<String> {
        Account::new_claims("SYS".into(), self.sys_account.public_key()).encode(&self.operator)
    }

    /// The DROVER account, with the agents' scoped key and `revoked`
    /// (agent id, unix seconds) in its revocation list.
    pub fn account_jwt(&self, revoked: &[(String, i64)]) -> anyhow::Result<String> {
        let mut c = Account::new_claims("DROVER".into(), self.account.public_key());
        if let Some(limits) = c.nats.limits.as_mut() {
            limits.jetstream = Some(JetStreamLimits {
                memory_storage: Some(-1),
                disk_storage: Some(-1),
                streams: Some(-1),
                consumer: Some(-1),
                max_ack_pending: Some(-1),
                mem_max_stream_bytes: Some(0),
                disk_max_stream_bytes: Some(0),
                max_bytes_required: Some(false),
            });
        }
        let mut keys = IndexSet::new();
        keys.insert(SigningKey {
            key: self.agent_signer.public_key(),
            scope: Some(UserScope {
                kind: ScopeType::UserScope,
                key: self.agent_signer.public_key(),
                role: Some("agent".into()),
                template: Some(UserPermissionLimits {
                    permissions: agent_permissions("{{name()}}"),
                    ..Default::default()
                }),
                description: Some("Drover agents: own subjects, own consumer, own inbox".into()),
            }),
        });
        c.nats.signing_keys = Some(keys);
        if !revoked.is_empty() {
            let map: BTreeMap<String, u64> = revoked
                .iter()
                .map(|(k, at)| (k.clone(), (*at).max(0) as u64))
                .collect();
            c.nats.revocations = Some(map);
        }
        c.encode(&self.operator)
    }

    fn user_jwt(
        &self,
        name: &str,
        user: &KeyPair,
        signer: &KeyPair,
        perms: Option<Permissions>,
        scoped: bool,
    ) -> anyhow::Result<String> {
        self.user_jwt_until(name, user, signer, perms, scoped, None)
    }

    /// Like [`Self::user_jwt`], expiring at `exp` (seconds since the epoch)
    /// when given: the broker refuses it after, and closes a connection
    /// made with it then.
    fn user_jwt_until(
        &self,
        name: &str,
        user: &KeyPair,
        signer: &KeyPair,
        perms: Option<Permissions>,
        scoped: bool,
        exp: Option<i64>,
    ) -> anyhow::Result<String> {
        let mut c = User::new_claims(name.into(), user.public_key());
        c.exp = exp;
        if scoped {
            // A scoped key's users carry no permissions of their own.
            c.nats.permissions = UserPermissionLimits {
                permissions: Permissions::default(),
                limits: None,
                bearer_token: None,
                allowed_connection_types: None,
            };
        } else if let Some(p) = perms {
            c.nats.permissions.permissions = p;
        }
        if scoped {
            // Signed by a signing key, not the account itself: say whose.
            c.nats.issuer_account = Some(self.account.public_key());
        }
        c.encode(signer)
    }

    /// The agent's user JWT: name = agent id = its public nkey, signed by the
    /// scoped key, so the template confines it.
    pub fn agent_user_jwt(&self, agent_id: &str) -> anyhow::Result<String> {
        Ok(self.agent_user_jwt_for(agent_id, 0)?.0)
    }

    /// Like [`Self::agent_user_jwt`], living `ttl_secs` seconds (0: no
    /// expiry). Returns the JWT and its expiry in ms since the epoch.
    pub fn agent_user_jwt_for(
        &self,
        agent_id: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<(String, Option<i64>)> {
        let user = KeyPair::from_public_key(agent_id).context("agent id is not a public nkey")?;
        let exp = (ttl_secs > 0).then(|| {
            let now = bus_schema::now_ms() / 1000;
            now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2))
        });
        let jwt = self.user_jwt_until(agent_id, &user, &self.agent_signer, None, true, exp)?;
        Ok((jwt, exp.map(|e| e.saturating_mul(1000))))
    }

    /// Writes a creds file for a user of ours (seed kept in `nats-auth/`).
    fn write_creds(
        &self,
        out: &Path,
        seed_name: &str,
        make_jwt: impl Fn(&KeyPair) -> anyhow::Result<String>,
    ) -> anyhow::Result<()> {
        let kp = load_or_create(&self.dir.join(seed_name), KeyPair::new_user)?;
        let text = creds(&make_jwt(&kp)?, &kp.seed()?);
        let _ = std::fs::remove_file(out);
        bus_schema::signing::write_secret_file(out, text.as_bytes())
            .with_context(|| format!("writing {}", out.display()))
    }

    /// The control plane's own user: unrestricted in DROVER.
    pub fn control_plane_creds(&self, out: &Path) -> anyhow::Result<()> {
        self.write_creds(out, "control-plane-user.nk", |kp| {
            self.user_jwt("control-plane", kp, &self.account, None, false)
        })
    }

    /// The shared enrolment-only user: may ask `drover.enroll`, nothing else.
    pub fn enroll_creds(&self, out: &Path) -> anyhow::Result<()> {
        self.write_creds(out, "enroll-user.nk", |kp| {
            self.user_jwt(
                "enroll",
                kp,
                &self.account,
                Some(Permissions {
                    publish: allow(&[subjects::ENROLL.to_string()]),
                    subscribe: allow(&[format!("{}.>", subjects::ENROLL_INBOX_PREFIX)]),
                    resp: None,
                }),
                false,
            )
        })
    }

    /// The enrolment responder's user: may subscribe to `drover.enroll` and
    /// publish only under the enrolment inbox prefix (`_INBOX_enroll.>`), and
    /// has no response permission (which would let it answer on any reply
    /// subject). The control plane answers enrolment requests as this user,
    /// never as its unrestricted one.
    pub fn enroll_responder_creds(&self, out: &Path) -> anyhow::Result<()> {
        self.write_creds(out, "enroll-responder-user.nk", |kp| {
            self.user_jwt(
                "enroll-responder",
                kp,
                &self.account,
                Some(enroll_responder_permissions()),
                false,
            )
        })
    }

    /// A system-account user, for pushing account updates.
    pub fn system_creds(&self, out: &Path) -> anyhow::Result<()> {
        self.write_creds(out, "sys-user.nk", |kp| {
            self.user_jwt("sys", kp, &self.sys_account, None, false)
        })
    }

    /// The server-side configuration: operator, system account, full
    /// resolver with both accounts preloaded.
    pub fn resolver_conf(&self, resolver_dir: &Path) -> anyhow::Result<String> {
        Ok(format!(
            "# Written by `drover init`: operator mode with a full resolver.\n\
             operator: {}\n\
             system_account: {}\n\
             resolver: {{\n  type: full\n  dir: {}\n  allow_delete: false\n  interval: \"2m\"\n}}\n\
             resolver_preload: {{\n  {}: {}\n  {}: {}\n}}\n",
            self.operator_jwt()?,
            self.sys_account.public_key(),
            json!(resolver_dir.display().to_string()),
            self.sys_account.public_key(),
            self.sys_account_jwt()?,
            self.account.public_key(),
            self.account_jwt(&[])?,
        ))
    }

    /// The cluster routes' password: 64 hex digits derived from the
    /// operator's seed (SHA-256 of a label and the seed), so every node's
    /// configuration made from this installation agrees without another
    /// secret to keep, and it reveals nothing of the seed.
    pub fn route_password(&self) -> anyhow::Result<String> {
        use sha2::Digest;
        let seed = self.operator.seed()?;
        let mut h = sha2::Sha256::new();
        h.update(b"drover cluster route password v1\0");
        h.update(seed.as_bytes());
        Ok(hex::encode(h.finalize()))
    }

    /// A cluster node's whole configuration:
    /// [`crate::broker_cluster::cluster_node_conf`], then
    /// this installation's operator-mode resolver inline (with the node's
    /// own `resolver_dir`: each node keeps its own copy, the full resolvers
    /// sync among themselves). With `tls` (the installation's TLS files,
    /// checked by [`crate::tls::check_route_cert`] first): routes speak TLS
    /// with the broker certificate ([`crate::tls::route_tls_block`]) and
    /// the file includes the `tls.conf` `drover init` wrote for clients
    /// (copy it and the certificates to the same paths on every node; the
    /// certificate must name every node). What `drover broker-config`
    /// prints and the cluster test harness runs.
    pub fn cluster_conf(
        &self,
        node: &crate::broker_cluster::ClusterNode,
        resolver_dir: &Path,
        tls: Option<&crate::tls::TlsFiles>,
    ) -> anyhow::Result<String> {
        let base = installation_base_conf(&node.listen)?;
        let route_tls = tls.map(crate::tls::route_tls_block);
        // The node's names and addresses are checked first (a route
        // without a port is that, not a certificate's fault).
        let mut out = crate::broker_cluster::cluster_node_conf(
            node,
            &base,
            &self.route_password()?,
            route_tls.as_deref(),
        )?;
        if let Some(files) = tls {
            let hosts = crate::broker_cluster::route_hosts(&node.routes);
            crate::tls::check_route_cert(files, &hosts)?;
        }
        out.push_str("\n# Operator mode (drover broker-config):\n");
        out.push_str(&self.resolver_conf(resolver_dir)?);
        if tls.is_some() {
            out.push_str(
                "# TLS for every client (drover init's tls.conf):\ninclude \"tls.conf\"\n",
            );
        }
        Ok(out)
    }

    /// Pushes the DROVER account (with its revocations) to the resolver.
    pub async fn push_account(
        &self,
        sys: &async_nats::Client,
        revoked: &[(String, i64)],
    ) -> anyhow::Result<()> {
        let jwt = self.account_jwt(revoked)?;
        let reply = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            sys.request("$SYS.REQ.CLAIMS.UPDATE", jwt.into_bytes().into()),
        )
        .await
        .context("the broker did not answer the account update")??;
        let v: serde_json::Value =
            bus_schema::codec::decode_json(&reply.payload).unwrap_or_default();
        if let Some(err) = v.get("error") {
            bail!("the broker refused the account update: {err}");
        }
        Ok(())
    }

    pub fn describe(&self) -> serde_json::Value {
        json!({
            "mode": "operator",
            "resolver": "full",
            "operator": self.operator.public_key(),
            "system_account": self.sys_account.public_key(),
            "account": self.account.public_key(),
            "agent_signing_key": self.agent_signer.public_key(),
        })
    }
}
