//! Subject, stream and consumer names. The only place they are spelled.
//!
//! Agent ids and command ids are embedded as single subject tokens, so they
//! must never contain `.`, `*`, `>` or whitespace; [`is_valid_token`] checks.

/// Prefix of every Drover subject.
pub const PREFIX: &str = "drover";

/// Heartbeats: `drover.hb.<agent>`.
pub const HB_STREAM: &str = "DROVER_HB";
pub const HB_ALL: &str = "drover.hb.*";
/// Commands: `drover.cmd.<shard>.<agent>`, in one of [`CMD_SHARDS`] streams
/// `DROVER_CMD_<shard>`. Sharding keeps the number of consumers per stream
/// (one per agent) low: each ack on a work-queue stream costs the broker a
/// check of every consumer of that stream (docs/performance.md, "Where the
/// broker's time goes at 10,000"). Changing the count moves every enrolled
/// agent's queue to another stream; no migration for that exists yet.
pub const CMD_SHARDS: u32 = 64;
/// Prefix of the command streams' names.
pub const CMD_STREAM_PREFIX: &str = "DROVER_CMD_";
/// Results: `drover.res.<agent>.<command>`.
pub const RES_STREAM: &str = "DROVER_RES";
pub const RES_ALL: &str = "drover.res.*.*";
/// Refusal reports of agents: `drover.sec.<agent>` (kept in [`RES_STREAM`]).
pub const SEC_ALL: &str = "drover.sec.*";
/// Output lines: `drover.out.<agent>.<command>`.
pub const OUT_STREAM: &str = "DROVER_OUT";
pub const OUT_ALL: &str = "drover.out.*.*";
/// Job submissions from automation.
pub const JOBS_STREAM: &str = "DROVER_JOBS";
pub const JOBS_SUBMIT: &str = "drover.jobs.submit";
/// Durable consumer of the control plane on the job stream.
pub const CP_JOBS_CONSUMER: &str = "control-plane-jobs";
/// Enrolment request/reply.
pub const ENROLL: &str = "drover.enroll";
/// Inbox prefix of the shared enrolment-only user. The enrolment responder
/// answers only on subjects under it ([`is_enroll_inbox`]), and its broker
/// user may publish nowhere else.
pub const ENROLL_INBOX_PREFIX: &str = "_INBOX_enroll";
/// Longest reply subject the enrolment responder answers on, in bytes.
pub const MAX_REPLY_SUBJECT: usize = 256;
/// Core-NATS events (no stream): `drover.evt.<kind>`.
pub const EVT_ALL: &str = "drover.evt.>";

/// Durable consumer of the control plane on the heartbeat stream.
pub const CP_HB_CONSUMER: &str = "control-plane-hb";
/// Durable consumer of the control plane on the result stream.
pub const CP_RES_CONSUMER: &str = "control-plane-res";
/// The JetStream object store of signed release artifacts (agent packages).
pub const RELEASES_BUCKET: &str = "drover-releases";
/// The JetStream KV bucket of control-plane leases.
pub const LEASE_BUCKET: &str = "drover-leases";
/// The lease key the periodic duties (scheduler, window runner) run under.
pub const DUTIES_LEASE_KEY: &str = "duties";

pub fn heartbeat(agent: &str) -> String {
    format!("{PREFIX}.hb.{agent}")
}

/// The command shard of an agent: FNV-1a of its id, stable everywhere.
pub fn cmd_shard(agent: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in agent.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h % CMD_SHARDS
}

/// The stream that holds an agent's commands.
pub fn cmd_stream(agent: &str) -> String {
    format!("{CMD_STREAM_PREFIX}{:02}", cmd_shard(agent))
}

/// Name and subject filter of shard `k`'s stream.
pub fn cmd_stream_of_shard(k: u32) -> (String, String) {
    (
        format!("{CMD_STREAM_PREFIX}{k:02}"),
        format!("{PREFIX}.cmd.{k:02}.*"),
    )
}

pub fn command(agent: &str) -> String {
    format!("{PREFIX}.cmd.{:02}.{agent}", cmd_shard(agent))
}

pub fn result(agent: &str, command: &str) -> String {
    format!("{PREFIX}.res.{agent}.{command}")
}

pub fn refusal(agent: &str) -> String {
    format!("{PREFIX}.sec.{agent}")
}

pub fn output(agent: &str, command: &str) -> String {
    format!("{PREFIX}.out.{agent}.{command}")
}

/// All output of one command, for a live tail.
pub fn output_of_command(command: &str) -> String {
    format!("{PREFIX}.out.*.{command}")
}

/// `drover.evt.agent.<agent>`: an agent's status or metrics changed.
pub fn agent_event(agent: &str) -> String {
    format!("{PREFIX}.evt.agent.{agent}")
}

/// `drover.evt.command.<command>`: a command changed state.
pub fn command_event(command: &str) -> String {
    format!("{PREFIX}.evt.command.{command}")
}

/// `drover.evt.rollout.<rollout>`: a staged agent rollout changed.
pub fn rollout_event(rollout: &str) -> String {
    format!("{PREFIX}.evt.rollout.{rollout}")
}

/// `drover.evt.release`: an agent release was published or yanked.
pub fn release_event() -> String {
    format!("{PREFIX}.evt.release")
}

