//! The table of every operation under `/api/v1`: method, path, tag, summary,
//! the success statuses, query parameters, and the request body. This file
//! owns only the listing; turning it into the OpenAPI document is
//! `super::document`, serving it is `super::serve`.
//!
//! To add a route to the document: add one [`Op`] row here (same path as in
//! the router, with `/api/v1`), naming its request body type (the handler's
//! `JsonBody<T>`: derive `schemars::JsonSchema` on `T` and write
//! `Body::Json(schema::<T>)`) and its query parameters.

use schemars::{JsonSchema, Schema, SchemaGenerator};

/// A query parameter: name, JSON type (`"string"`, `"integer"`,
/// `"boolean"`), description.
pub type Q = (&'static str, &'static str, &'static str);

/// A request body's schema, built by schemars from the handler's type.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` for [`Body::Json`].
pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// What an operation takes as its request body.
#[derive(Clone, Copy)]
pub enum Body {
    /// No body is read.
    None,
    /// A JSON object whose fields the handler checks (400/422 name the
    /// field); the schema is not derived yet.
    AnyJson,
    /// A JSON body of the handler's type.
    Json(SchemaFn),
    /// Raw bytes (`application/octet-stream`).
    Binary,
}

/// What an operation answers on success.
#[derive(Clone, Copy)]
pub enum Answer {
    /// A JSON object.
    Json,
    /// JSON, or CSV with `format=csv`.
    JsonOrCsv,
    /// `text/event-stream`.
    Events,
}

/// One operation of the API.
pub struct Op {
    pub method: &'static str,
    /// The full path, e.g. `/api/v1/agents/{id}`.
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// The statuses a success answers with (e.g. `[201]`, `[200, 202]`).
    pub ok: &'static [u16],
    pub query: &'static [Q],
    pub body: Body,
    pub answer: Answer,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        ok: &[200],
        query: &[],
        body: Body::None,
        answer: Answer::Json,
    }
}

const fn created(mut o: Op) -> Op {
    o.ok = &[201];
    o
}

/// For a handler whose body is a `serde_json::Value` (none at present).
#[allow(dead_code)]
const fn with_body(mut o: Op) -> Op {
    o.body = Body::AnyJson;
    o
}

const fn typed(mut o: Op, f: SchemaFn) -> Op {
    o.body = Body::Json(f);
    o
}

const fn query(mut o: Op, q: &'static [Q]) -> Op {
    o.query = q;
    o
}

const fn ok(mut o: Op, codes: &'static [u16]) -> Op {
    o.ok = codes;
    o
}

const WAIT: &[Q] = &[(
    "wait",
    "integer",
    "Wait up to this many seconds (at most 300) for a final state before answering.",
)];
const LIMIT: &[Q] = &[("limit", "integer", "At most this many rows.")];

