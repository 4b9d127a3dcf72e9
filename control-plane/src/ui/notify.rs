//! The Notifications page (`/notifications`): every channel with its kind,
//! target, routing (severity, rules, labels), quiet hours, grouping and
//! whether a secret is set; per channel its recent deliveries (state,
//! attempts, last error), refreshed live while the page is open; forms to
//! add a webhook, email or bus channel and buttons to test or remove one
//! (all through the API, with the CSRF header `app.js` adds). Reads
//! `crate::notify`; writes nothing itself.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::notify::{channels, deliveries, model::delivery, views};
use crate::state::AppState;

use super::frame::{none, page, pill, short, time, unavailable};

/// Deliveries shown per channel, newest first.
const RECENT: u64 = 10;

/// Routing fields every add form shares (fixed markup).
const ROUTING: &str = "<label>Least severity<select name=\"min_severity\"><option value=\"info\">info</option><option value=\"warning\">warning</option><option value=\"critical\">critical</option></select></label>\
<label>Only rules (names or ids, comma-separated; empty: all)<input name=\"rule_ids\" data-type=\"list\"></label>\
<label>Only labels (k=v, comma-separated)<input name=\"matchers\" data-type=\"kv\" placeholder=\"team=db\"></label>\
<label>Group a rule's alerts over (seconds)<input name=\"group_secs\" data-type=\"int\" type=\"number\" min=\"0\" max=\"3600\" value=\"0\"></label>\
<label>Quiet hours from (HH:MM)<input name=\"quiet_hours.start\" pattern=\"[0-2][0-9]:[0-5][0-9]\" placeholder=\"22:00\"></label>\
<label>…until (HH:MM)<input name=\"quiet_hours.end\" pattern=\"[0-2][0-9]:[0-5][0-9]\" placeholder=\"07:00\"></label>\
<label>Quiet hours time zone<input name=\"quiet_hours.timezone\" value=\"UTC\"></label>\
<label class=\"check\"><input type=\"checkbox\" name=\"quiet_hours.bypass_critical\"> critical alerts ignore quiet hours</label>";

fn forms() -> String {
    format!(
        "<h2>Add a channel</h2><div class=\"forms\">\
<form data-api=\"/api/v1/notify/channels\" data-reload=\"1\" class=\"stack-form\" id=\"webhook-form\"><h3>Webhook</h3>\
<input type=\"hidden\" name=\"kind\" value=\"webhook\">\
<label>Name<input name=\"name\" required maxlength=\"64\" placeholder=\"ops-hook\"></label>\
<label>URL (http or https)<input name=\"config.url\" required type=\"url\" placeholder=\"https://hooks.example/drover\"></label>\
<label>Format<select name=\"config.format\"><option value=\"json\">JSON (signed)</option><option value=\"slack\">Slack</option><option value=\"teams\">Teams</option></select></label>\
<label>HMAC key (optional; signs X-Drover-Signature)<input name=\"secret\" type=\"password\" autocomplete=\"new-password\"></label>\
{ROUTING}<button class=\"primary\">Add webhook</button><span class=\"form-error\"></span></form>\
<form data-api=\"/api/v1/notify/channels\" data-reload=\"1\" class=\"stack-form\" id=\"email-form\"><h3>Email</h3>\
<input type=\"hidden\" name=\"kind\" value=\"email\">\
<label>Name<input name=\"name\" required maxlength=\"64\" placeholder=\"ops-mail\"></label>\
<label>SMTP server<input name=\"config.host\" required placeholder=\"smtp.example.com\"></label>\
<label>Port (empty: by TLS)<input name=\"config.port\" data-type=\"int\" type=\"number\" min=\"1\" max=\"65535\"></label>\
<label>TLS<select name=\"config.tls\"><option value=\"starttls\">STARTTLS</option><option value=\"tls\">TLS</option><option value=\"none\">none</option></select></label>\
<label>From<input name=\"config.from\" required placeholder=\"drover@example.com\"></label>\
<label>To (comma-separated)<input name=\"config.to\" data-type=\"list\" required placeholder=\"ops@example.com\"></label>\
<label>SMTP user (optional)<input name=\"config.username\" autocomplete=\"off\"></label>\
<label>SMTP password<input name=\"secret\" type=\"password\" autocomplete=\"new-password\"></label>\
{ROUTING}<button class=\"primary\">Add email channel</button><span class=\"form-error\"></span></form>\
<form data-api=\"/api/v1/notify/channels\" data-reload=\"1\" class=\"stack-form\" id=\"bus-form\"><h3>Bus</h3>\
<p class=\"mut small\">Publishes each notification to drover.alert.&lt;channel id&gt; in the stream DROVER_ALERTS, for automation.</p>\
<input type=\"hidden\" name=\"kind\" value=\"bus\">\
<label>Name<input name=\"name\" required maxlength=\"64\" placeholder=\"automation\"></label>\
{ROUTING}<button class=\"primary\">Add bus channel</button><span class=\"form-error\"></span></form></div>"
    )
}

