//! Sending one delivery on its channel: the message's JSON and text, a
//! webhook POST (`json`, `slack` or `teams` body; `X-Drover-Delivery` and,
//! with a secret, `X-Drover-Signature: sha256=<hex HMAC-SHA256 of the
//! body>`), an email over SMTP, or a publish to `drover.alert.<channel>`.
//!
//! Owns the wire shapes of notifications; not when or whether to send
//! (`notify::deliver`).

use std::time::Duration;

use anyhow::{bail, Context};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::model::{channel, delivery};
use super::seal;
use crate::alerts::transition::alert_transition;
use crate::state::AppState;

/// The notification as JSON (the webhook `json` body and the bus payload):
/// `{delivery, channel: {id, name}, rule: {id, name}, state, severity
/// (the highest), count, title, text, transitions: [{id, alert_id, agent_id,
/// hostname, target, state, severity, summary, labels, at}]}`.
pub fn body(ch: &channel::Model, d: &delivery::Model, ts: &[alert_transition::Model]) -> Value {
    let severity = ts
        .iter()
        .map(|t| t.severity.as_str())
        .max_by_key(|s| super::channels::severity_rank(s))
        .unwrap_or("info");
    let first = ts.first();
    json!({
        "delivery": d.id,
        "channel": {"id": ch.id, "name": ch.name},
        "rule": {"id": first.map(|t| &t.rule_id), "name": first.map(|t| &t.rule_name)},
        "state": first.map(|t| &t.state),
        "severity": severity,
        "count": ts.len(),
        "title": title(ts),
        "text": text(ts),
        "transitions": ts.iter().map(|t| json!({
            "id": t.id, "alert_id": t.alert_id, "agent_id": t.agent_id,
            "hostname": t.hostname, "target": t.target, "state": t.state,
            "severity": t.severity, "summary": t.summary,
            "labels": serde_json::from_str::<Value>(&t.labels).unwrap_or(Value::Null),
            "at": t.at,
        })).collect::<Vec<_>>(),
    })
}

/// One line: `[FIRING] disk full (3 hosts)`; `[FIRING+RESOLVED]` when a
/// group holds both.
pub fn title(ts: &[alert_transition::Model]) -> String {
    let mut states: Vec<&str> = ts.iter().map(|t| t.state.as_str()).collect();
    states.sort();
    states.dedup();
    let states = states.join("+").to_uppercase();
    let rule = one_line(ts.first().map_or("", |t| t.rule_name.as_str()));
    match ts.len() {
        1 => format!("[{states}] {rule}"),
        n => format!("[{states}] {rule} ({n} hosts)"),
    }
}

