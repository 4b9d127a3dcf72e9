//! The `drover` command tree as users see it: the root's examples and exit
//! code table in `--help`, an example in every (sub)command's help, and the
//! shell completion scripts made from the same tree.
//!
//! Owns the help texts added after clap's derive; the arguments themselves
//! are declared in `main.rs` and the subcommand files.

use clap::CommandFactory;

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
