//! The `drover` command tree as users see it: the root's examples and exit
//! code table in `--help`, an example in every (sub)command's help, and the
//! shell completion scripts made from the same tree.
//!
//! Owns the help texts added after clap's derive (the arguments themselves
//! are declared in `main.rs` and the subcommand files) and how the client
//! commands find their control plane and token (`api_client`).

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;
use control_plane::{client, config::Config};

/// A shell `drover completions` writes a script for (bash, zsh, fish;
/// elvish and powershell work too).
pub use clap_complete::Shell;

/// Examples shown under `drover --help`.
const ROOT_EXAMPLES: &str = "Examples:\n  \
    drover dev                                   # the whole stack on this machine\n  \
    drover agents --json | jq -r '.agents[].hostname'\n  \
    drover run label:env=prod sys.ping --stream --json\n  \
    drover run all pkg.scan --wait 600 || echo \"exit $?: see the table in --help\"\n  \
    source <(drover completions bash)";

/// The examples under `drover security --help`.
pub const SECURITY: &str = "Examples:\n  drover security\n  \
        drover security --json | jq '.outdated_agents'";

/// The examples under `drover keys --help`.
pub const KEYS: &str = "Examples:\n  drover keys --json\n  \
        drover keys rotate --which command --overlap 24h";

/// The examples under `drover send --help`.
pub const SEND: &str = "Examples:\n  drover send <agent-id> sys.ping\n  \
        drover send <agent-id> sys.info --wait 60 --json | jq .result\n\
        Exit 3 when the command ended failed, rejected or expired.";

/// The examples under `drover run --help`.
pub const RUN: &str = "Examples:\n  drover run all sys.ping\n  \
        drover run label:env=prod,host:web-* pkg.scan --stream\n  \
        drover run os:debian sys.info --json | jq -r '.hosts[] | select(.status == \"succeeded\") | .hostname'\n  \
        drover run all sys.ping --stream --json   # NDJSON: one line per host, then a summary\n  \
        drover run all pkg.scan --wait 0 --json | jq -r .id\n\
        Exit 0 when every host succeeded, 3 when some failed or expired, 6 when --wait ran out.";

/// The examples under `drover jobs --help`.
pub const JOBS: &str = "Examples:\n  drover jobs\n  \
        drover jobs <job-id> --json | jq -r '.hosts[] | select(.status != \"succeeded\") | .hostname'";

/// The examples under `drover schedules --help`.
pub const SCHEDULES: &str = "Examples:\n  drover schedules list --json\n  \
        drover schedules add nightly-scan all \"0 3 * * *\" --timezone Europe/Berlin\n  \
        drover schedules disable nightly-scan";

/// The examples under `drover command --help`.
pub const COMMAND: &str = "Examples:\n  drover command <command-id>\n  \
        drover command <command-id> --wait 30 --json | jq .status";

/// The examples under `drover cancel --help`.
pub const CANCEL: &str = "Example:\n  drover cancel <command-id>";

/// The examples under `drover actions --help`.
pub const ACTIONS: &str = "Examples:\n  drover actions\n  \
        drover actions pkg.install --json | jq .params_schema";

/// The examples under `drover logs --help`.
pub const LOGS: &str = "Examples:\n  drover logs <command-id>\n  \
        drover logs <command-id> --follow\n  \
        drover logs <command-id> --json   # NDJSON: one {seq, stream, line} object per line";

/// The examples under `drover completions --help`.
pub const COMPLETIONS: &str = "Examples:\n  \
        source <(drover completions bash)\n  \
        drover completions zsh > \"${fpath[1]}/_drover\"\n  \
        drover completions fish > ~/.config/fish/completions/drover.fish";

/// The full command tree: the derive's, with the root's examples and exit
/// codes, and an example added to every subcommand that has none.
pub fn command() -> clap::Command {
    let root = crate::Cli::command()
        .after_help(ROOT_EXAMPLES)
        .after_long_help(format!("{ROOT_EXAMPLES}\n\n{}", crate::exit::TABLE));
    with_examples(root, "drover")
}