fn target(c: &Value) -> String {
    match c["kind"].as_str() {
        Some("webhook") => format!(
            "{} ({})",
            c["config"]["url"].as_str().unwrap_or(""),
            c["config"]["format"].as_str().unwrap_or("json")
        ),
        Some("email") => format!(
            "{} via {}:{}",
            c["config"]["to"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            c["config"]["host"].as_str().unwrap_or(""),
            c["config"]["port"]
        ),
        _ => format!("drover.alert.{}", c["id"].as_str().unwrap_or("")),
    }
}

fn routing(c: &Value) -> String {
    let mut parts = vec![format!("{}+", c["min_severity"].as_str().unwrap_or("info"))];
    let rules: Vec<&str> = c["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !rules.is_empty() {
        parts.push(format!("rules {}", rules.join(", ")));
    }
    for (k, v) in c["matchers"].as_object().into_iter().flatten() {
        parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
    }
    if let Some(g) = c["group_secs"].as_i64().filter(|g| *g > 0) {
        parts.push(format!("grouped over {g}s"));
    }
    let q = &c["quiet_hours"];
    if !q.is_null() {
        parts.push(format!(
            "quiet {}-{} {}{}",
            q["start"].as_str().unwrap_or(""),
            q["end"].as_str().unwrap_or(""),
            q["timezone"].as_str().unwrap_or(""),
            if q["bypass_critical"] == true {
                " (critical bypasses)"
            } else {
                ""
            }
        ));
    }
    parts.join(" · ")
}

fn channel_card(who: &Principal, c: &Value, ds: &[delivery::Model]) -> Markup {
    let id = c["id"].as_str().unwrap_or("");
    let name = c["name"].as_str().unwrap_or("");
    html! {
        div.run data-channel=(id) {
            p {
                b { (name) } " " (pill(c["kind"].as_str().unwrap_or("")))
                @if c["enabled"] == false { " " (pill("disabled")) }
                " " span.mut { (target(c)) }
                " · secret " (c["secret"].as_str().unwrap_or(""))
                " "
                @if who.can(Role::Operator) {
                    button.small data-api=(format!("/api/v1/notify/channels/{id}/test")) { "Send test" }
                    " "
                    button.danger.small data-api=(format!("/api/v1/notify/channels/{id}"))
                        data-method="DELETE" data-confirm=(format!("Remove channel {name} and its delivery records?")) { "Remove" }
                }
            }
            p.mut.small { (routing(c)) }
            @if ds.is_empty() {
                div.empty.small { "No deliveries yet." }
            } @else {
                table.grid.small {
                    thead { tr { th { "Delivery" } th { "State" } th { "Alerts" } th { "Attempts" } th { "Queued" } th { "Sent" } th { "Last error" } } }
                    tbody {
                        @for d in ds {
                            tr data-delivery=(d.id) {
                                td.id { (short(&d.id)) }
                                td {
                                    (pill(&d.state))
                                    @if let (Some(h), "queued") = (d.held_until, d.state.as_str()) {
                                        " " span.mut { "held for quiet hours until " (time(h)) }
                                    }
                                }
                                td.num { (serde_json::from_str::<Vec<i64>>(&d.transition_ids).map_or(0, |v| v.len())) }
                                td.num { (d.attempts) }
                                td { (time(d.created_at)) }
                                td { @match d.sent_at { Some(t) => { (time(t)) } None => { (none()) } } }
                                td.mut { (d.last_error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn notifications_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let cs = match channels::list(&state.db).await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let names = match channels::rule_names(&state.db).await {
        Ok(n) => n,
        Err(e) => return unavailable(e),
    };
    let mut cards = Vec::with_capacity(cs.len());
    for c in &cs {
        match deliveries::recent(&state.db, &c.id, RECENT).await {
            Ok(ds) => cards.push((views::view_named(c, &names), ds)),
            Err(e) => return unavailable(e),
        }
    }
    let body = html! {
        section.card {
            h2 { "Notification channels" }
            p.mut {
                "Alerts that start firing or resolve are sent to every channel whose routing matches; "
                "a receiver that is down gets them later, each once (webhooks: dedupe on X-Drover-Delivery)."
            }
            div data-live="channels" #channels-wrap {
                @if cards.is_empty() {
                    div.empty.small { "No channels yet: alerts are shown here and in the event stream only." }
                }
                @for (c, ds) in &cards { (channel_card(&who, c, ds)) }
            }
        }
        @if who.can(Role::Operator) {
            section.card { (PreEscaped(forms())) }
        }
    };
    page(&who, "notifications", "Notifications", body).into_response()
}