/// Every operation under `/api/v1`, grouped by tag.
pub fn operations() -> Vec<Op> {
    use super::super as api;
    vec![
        // Fleet.
        query(op("GET", "/api/v1/agents", "agents", "List agents (filter, sort, page)"), &[
            ("q", "string", "Text in hostname or label, or an id prefix."),
            ("status", "string", "pending, active, offline, rejected or revoked."),
            ("sort", "string", "hostname, status, last_seen or os."),
            ("dir", "string", "asc or desc."),
            ("page", "integer", "1-based page (paged answers carry page, pages, per_page)."),
            ("per_page", "integer", "Rows per page."),
        ]),
        op("GET", "/api/v1/agents/{id}", "agents", "One agent with its facts, clock, credentials"),
        query(op("GET", "/api/v1/agents/{id}/metrics", "agents", "Metric history of an agent"), &[
            ("range", "string", "1h, 24h, 7d or 30d (default 24h)."),
        ]),
        typed(op("PATCH", "/api/v1/agents/{id}", "agents", "Edit an agent's inventory: display name, operator labels, notes"), schema::<crate::inventory::Edit>),
        typed(op("POST", "/api/v1/agents/{id}", "agents", "Edit an agent's inventory (as PATCH, for clients without it)"), schema::<crate::inventory::Edit>),
        op("POST", "/api/v1/agents/{id}/decommission", "agents", "Decommission an agent: revoke, remove from the fleet, keep history"),
        op("GET", "/api/v1/agents/{id}/actions", "commands", "The actions this host can run, and those hidden with why"),
        query(op("GET", "/api/v1/operations", "commands", "Live operations: commands not yet final, counted by action and source"), &[
            ("action", "string", "only this action, e.g. pkg.install"),
            ("source", "string", "user or system"),
            ("status", "string", "queued, accepted or running"),
            ("agent", "string", "an agent id, host name or display name, or a glob of them"),
            ("limit", "integer", "at most this many operations listed (1-500, default 100)"),
        ]),
        op("GET", "/api/v1/agents/{id}/box-key", "agents", "The agent's pinned rootd box key"),
        op("POST", "/api/v1/agents/{id}/box-key/accept", "agents", "Accept the agent's new rootd box key"),
        op("POST", "/api/v1/agents/{id}/approve", "enrolment", "Approve a pending agent"),
        op("POST", "/api/v1/agents/{id}/reject", "enrolment", "Reject a pending agent"),
        op("POST", "/api/v1/agents/{id}/revoke", "enrolment", "Revoke an agent's credentials"),
        typed(op("POST", "/api/v1/agents/{id}/conflict/resolve", "enrolment", "Resolve an identity conflict (cloned host)"), schema::<api::trust::ResolveConflict>),
        // Commands.
        op("GET", "/api/v1/agents/{id}/commands", "commands", "The agent's last 100 commands"),
        query(created(typed(op("POST", "/api/v1/agents/{id}/commands", "commands", "Run an action on one agent"), schema::<api::CreateCommand>)), WAIT),
        query(op("GET", "/api/v1/commands/{id}", "commands", "One command"), WAIT),
        query(op("GET", "/api/v1/commands/{id}/output", "commands", "A command's output lines so far"), &[
            ("after", "integer", "Only lines after this sequence number."),
        ]),
        ok(op("POST", "/api/v1/commands/{id}/cancel", "commands", "Cancel a command (202: signalled to the host)"), &[200, 202]),
        op("GET", "/api/v1/actions", "commands", "The action catalogue with each action's parameter schema"),
        // Jobs.
        ok(typed(op("POST", "/api/v1/jobs", "jobs", "Run an action on the hosts a selector matches"), schema::<crate::jobs::NewJob>), &[200, 201]),
        op("GET", "/api/v1/jobs", "jobs", "Recent jobs"),
        typed(op("POST", "/api/v1/jobs/preview", "jobs", "Count the hosts a selector matches"), schema::<bus_schema::selector::Selector>),
        query(op("GET", "/api/v1/jobs/{id}", "jobs", "One job with its counts"), WAIT),
        op("GET", "/api/v1/jobs/{id}/hosts", "jobs", "Each host's command in a job"),
        // Enrolment and trust.
        created(typed(op("POST", "/api/v1/tokens", "enrolment", "Make an enrolment token"), schema::<api::trust::CreateToken>)),
        op("GET", "/api/v1/tokens", "enrolment", "Enrolment tokens"),
        op("DELETE", "/api/v1/tokens/{id}", "enrolment", "Revoke an enrolment token"),
        ok(Op { body: Body::Binary, ..op("POST", "/api/v1/enroll/bootstrap", "enrolment", "Exchange an install token for enrolment credentials (public, rate-limited)") }, &[200]),
        op("GET", "/api/v1/security", "security", "Trust overview: keys, credentials, conflicts"),
        op("GET", "/api/v1/keys", "security", "Signing keys and which hosts hold them"),
        created(typed(op("POST", "/api/v1/keys/rotate", "security", "Rotate a signing key"), schema::<api::keys::RotateBody>)),
        op("GET", "/api/v1/automation-keys", "security", "Automation signing keys"),
        created(typed(op("POST", "/api/v1/automation-keys", "security", "Add an automation key"), schema::<api::trust::AddKey>)),
        op("DELETE", "/api/v1/automation-keys/{id}", "security", "Revoke an automation key"),
        // Apps.
        op("GET", "/api/v1/apps", "apps", "The app catalogue"),
        op("GET", "/api/v1/apps/{id}", "apps", "One app manifest"),
        ok(typed(op("POST", "/api/v1/apps/{id}/install", "apps", "Install an app on hosts"), schema::<api::apps::InstallRequest>), &[200, 201]),
        // Schedules.
        op("GET", "/api/v1/schedules", "schedules", "Schedules"),
        created(typed(op("POST", "/api/v1/schedules", "schedules", "Create a schedule"), schema::<crate::schedules::NewSchedule>)),
        op("GET", "/api/v1/schedules/{id}", "schedules", "One schedule"),
        typed(op("PUT", "/api/v1/schedules/{id}", "schedules", "Change a schedule"), schema::<crate::schedules::SchedulePatch>),
        op("DELETE", "/api/v1/schedules/{id}", "schedules", "Remove a schedule"),
        op("POST", "/api/v1/schedules/{id}/enable", "schedules", "Enable a schedule"),
        op("POST", "/api/v1/schedules/{id}/disable", "schedules", "Disable a schedule"),
        op("GET", "/api/v1/duties", "schedules", "The control plane's own periodic duties"),
        // Maintenance windows and patch history.
        op("GET", "/api/v1/windows", "windows", "Maintenance windows"),
        created(typed(op("POST", "/api/v1/windows", "windows", "Create a maintenance window"), schema::<crate::windows::WindowInput>)),
        op("GET", "/api/v1/windows/{id}", "windows", "One maintenance window"),
        typed(op("PUT", "/api/v1/windows/{id}", "windows", "Change a maintenance window"), schema::<crate::windows::WindowInput>),
        op("DELETE", "/api/v1/windows/{id}", "windows", "Remove a maintenance window"),
        query(op("GET", "/api/v1/windows/{id}/runs", "windows", "A window's runs"), LIMIT),
        op("GET", "/api/v1/windows/runs/{run_id}", "windows", "One window run"),
        op("POST", "/api/v1/windows/runs/{run_id}/abort", "windows", "Abort a window run"),
        Op { answer: Answer::JsonOrCsv, ..query(op("GET", "/api/v1/updates/history", "updates", "Patch history (JSON or CSV)"), &[
            ("agent", "string", "One agent id."),
            ("package", "string", "A package name, exactly."),
            ("since", "string", "7d, 12h, 30m, ms since the epoch or YYYY-MM-DD."),
            ("format", "string", "json (default) or csv."),
            ("page", "integer", "1-based page."),
            ("per_page", "integer", "Rows per page."),
        ]) },
        // Updates.
        query(op("GET", "/api/v1/updates", "updates", "Pending updates by package"), UPDATES),
        query(op("GET", "/api/v1/updates/hosts", "updates", "Pending updates by host"), UPDATES),
        query(op("GET", "/api/v1/agents/{id}/updates", "updates", "One host's pending updates"), UPDATES),
        op("GET", "/api/v1/updates/approvals", "updates", "Update approvals"),
        created(typed(op("POST", "/api/v1/updates/approvals", "updates", "Approve updates"), schema::<crate::updates::store::NewApproval>)),
        op("POST", "/api/v1/updates/approvals/{id}/revoke", "updates", "Revoke an approval"),
        op("GET", "/api/v1/updates/rules", "updates", "Auto-approval rules"),
        created(typed(op("POST", "/api/v1/updates/rules", "updates", "Create an auto-approval rule"), schema::<crate::updates::store::NewRule>)),
        typed(op("PUT", "/api/v1/updates/rules/{id}", "updates", "Change an auto-approval rule"), schema::<crate::updates::store::RuleChange>),
        op("DELETE", "/api/v1/updates/rules/{id}", "updates", "Remove an auto-approval rule"),
        // Agent releases and rollouts.
        op("GET", "/api/v1/releases", "releases", "Published agent releases"),
        ok(Op { body: Body::Binary, ..op("POST", "/api/v1/releases", "releases", "Publish a signed agent release (body: the binary; manifest and signature in headers)") }, &[200, 201]),
        op("GET", "/api/v1/releases/{version}", "releases", "One agent release"),
        typed(op("POST", "/api/v1/releases/{version}/yank", "releases", "Yank an agent release"), schema::<api::agent_releases::YankBody>),
        op("GET", "/api/v1/rollouts", "rollouts", "Rollouts, newest first"),
        created(typed(op("POST", "/api/v1/rollouts", "rollouts", "Start a rollout"), schema::<crate::rollouts::StartInput>)),
        op("GET", "/api/v1/rollouts/{id}", "rollouts", "One rollout"),
        op("POST", "/api/v1/rollouts/{id}/pause", "rollouts", "Pause a rollout"),
        op("POST", "/api/v1/rollouts/{id}/resume", "rollouts", "Resume a rollout"),
        op("POST", "/api/v1/rollouts/{id}/abort", "rollouts", "Abort a rollout"),
        // Services.
        query(op("GET", "/api/v1/services", "services", "Watched services across the fleet"), &[
            ("unit", "string", "A unit name (php-fpm means php-fpm.service)."),
            ("state", "string", "An active_state, or down."),
            ("agent", "string", "One host's agent id."),
        ]),
        op("GET", "/api/v1/services/watches", "services", "Service watch lists"),
        created(typed(op("POST", "/api/v1/services/watches", "services", "Create a watch list"), schema::<crate::services::lists::WatchInput>)),
        typed(op("PUT", "/api/v1/services/watches/{id}", "services", "Change a watch list"), schema::<crate::services::lists::WatchInput>),
        op("DELETE", "/api/v1/services/watches/{id}", "services", "Remove a watch list"),
        // Notifications.
        op("GET", "/api/v1/notify/channels", "notifications", "Notification channels"),
        created(typed(op("POST", "/api/v1/notify/channels", "notifications", "Create a channel"), schema::<crate::notify::channels::ChannelInput>)),
        typed(op("PUT", "/api/v1/notify/channels/{id}", "notifications", "Change a channel"), schema::<crate::notify::channels::ChannelInput>),
        op("DELETE", "/api/v1/notify/channels/{id}", "notifications", "Remove a channel"),
        ok(op("POST", "/api/v1/notify/channels/{id}/test", "notifications", "Send a test notification"), &[202]),
        query(op("GET", "/api/v1/notify/channels/{id}/deliveries", "notifications", "A channel's deliveries"), LIMIT),
        // Alerts.
        query(op("GET", "/api/v1/alerts", "alerts", "Alerts, newest first"), &[
            ("state", "string", "open (default), pending, firing, resolved or all."),
            ("limit", "integer", "At most this many (default 200, at most 5000)."),
        ]),
        op("GET", "/api/v1/alerts/{id}", "alerts", "One alert"),
        op("POST", "/api/v1/alerts/{id}/ack", "alerts", "Acknowledge an alert"),
        op("GET", "/api/v1/alerts/rules", "alerts", "Alert rules"),
        created(typed(op("POST", "/api/v1/alerts/rules", "alerts", "Create an alert rule"), schema::<crate::alerts::rules::RuleInput>)),
        typed(op("PUT", "/api/v1/alerts/rules/{id}", "alerts", "Change an alert rule"), schema::<crate::alerts::rules::RuleInput>),
        op("DELETE", "/api/v1/alerts/rules/{id}", "alerts", "Remove an alert rule"),
        op("POST", "/api/v1/alerts/rules/{id}/enable", "alerts", "Enable an alert rule"),
        op("POST", "/api/v1/alerts/rules/{id}/disable", "alerts", "Disable an alert rule"),
        op("GET", "/api/v1/silences", "alerts", "Silences"),
        created(typed(op("POST", "/api/v1/silences", "alerts", "Create a silence"), schema::<crate::alerts::silences::SilenceInput>)),
        op("DELETE", "/api/v1/silences/{id}", "alerts", "Remove a silence"),
        // Events, audit, accounts.
        Op { answer: Answer::Events, ..op("GET", "/api/v1/events", "events", "Server-sent events: agent, command, rollout, release, alert and service changes") },
        Op { answer: Answer::JsonOrCsv, ..query(op("GET", "/api/v1/audit", "audit", "The audit trail (JSON or CSV)"), &[
            ("actor", "string", "Who acted."),
            ("action", "string", "What was done."),
            ("since", "string", "ms since the epoch or YYYY-MM-DD."),
            ("until", "string", "ms since the epoch or YYYY-MM-DD."),
            ("limit", "integer", "At most this many rows."),
            ("before", "integer", "Rows with an id below this (paging back)."),
            ("format", "string", "json (default) or csv."),
        ]) },
        op("GET", "/api/v1/users", "accounts", "Users"),
        created(typed(op("POST", "/api/v1/users", "accounts", "Add a user"), schema::<api::accounts::NewUser>)),
        op("DELETE", "/api/v1/users/{id}", "accounts", "Remove a user"),
        typed(op("POST", "/api/v1/users/{id}/role", "accounts", "Change a user's role"), schema::<api::accounts::SetRole>),
        op("GET", "/api/v1/api-tokens", "accounts", "API tokens (never their secret)"),
        created(typed(op("POST", "/api/v1/api-tokens", "accounts", "Make an API token (its secret is shown once)"), schema::<api::accounts::NewApiToken>)),
        op("DELETE", "/api/v1/api-tokens/{id}", "accounts", "Revoke an API token"),
        typed(op("POST", "/api/v1/account/password", "accounts", "Change your password"), schema::<api::accounts::ChangePassword>),
        op("POST", "/api/v1/account/totp", "accounts", "Start setting up TOTP"),
        typed(op("DELETE", "/api/v1/account/totp", "accounts", "Turn TOTP off"), schema::<api::accounts::TotpCode>),
        typed(op("POST", "/api/v1/account/totp/confirm", "accounts", "Confirm TOTP with a code"), schema::<api::accounts::TotpCode>),
        op("GET", "/api/v1/openapi.json", "meta", "This document"),
    ]
}

const UPDATES: &[Q] = &[
    ("security", "string", "true: only security updates."),
    ("selector", "string", "A host selector in the CLI form."),
];