/// Writes the completion script for `shell` on stdout (a reader that
/// quits early, like `head`, is no error).
pub fn completions(shell: Shell) -> anyhow::Result<()> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), "drover", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Parses the command line: whether JSON output is asked for, and the
/// arguments. A usage error (or `--help`) is printed here and its exit
/// code returned: as `{"error", "code": 2}` on stderr with `--json`.
pub fn parse() -> Result<(bool, crate::Cli), std::process::ExitCode> {
    use clap::FromArgMatches;
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = command()
        .try_get_matches_from(&args)
        .and_then(|m| Ok((json_requested(&m), crate::Cli::from_arg_matches(&m)?)));
    match parsed {
        Ok((json, cli)) => Ok((json || cli.json, cli)),
        Err(e) if crate::exit::wants_json(&args) && e.use_stderr() => {
            let usage = crate::exit::Exit::Usage.code();
            let doc = serde_json::json!({ "error": e.render().to_string().trim(), "code": usage });
            eprintln!("{doc}");
            Err(usage.into())
        }
        Err(e) => e.exit(),
    }
}

/// Whether `--json` was given at any level of the parsed command line.
pub fn json_requested(m: &clap::ArgMatches) -> bool {
    if let Ok(Some(true)) = m.try_get_one::<bool>("json") {
        return true;
    }
    m.subcommand().is_some_and(|(_, sub)| json_requested(sub))
}

/// Whether a command's own help texts show an example already.
fn has_example(cmd: &clap::Command) -> bool {
    [
        cmd.get_after_help(),
        cmd.get_after_long_help(),
        cmd.get_about(),
        cmd.get_long_about(),
    ]
    .into_iter()
    .flatten()
    .any(|s| s.to_string().contains("Example"))
}

/// Adds `Example:` with a generated invocation (the command's path, its
/// required arguments as placeholders) to `cmd` and its subcommands where
/// none is written.
fn with_examples(mut cmd: clap::Command, path: &str) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .filter(|n| n != "help")
        .collect();
    for n in &names {
        let sub_path = format!("{path} {n}");
        cmd = cmd.mut_subcommand(n, |sc| with_examples(sc, &sub_path));
    }
    // A command with a `json` flag of its own keeps the global one from
    // reaching its subcommands; they get one here (read back by
    // `json_requested`).
    if cmd.get_arguments().all(|a| a.get_id() != "json") {
        cmd = cmd.arg(
            clap::Arg::new("json")
                .long("json")
                .action(clap::ArgAction::SetTrue)
                .help("Print one JSON document on stdout instead of text"),
        );
    }
    if !has_example(&cmd) {
        let line = invocation(&cmd, path);
        cmd = cmd.after_help(format!("Example:\n  {line}"));
    }
    cmd
}

/// `path` plus the required positionals (`<NAME>`) and required options
/// (`--opt <VALUE>`); for a command that needs a subcommand, its first
/// subcommand's invocation.
fn invocation(cmd: &clap::Command, path: &str) -> String {
    if cmd.is_subcommand_required_set() {
        if let Some(first) = cmd.get_subcommands().next() {
            return invocation(first, &format!("{path} {}", first.get_name()));
        }
    }
    let mut line = path.to_string();
    for a in cmd.get_arguments().filter(|a| a.is_required_set()) {
        let value = a
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| a.get_id().to_string().to_uppercase());
        match a.get_long() {
            Some(long) => line.push_str(&format!(" --{long} <{value}>")),
            None => line.push_str(&format!(" <{value}>")),
        }
    }
    line
}

/// The API client of the client commands: `--token` / `DROVER_TOKEN`, else
/// the admin token file in the data directory; for an https URL it trusts
/// `--ca` / `DROVER_CA`, else `<data_dir>/tls/ca.pem` when present. With
/// `--json` it waits out a rate limit without saying so on stderr.
pub fn api_client(
    url: &str,
    token: Option<String>,
    ca: Option<PathBuf>,
    cfg: &Config,
) -> anyhow::Result<client::ApiClient> {
    let token = match token {
        Some(t) => t,
        None => std::fs::read_to_string(cfg.admin_token_path())
            .map(|s| s.trim().to_string())
            .with_context(|| {
                format!(
                    "no API token: pass --token, set DROVER_TOKEN, or run where {} exists",
                    cfg.admin_token_path().display()
                )
            })?,
    };
    let ca = ca.or_else(|| {
        let made = cfg.tls_files().ca_pem();
        (url.to_ascii_lowercase().starts_with("https://") && made.is_file()).then_some(made)
    });
    let api = client::ApiClient::with_ca(url, token, ca.as_deref())?;
    Ok(if crate::print::json_mode() {
        api.quiet()
    } else {
        api
    })
}
