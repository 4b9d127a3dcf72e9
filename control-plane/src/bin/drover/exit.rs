//! The exit codes of the `drover` CLI: one table ([`Exit`]), the mapping of
//! errors (API statuses, unreachable control plane, failed hosts) onto it,
//! and printing an error as text or, with `--json`, as one JSON document on
//! stderr.
//!
//! Owns nothing about what the commands do; they return `anyhow` errors and
//! this module decides the code. `drover rollout status --follow` keeps its
//! own documented codes (2 halted, 3 aborted).

use control_plane::client::ClientError;

/// The exit codes, printed by `drover --help` ([`TABLE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked.
    Success = 0,
    /// 1: the operation failed (a server error, a conflict, a local error).
    Failure = 1,
    /// 2: usage: unknown flag or subcommand, bad value, or a request the
    /// control plane refused as invalid (HTTP 400/422).
    Usage = 2,
    /// 3: a job or command finished but some hosts failed, expired or were
    /// refused.
    HostsFailed = 3,
    /// 4: what was named does not exist (HTTP 404).
    NotFound = 4,
    /// 5: refused: bad or missing token, or the token's role may not do it
    /// (HTTP 401/403).
    Refused = 5,
    /// 6: the control plane could not be reached, or did not answer in
    /// time (including `--wait` running out before a job ended).
    Unreachable = 6,
}

/// The table as `drover --help` prints it.
pub const TABLE: &str = "Exit codes:\n  \
    0  success\n  \
    1  the operation failed (server error, conflict, local error)\n  \
    2  usage error, or a request the control plane refused as invalid (400/422)\n  \
    3  a job or command finished but some hosts failed (drover run, send, command)\n  \
    4  not found (404)\n  \
    5  refused: bad token or not permitted (401/403)\n  \
    6  control plane unreachable, or --wait ran out before the job ended\n\
    (drover rollout status --follow: 0 done, 2 halted, 3 aborted.)\n\
    With --json, an error is one JSON document on stderr: {\"error\": \"...\", \"code\": N}";

/// Some hosts of a job (or one command) did not succeed; maps to
/// [`Exit::HostsFailed`]. The job's result has been printed already.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HostsFailed(pub String);

/// Following a job or command stopped before it ended; maps to
/// [`Exit::Unreachable`] (a timeout).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TimedOut(pub String);

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The code for an HTTP status the control plane answered with.
    pub fn from_status(status: u16) -> Exit {
        match status {
            200..=299 => Exit::Success,
            400 | 422 => Exit::Usage,
            401 | 403 => Exit::Refused,
            404 => Exit::NotFound,
            408 | 502..=504 => Exit::Unreachable,
            _ => Exit::Failure,
        }
    }
}

impl From<&anyhow::Error> for Exit {
    fn from(e: &anyhow::Error) -> Exit {
        for cause in e.chain() {
            if let Some(c) = cause.downcast_ref::<ClientError>() {
                return match c {
                    ClientError::Status { status, .. } => Exit::from_status(status.as_u16()),
                    ClientError::Unreachable(_) => Exit::Unreachable,
                };
            }
            if cause.is::<HostsFailed>() {
                return Exit::HostsFailed;
            }
            if cause.is::<TimedOut>() {
                return Exit::Unreachable;
            }
            if let Some(c) = cause.downcast_ref::<clap::Error>() {
                return match c.kind() {
                    clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion => Exit::Success,
                    _ => Exit::Usage,
                };
            }
        }
        Exit::Failure
    }
}

/// Whether the command line asks for JSON (`--json` anywhere before a
/// `--`), so that even a usage error can be reported as JSON.
pub fn wants_json(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// Prints `e` on stderr (as `{"error", "code"}` with `json`) and returns
/// the exit code.
pub fn report(e: &anyhow::Error, json: bool) -> Exit {
    let exit = Exit::from(e);
    if json {
        let doc = serde_json::json!({ "error": format!("{e:#}"), "code": exit.code() });
        eprintln!("{doc}");
    } else {
        eprintln!("Error: {e:?}");
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> anyhow::Error {
        ClientError::Status {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            message: "x".into(),
        }
        .into()
    }

    #[test]
    fn mapping() {
        assert_eq!(Exit::from(&api(404)), Exit::NotFound);
        assert_eq!(Exit::from(&api(401)), Exit::Refused);
        assert_eq!(Exit::from(&api(403)), Exit::Refused);
        assert_eq!(Exit::from(&api(400)), Exit::Usage);
        assert_eq!(Exit::from(&api(422)), Exit::Usage);
        assert_eq!(Exit::from(&api(409)), Exit::Failure);
        assert_eq!(Exit::from(&api(500)), Exit::Failure);
        assert_eq!(Exit::from(&api(503)), Exit::Unreachable);
        let down: anyhow::Error = ClientError::Unreachable("down".into()).into();
        assert_eq!(Exit::from(&down), Exit::Unreachable);
        // Context on top keeps the cause's code.
        let wrapped = api(404).context("showing job j");
        assert_eq!(Exit::from(&wrapped), Exit::NotFound);
        let failed: anyhow::Error = HostsFailed("2 hosts did not succeed".into()).into();
        assert_eq!(Exit::from(&failed).code(), 3);
        let late: anyhow::Error = TimedOut("stopped".into()).into();
        assert_eq!(Exit::from(&late).code(), 6);
        assert_eq!(Exit::from(&anyhow::anyhow!("local")).code(), 1);
        assert!(wants_json(&[
            "drover".into(),
            "jobs".into(),
            "--json".into()
        ]));
        assert!(!wants_json(&[
            "drover".into(),
            "--".into(),
            "--json".into()
        ]));
    }
}
