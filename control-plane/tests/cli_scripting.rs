//! The `drover` CLI as scripts use it, against a real stack (nats-server,
//! control plane, simulated agents): `--json` on every command and one JSON
//! document per answer, the documented exit codes, `drover run --stream`,
//! no terminal control bytes when piped, every help with an example, and
//! shell completions that load.
//!
//! Owns these tests only; the harness is `tests/common`.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, free_port, Stack};
use serde_json::Value;

fn drover_raw(args: &[&str]) -> Output {
    Command::new(bin("drover"))
        .args(args)
        .env_remove("DROVER_API")
        .env_remove("DROVER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The subcommand names listed under `Commands:` in a help text.
fn subcommands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if line.trim().is_empty() || !line.starts_with("  ") {
                break;
            }
            // Continuation lines of a long description are indented deeper.
            let name = line.split_whitespace().next().unwrap_or("");
            if !name.is_empty() && name != "help" && line.as_bytes()[2] != b' ' {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[test]
fn every_command_takes_json_and_shows_an_example() {
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    let mut missing = Vec::new();
    while let Some(path) = todo.pop() {
        seen += 1;
        assert!(seen < 400, "the command tree is larger than expected");
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = drover_raw(&args);
        let help = text(&out.stdout);
        assert!(
            out.status.success(),
            "drover {args:?}: {}",
            text(&out.stderr)
        );
        let name = format!("drover {}", path.join(" "));
        if !help.contains("Example") {
            missing.push(format!("{name}: no example"));
        }
        if !help.contains("--json") {
            missing.push(format!("{name}: no --json"));
        }
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
    }
    assert!(seen > 60, "walked only {seen} commands");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    // The root's long help carries the exit-code table.
    let root = text(&drover_raw(&["--help"]).stdout);
    for line in [
        "Exit codes:",
        "3  a job",
        "4  not found",
        "6  control plane",
    ] {
        assert!(root.contains(line), "{root}");
    }
}

#[test]
fn completions_load_in_bash_and_exist_for_zsh_and_fish() {
    let drover = bin("drover");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{}' completions bash) && complete -p drover",
            drover.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("drover"),
        "{}",
        text(&out.stdout)
    );
    for shell in ["zsh", "fish"] {
        let out = drover_raw(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains("drover") && script.len() > 1000, "{shell}");
    }
    // A shell it does not know is a usage error.
    assert_eq!(
        drover_raw(&["completions", "cmd.exe"]).status.code(),
        Some(2)
    );
}

#[test]
fn usage_errors_exit_2_and_say_so_as_json() {
    let out = drover_raw(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = drover_raw(&["jobs", "--bogus", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&out.stderr).expect("one JSON error");
    assert_eq!(err["code"], 2);
    assert!(err["error"].as_str().unwrap().contains("--bogus"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unreachable_control_plane_exits_6() {
    let api = format!("http://127.0.0.1:{}", free_port());
    let out = drover_raw(&["--api", &api, "--token", "t", "jobs", "--json"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let err: Value = serde_json::from_slice(&out.stderr).expect("one JSON error");
    assert_eq!(err["code"], 6);
    assert!(
        err["error"].as_str().unwrap().contains("cannot reach"),
        "{err}"
    );
}

/// `drover <args>` against the stack, checked to exit with `code`.
fn expect(stack: &Stack, args: &[&str], code: i32) -> Output {
    let out = stack.drover(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "drover {args:?}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Exactly one JSON document on stdout (trailing text would fail).
fn one_doc(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", text(&out.stdout)))
}

fn no_control_bytes(out: &Output) {
    for (name, b) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !b.contains(&b'\r') && !b.contains(&0x1b),
            "{name} has terminal control bytes: {:?}",
            text(b)
        );
    }
}

async fn fleet(stack: &Stack, n: usize) -> common::Proc {
    let token = stack.token(n as i32, "1h", true).await;
    let sim = stack.spawn_simulate(n, &token, 1, &[], "simulate.log");
    stack
        .wait_online_count("the simulated agents online", n, Duration::from_secs(60))
        .await;
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_get_json_and_exit_codes_from_a_live_stack() {
    let stack = Stack::start().await;
    let _sim = fleet(&stack, 2).await;

    // Read commands: exit 0 and exactly one JSON document each.
    let reads: &[&[&str]] = &[
        &["agents"],
        &["jobs"],
        &["actions"],
        &["actions", "sys.ping"],
        &["security"],
        &["keys"],
        &["schedules", "list"],
        &["api-tokens", "list"],
        &["alerts"],
        &["silences", "list"],
        &["windows", "list"],
        &["services"],
        &["notify", "channels", "list"],
        &["releases", "list"],
        &["apps", "list"],
        &["updates", "list"],
        &["rollout", "list"],
    ];
    for args in reads {
        let mut a = args.to_vec();
        a.push("--json");
        let out = expect(&stack, &a, 0);
        one_doc(&out);
    }
    let agents = one_doc(&expect(&stack, &["agents", "--json"], 0));
    assert_eq!(
        agents["agents"].as_array().map(Vec::len),
        Some(2),
        "{agents}"
    );

    // A job on every host: one document with the job and its hosts.
    let out = expect(
        &stack,
        &["run", "all", "sys.ping", "--json", "--wait", "60"],
        0,
    );
    no_control_bytes(&out);
    let job = one_doc(&out);
    assert_eq!(job["done"], true, "{job}");
    assert_eq!(job["counts"]["succeeded"], 2, "{job}");
    let hosts = job["hosts"].as_array().expect("hosts");
    assert!(hosts.iter().all(|h| h["status"] == "succeeded"), "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let cmd = hosts[0]["command_id"].as_str().unwrap().to_string();
    let shown = one_doc(&expect(&stack, &["jobs", &id, "--json"], 0));
    assert_eq!(shown["id"], id.as_str());
    let c = one_doc(&expect(&stack, &["command", &cmd, "--json"], 0));
    assert_eq!(c["status"], "succeeded", "{c}");

    // --stream --json: one JSON object per host as it arrives, then the
    // summary; every line parses on its own.
    let out = expect(&stack, &["run", "all", "sys.ping", "--stream", "--json"], 0);
    no_control_bytes(&out);
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[..2]
        .iter()
        .all(|l| l["type"] == "host" && l["status"] == "succeeded"));
    assert_ne!(lines[0]["agent_id"], lines[1]["agent_id"]);
    assert_eq!(lines[2]["type"], "summary");
    assert_eq!(lines[2]["done"], true);

    // Readable without --json, and still free of terminal control bytes.
    let out = expect(&stack, &["run", "all", "sys.ping", "--stream"], 0);
    no_control_bytes(&out);
    let said = text(&out.stdout);
    assert_eq!(said.matches("succeeded").count(), 3, "{said}");
    let out = expect(&stack, &["run", "all", "sys.ping"], 0);
    no_control_bytes(&out);

    // Submit only: the job as one document.
    let out = expect(
        &stack,
        &["run", "all", "sys.ping", "--wait", "0", "--json"],
        0,
    );
    let submitted = one_doc(&out);
    assert!(submitted["id"].as_str().is_some_and(|s| !s.is_empty()));

    // A job whose hosts fail (simulated agents reject pkg.scan): exit 3,
    // the result printed all the same.
    let out = expect(
        &stack,
        &["run", "all", "pkg.scan", "--json", "--wait", "60"],
        3,
    );
    let failed = one_doc(&out);
    assert_eq!(failed["counts"]["failed"], 2, "{failed}");
    let err: Value = serde_json::from_slice(&out.stderr).expect("one JSON error");
    assert_eq!(err["code"], 3);
    let out = expect(&stack, &["run", "all", "pkg.scan", "--stream", "--json"], 3);
    let last = text(&out.stdout).lines().last().unwrap_or("").to_string();
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["type"], "summary");

    // Not found: exit 4, as JSON on stderr.
    let out = expect(
        &stack,
        &["jobs", "00000000000000000000000000000000", "--json"],
        4,
    );
    let err: Value = serde_json::from_slice(&out.stderr).expect("one JSON error");
    assert_eq!(err["code"], 4);
    assert!(out.stdout.is_empty());
    expect(&stack, &["command", "nope", "--json"], 4);
    expect(&stack, &["actions", "no.such", "--json"], 4);

    // A refused request: a bad token is exit 5, and changes nothing.
    let (_, before) = stack.get("/jobs").await;
    let out = expect(
        &stack,
        &["--token", "not-a-token", "run", "all", "sys.ping", "--json"],
        5,
    );
    let err: Value = serde_json::from_slice(&out.stderr).expect("one JSON error");
    assert_eq!(err["code"], 5);
    let (_, after) = stack.get("/jobs").await;
    assert_eq!(
        before["jobs"].as_array().map(Vec::len),
        after["jobs"].as_array().map(Vec::len)
    );

    // Invalid input the control plane refuses: a usage error (exit 2).
    expect(&stack, &["run", "all", "no.such.action", "--json"], 2);
}

/// A CLI command the API's per-token rate limit refuses (429) waits the
/// `Retry-After` and sends its request again, instead of failing a script:
/// the test spends the admin token's bucket from beside the CLI until the
/// CLI says it is waiting, then stops, and the command ends well. With
/// `--json` it waits without a word on stderr (which then carries only an
/// error document).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_cli_command_waits_and_sends_again() {
    let mut stack = Stack::start().await;
    stack
        .restart_cp_with(&[
            ("DROVER_HTTP_RATE_PER_TOKEN", "1"),
            ("DROVER_HTTP_RATE_PER_ADDRESS", "0"),
            ("DROVER_HTTP_RATE_BURST", "1"),
        ])
        .await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/agents", stack.base);
    let spend = || async {
        let r = http
            .get(&url)
            .bearer_auth(&stack.token)
            .send()
            .await
            .unwrap();
        r.status().is_success()
    };
    // The CLI's one request can slip in between the test's, just after the
    // bucket refills: then it was not limited, and the test tries again.
    let mut limited = None;
    for attempt in 0..5 {
        // The bucket holds one request: spend it before the CLI starts.
        spend().await;
        let mut cli = LineChild::spawn(&stack, &["agents"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cli.said("rate-limiting") && !cli.ended() {
            assert!(
                Instant::now() < deadline,
                "attempt {attempt}: {:?}",
                cli.lines
            );
            spend().await;
        }
        // The test stops spending: the bucket refills within a second and
        // the CLI's next try gets through.
        let status = cli.wait(Duration::from_secs(60)).await;
        assert!(status.success(), "attempt {attempt}: {:?}", cli.lines);
        if cli.said("rate-limiting") {
            limited = Some(cli);
            break;
        }
    }
    let cli = limited.expect("the CLI was never rate-limited in 5 attempts");
    assert!(
        cli.lines
            .iter()
            .any(|l| l.contains("429") && l.contains("1 of 5")),
        "{:?}",
        cli.lines
    );
    assert!(!cli.stdout.is_empty(), "the command printed no answer");

    // --json: stdout one document, stderr silent, whether or not it waited.
    spend().await;
    let out = stack.drover(&["agents", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    one_doc(&out);
}

/// A job the CLI submitted is not reported as a plain failure when the
/// following breaks off (here: the control plane goes away while the CLI
/// waits on a host that is offline): the error names the job and how to
/// see it, so that a script does not submit it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_that_breaks_off_names_the_submitted_job() {
    let mut stack = Stack::start().await;
    let mut host = stack.start_host("h").await;
    host.agent.stop();
    let selector = format!("id:{}", host.id);
    let mut cli = LineChild::spawn(
        &stack,
        &["run", &selector, "sys.ping", "--wait", "120", "--json"],
    );
    let job = common::wait_for("the CLI's job", Duration::from_secs(30), || async {
        let (_, v) = stack.get("/jobs").await;
        v["jobs"].as_array()?.first()?["id"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    stack.cp.stop();
    let status = cli.wait(Duration::from_secs(60)).await;
    assert!(!status.success());
    let err: Value = serde_json::from_str(cli.lines.last().expect("an error document"))
        .unwrap_or_else(|e| panic!("{e}: {:?}", cli.lines));
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains(&format!("job {job} was submitted"))
            && msg.contains(&format!("drover jobs {job}")),
        "{msg}"
    );
    assert_eq!(err["code"], 6, "unreachable: {err}");
}

/// A `drover` command whose stderr the test reads line by line while it
/// runs (to see a wait as it is said) and whose stdout it keeps.
struct LineChild {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    out: Option<std::thread::JoinHandle<Vec<u8>>>,
    lines: Vec<String>,
    stdout: Vec<u8>,
}

impl LineChild {
    fn spawn(stack: &Stack, args: &[&str]) -> Self {
        use std::io::{BufRead, Read};
        let mut child = Command::new(bin("drover"))
            .args(args)
            .env("DROVER_DATA_DIR", &stack.data_dir)
            .env("DROVER_API", &stack.base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut stdout = child.stdout.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stdout.read_to_end(&mut b);
            b
        });
        Self {
            child,
            rx,
            reader: Some(reader),
            out: Some(out),
            lines: Vec::new(),
            stdout: Vec::new(),
        }
    }

    /// Whether a stderr line so far contains `needle`.
    fn said(&mut self, needle: &str) -> bool {
        self.lines.extend(self.rx.try_iter());
        self.lines.iter().any(|l| l.contains(needle))
    }

    fn ended(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits up to `max` for the command to end (killed and failed
    /// after), then collects all it said.
    async fn wait(&mut self, max: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + max;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the command did not end within {max:?}: {:?}", self.lines);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.reader.take().unwrap().join().unwrap();
        self.stdout = self.out.take().unwrap().join().unwrap();
        self.lines.extend(self.rx.try_iter());
        status
    }
}

/// How long `drover run <one host> sys.ping` takes end to end (a
/// simulated agent, and a real agent with its rootd), for the report;
/// compares with another build when DROVER_OLD_BIN names one. Run with
/// `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn run_latency_report() {
    let stack = Stack::start().await;
    let _sim = fleet(&stack, 1).await;
    let real = stack.start_host("real").await;
    let mut bins = vec![("this build".to_string(), bin("drover"))];
    if let Ok(old) = std::env::var("DROVER_OLD_BIN") {
        bins.push(("DROVER_OLD_BIN".to_string(), old.into()));
    }
    let real_sel = format!("id:{}", real.id);
    for (name, path) in bins {
        for (what, sel) in [("simulated", "host:sim-*"), ("real", real_sel.as_str())] {
            let mut times = Vec::new();
            for _ in 0..15 {
                let t = Instant::now();
                let out = Command::new(&path)
                    .args(["run", sel, "sys.ping", "--wait", "30"])
                    .env("DROVER_DATA_DIR", &stack.data_dir)
                    .env("DROVER_API", &stack.base)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", text(&out.stderr));
                times.push(t.elapsed().as_millis());
            }
            times.sort();
            eprintln!(
                "{name}, {what} agent: drover run sys.ping median {} ms (min {}, max {})",
                times[7], times[0], times[14]
            );
        }
    }
}