/// One line per transition: `- firing critical web-1: disk / at 93 %`.
pub fn text(ts: &[alert_transition::Model]) -> String {
    ts.iter()
        .map(|t| {
            let who = t.hostname.as_deref().unwrap_or(&t.target);
            format!(
                "- {} {} {}: {}",
                one_line(&t.state),
                one_line(&t.severity),
                one_line(who),
                one_line(&t.summary)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `s` with every control character (newlines included) as a space: what
/// goes into a one-line position (email subject, a transition's line).
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Slack `text`: `&`, `<`, `>` escaped, so host names and summaries cannot
/// make mentions (`<!channel>`) or links (`<https://…|x>`).
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Teams card text is HTML: escaped.
pub fn html_escape(s: &str) -> String {
    slack_escape(s)
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The webhook body in `format` (`json`, `slack` or `teams`).
pub fn payload(format: &str, full: Value, ts: &[alert_transition::Model]) -> Value {
    match format {
        "slack" => {
            json!({"text": format!("*{}*\n{}", slack_escape(&title(ts)), slack_escape(&text(ts)))})
        }
        "teams" => json!({
            "@type": "MessageCard", "@context": "http://schema.org/extensions",
            "summary": title(ts), "title": html_escape(&title(ts)),
            "text": html_escape(&text(ts)).replace('\n', "<br>"),
        }),
        _ => full,
    }
}

fn secret(state: &AppState, ch: &channel::Model) -> anyhow::Result<Option<String>> {
    ch.secret_sealed
        .as_deref()
        .map(|s| seal::open(&seal::key(&state.cfg)?, s))
        .transpose()
        .map_err(Into::into)
}

/// `sha256=<hex HMAC-SHA256(key, body)>`.
pub fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends delivery `d` (about `ts`) on `ch`. An error is retried.
pub async fn send(
    state: &AppState,
    ch: &channel::Model,
    d: &delivery::Model,
    ts: &[alert_transition::Model],
) -> anyhow::Result<()> {
    let cfg: Value = serde_json::from_str(&ch.config).context("channel config")?;
    let full = body(ch, d, ts);
    let timeout = Duration::from_secs(state.cfg.notify_send_timeout_secs);
    match ch.kind.as_str() {
        "webhook" => {
            let url = cfg["url"].as_str().context("webhook url missing")?;
            let payload = payload(cfg["format"].as_str().unwrap_or("json"), full, ts);
            let bytes = serde_json::to_vec(&payload)?;
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let mut req = client
                .post(url)
                .header("Content-Type", "application/json")
                .header("X-Drover-Delivery", &d.id);
            if let Some(key) = secret(state, ch)? {
                req = req.header("X-Drover-Signature", signature(&key, &bytes));
            }
            let resp = req.body(bytes).send().await.map_err(|e| {
                // Without the URL's query (it may carry a receiver's token).
                anyhow::anyhow!("webhook not reached: {}", e.without_url())
            })?;
            if !resp.status().is_success() {
                bail!("webhook answered HTTP {}", resp.status());
            }
            Ok(())
        }
        "email" => email(state, ch, &cfg, ts, &d.id, timeout).await,
        "bus" => {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", d.id.as_str());
            state
                .js
                .publish_with_headers(
                    bus_schema::subjects::alert_notification(&ch.id),
                    headers,
                    full.to_string().into(),
                )
                .await?
                .await
                .context("the alert stream did not take the notification")?;
            Ok(())
        }
        other => bail!("unknown channel kind {other}"),
    }
}

async fn email(
    state: &AppState,
    ch: &channel::Model,
    cfg: &Value,
    ts: &[alert_transition::Model],
    delivery_id: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    use lettre::{
        message::header::ContentType, transport::smtp::authentication::Credentials,
        AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    };
    let host = cfg["host"].as_str().context("email host missing")?;
    let port = cfg["port"].as_u64().unwrap_or(587) as u16;
    let mut msg = Message::builder()
        .from(cfg["from"].as_str().unwrap_or_default().parse()?)
        .subject(format!("[Drover] {}", title(ts)))
        .message_id(Some(format!("<{delivery_id}@drover>")))
        .header(ContentType::TEXT_PLAIN);
    for to in cfg["to"].as_array().into_iter().flatten() {
        msg = msg.to(to.as_str().unwrap_or_default().parse()?);
    }
    let msg = msg.body(format!(
        "{}\n\n{}\n\nDelivery {delivery_id} from channel {}.\n",
        title(ts),
        text(ts),
        ch.name
    ))?;
    let mut tr = match cfg["tls"].as_str().unwrap_or("starttls") {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
    }
    .port(port)
    .timeout(Some(timeout));
    if let (Some(user), Some(pass)) = (cfg["username"].as_str(), secret(state, ch)?) {
        tr = tr.credentials(Credentials::new(user.into(), pass));
    }
    tr.build()
        .send(msg)
        .await
        .map_err(|e| anyhow::anyhow!("SMTP {host}:{port}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, summary: &str, rule: &str) -> alert_transition::Model {
        alert_transition::Model {
            id: 1,
            alert_id: "a".into(),
            rule_id: "r".into(),
            rule_name: rule.into(),
            agent_id: None,
            hostname: Some(host.into()),
            target: "t".into(),
            state: "firing".into(),
            severity: "critical".into(),
            summary: summary.into(),
            labels: "{}".into(),
            at: 0,
            suppressed: None,
            dispatched_at: None,
        }
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        let ts = [t(
            "<!channel>",
            "see <https://evil.example|x> & more",
            "disk",
        )];
        let p = payload("slack", Value::Null, &ts);
        let text = p["text"].as_str().unwrap();
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
        assert!(text.contains("&amp; more"), "{text}");
    }

    #[test]
    fn teams_text_is_html_escaped_and_keeps_its_line_breaks() {
        let ts = [
            t("web-1", "<img src=x onerror=alert(1)>", "disk"),
            t("web-2", "ok", "disk"),
        ];
        let p = payload("teams", Value::Null, &ts);
        let text = p["text"].as_str().unwrap();
        assert!(!text.contains("<img"), "{text}");
        assert!(text.contains("&lt;img src=x"), "{text}");
        assert_eq!(text.matches("<br>").count(), 1, "{text}");
    }

    #[test]
    fn one_line_positions_hold_no_control_characters() {
        let ts = [t("web-1\nBcc: x@evil", "a\r\nb\tc", "disk\nSubject: x")];
        let title = title(&ts);
        assert!(!title.chars().any(char::is_control), "{title:?}");
        assert_eq!(title, "[FIRING] disk Subject: x");
        let text = text(&ts);
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
}
