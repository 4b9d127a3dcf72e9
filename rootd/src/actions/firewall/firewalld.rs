//! The firewalld path: when `firewall-cmd --state` says `running` (and no
//! netns is configured), rules go through `firewall-cmd` (runtime and
//! `--permanent`), plain accepts with `--add-port`, anything with a source
//! or a drop as a rich rule. firewalld has no rule handles, so
//! `remove_rule` is refused here. Not exercised by the e2e tests (the test
//! machine has no firewalld); its argv is unit-tested.
//!
//! Like `nftables.rs`, it gets checked [`Wanted`] rules and decides nothing
//! about params or backend choice.

use bus_schema::Command;
use serde_json::{json, Value};

use super::rules::{Verdict, Wanted};
use crate::toolkit::{which, Outcome, Runner};

/// Whether firewalld manages this host's firewall.
pub async fn running(runner: &Runner<'_>) -> Result<bool, Outcome> {
    let Some(prog) = which("firewall-cmd") else {
        return Ok(false);
    };
    let prog = prog.to_string_lossy().into_owned();
    let ran = runner.run(&[&prog, "--state"], &[], false).await?;
    Ok(ran.ok() && ran.stdout.iter().any(|l| l.trim() == "running"))
}

/// A rich rule for `w` (firewalld's own language; every value in it is
/// checked).
pub fn rich_rule(w: &Wanted) -> String {
    let mut r = String::from("rule");
    if let Some(src) = w.source {
        let fam = if src.addr.is_ipv4() { "ipv4" } else { "ipv6" };
        r.push_str(&format!(" family=\"{fam}\" source address=\"{src}\""));
    }
    r.push_str(&format!(
        " port port=\"{}\" protocol=\"{}\" {}",
        w.port,
        w.protocol.as_str(),
        w.verdict.as_str()
    ));
    r
}

/// The `firewall-cmd` option that adds `w`.
pub fn add_option(w: &Wanted) -> String {
    if w.source.is_none() && w.verdict == Verdict::Accept {
        format!("--add-port={}/{}", w.port, w.protocol.as_str())
    } else {
        format!("--add-rich-rule={}", rich_rule(w))
    }
}

async fn cmd(runner: &Runner<'_>, args: &[&str], show: bool) -> Result<Vec<String>, Outcome> {
    let mut argv = vec!["firewall-cmd"];
    argv.extend(args);
    let ran = runner.run(&argv, &[], show).await?;
    if !ran.ok() {
        return Err(Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(format!(
                "firewall-cmd {} failed: {}",
                args.join(" "),
                ran.error_tail()
            ))
        });
    }
    Ok(ran.stdout)
}

async fn listing(runner: &Runner<'_>) -> Result<Value, Outcome> {
    let ports = cmd(runner, &["--list-ports"], false).await?;
    let rich = cmd(runner, &["--list-rich-rules"], false).await?;
    Ok(json!({
        "backend": "firewalld",
        "ports": ports.join(" ").split_whitespace().collect::<Vec<_>>(),
        "rich_rules": rich.iter().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>(),
    }))
}

pub async fn run(
    command: &Command,
    wanted: &[(Wanted, Option<String>)],
    runner: &Runner<'_>,
) -> Outcome {
    let r = async {
        match command.action.as_str() {
            "firewall.list" => {
                let data = listing(runner).await?;
                Ok(Outcome::succeeded("firewalld rules", data))
            }
            "firewall.remove_rule" => Err(Outcome::rejected(
                "firewalld manages this host's firewall and has no rule handles; \
                 remove_rule works with nftables only (use firewall-cmd --remove-port / \
                 --remove-rich-rule); nothing was changed",
            )),
            _ => {
                // firewalld itself ignores a port or rich rule that is
                // already there (ALREADY_ENABLED), so this is idempotent.
                for (w, _) in wanted {
                    let opt = add_option(w);
                    cmd(runner, &[&opt], true).await?;
                    cmd(runner, &["--permanent", &opt], true).await?;
                }
                let data = listing(runner).await?;
                Ok(Outcome::succeeded(
                    format!("firewalld: {} rule(s) in place", wanted.len()),
                    data,
                ))
            }
        }
    };
    r.await.unwrap_or_else(|o: Outcome| o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::firewall::rules::Source;
    use bus_schema::catalogue::firewall::Protocol;

    fn w(verdict: Verdict, protocol: Protocol, port: u16, src: Option<&str>) -> Wanted {
        Wanted {
            verdict,
            protocol,
            port,
            source: src.map(|s| Source::parse(s).unwrap()),
        }
    }

    #[test]
    fn firewalld_options() {
        assert_eq!(
            add_option(&w(Verdict::Accept, Protocol::Tcp, 8080, None)),
            "--add-port=8080/tcp"
        );
        assert_eq!(
            add_option(&w(Verdict::Accept, Protocol::Tcp, 8080, Some("10.0.0.0/8"))),
            "--add-rich-rule=rule family=\"ipv4\" source address=\"10.0.0.0/8\" port port=\"8080\" protocol=\"tcp\" accept"
        );
        assert_eq!(
            add_option(&w(Verdict::Drop, Protocol::Udp, 53, None)),
            "--add-rich-rule=rule port port=\"53\" protocol=\"udp\" drop"
        );
    }
}