/// `drover.evt.alert.<rule>`: an alert of this rule changed state.
pub fn alert_event(rule: &str) -> String {
    format!("{PREFIX}.evt.alert.{rule}")
}

/// The stream alert notifications wait in until delivered (the control
/// plane's `notify` module declares it): subjects `drover.notify.<channel>`.
pub const NOTIFY_STREAM: &str = "DROVER_NOTIFY";
/// The durable consumer every control-plane replica's deliverer shares.
pub const NOTIFY_CONSUMER: &str = "drover-notify";
/// The stream a `bus` notification channel publishes into, for automation
/// to consume durably: subjects `drover.alert.<channel>`.
pub const ALERTS_STREAM: &str = "DROVER_ALERTS";

/// `drover.notify.<channel>`: one notification waiting for delivery.
pub fn notify_subject(channel: &str) -> String {
    format!("{PREFIX}.notify.{channel}")
}

/// `drover.alert.<channel>`: a notification of a `bus` channel.
pub fn alert_notification(channel: &str) -> String {
    format!("{PREFIX}.alert.{channel}")
}

/// `drover.evt.service.<agent>`: a watched service changed on a host.
pub fn service_event(agent: &str) -> String {
    format!("{PREFIX}.evt.service.{agent}")
}

/// Inbox prefix of an agent's connection: replies to its own requests land
/// here and nowhere another agent can read.
pub fn inbox_prefix(agent: &str) -> String {
    format!("_INBOX_{agent}")
}

/// Whether `subject` is a concrete subject under [`ENROLL_INBOX_PREFIX`]:
/// `_INBOX_enroll.` followed by one or more tokens of `[A-Za-z0-9_-]`, at
/// most [`MAX_REPLY_SUBJECT`] bytes. Anything else (another subject, a
/// look-alike prefix such as `_INBOX_enrollment.x`, a wildcard, an empty
/// token) is not a place the enrolment responder may answer.
pub fn is_enroll_inbox(subject: &str) -> bool {
    subject.len() <= MAX_REPLY_SUBJECT
        && subject
            .strip_prefix(ENROLL_INBOX_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| rest.split('.').all(is_valid_token))
}

/// Name of an agent's durable pull consumer on its command stream.
pub fn agent_consumer(agent: &str) -> String {
    format!("agent-{agent}")
}

/// What kind of message a subject carries, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    Heartbeat { agent: &'a str },
    Command { agent: &'a str },
    Result { agent: &'a str, command: &'a str },
    Output { agent: &'a str, command: &'a str },
    Refusal { agent: &'a str },
    JobSubmit,
    Other,
}

/// Splits a subject into its Drover meaning.
pub fn parse(subject: &str) -> Parsed<'_> {
    let parts: Vec<&str> = subject.split('.').collect();
    match parts.as_slice() {
        [PREFIX, "hb", agent] => Parsed::Heartbeat { agent },
        [PREFIX, "cmd", _shard, agent] => Parsed::Command { agent },
        [PREFIX, "res", agent, command] => Parsed::Result { agent, command },
        [PREFIX, "out", agent, command] => Parsed::Output { agent, command },
        [PREFIX, "sec", agent] => Parsed::Refusal { agent },
        [PREFIX, "jobs", "submit"] => Parsed::JobSubmit,
        _ => Parsed::Other,
    }
}

/// An id is safe to embed as one subject token: 1..=128 chars of
/// `[A-Za-z0-9_-]`.
pub fn is_valid_token(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_parse() {
        assert_eq!(
            parse(&result("A1", "c-2")),
            Parsed::Result {
                agent: "A1",
                command: "c-2"
            }
        );
        assert_eq!(parse(&heartbeat("A1")), Parsed::Heartbeat { agent: "A1" });
        assert_eq!(parse(&command("A1")), Parsed::Command { agent: "A1" });
        let shards: std::collections::HashSet<u32> =
            (0..1000).map(|i| cmd_shard(&format!("U{i}"))).collect();
        assert_eq!(
            shards.len(),
            CMD_SHARDS as usize,
            "ids spread over every shard"
        );
        assert_eq!(parse("drover.hb.a.b"), Parsed::Other);
    }

    #[test]
    fn tokens() {
        assert!(is_valid_token("UABC-12_x"));
        assert!(!is_valid_token("a.b"));
        assert!(!is_valid_token("a>"));
        assert!(!is_valid_token(""));
    }

    #[test]
    fn enroll_inboxes() {
        assert!(is_enroll_inbox("_INBOX_enroll.abc"));
        assert!(is_enroll_inbox("_INBOX_enroll.Nuid123.7"));
        for bad in [
            "_INBOX_enroll",
            "_INBOX_enroll.",
            "_INBOX_enroll..x",
            "_INBOX_enroll.x.",
            "_INBOX_enroll.*",
            "_INBOX_enroll.>",
            "_INBOX_enroll.a b",
            "_INBOX_enrollment.x",
            "_INBOX_x.y",
            "drover.cmd.07.UABC",
            "drover.hb.UABC",
            "drover.jobs.submit",
        ] {
            assert!(
                !is_enroll_inbox(bad),
                "{bad:?} must not be an enrolment inbox"
            );
        }
        let long = format!("{ENROLL_INBOX_PREFIX}.{}", "a".repeat(MAX_REPLY_SUBJECT));
        assert!(!is_enroll_inbox(&long));
    }
}
