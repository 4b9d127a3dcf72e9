//! What each rule kind's `params` may say: the typed [`Condition`] the
//! evaluator runs, read from a rule's kind and params JSON with a clear
//! error for anything else (form text such as `threshold=90` is read as a
//! number). Owns the per-kind parameter checks; not storing rules
//! (`rules`) nor evaluating them (`conditions`, `evaluate`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::rules::{RuleError, KINDS, METRICS};

/// `>` or `<`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = "<")]
    Below,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Above => value > threshold,
            Op::Below => value < threshold,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Above => ">",
            Op::Below => "<",
        }
    }
}

/// A rule's condition, typed: what `evaluate` checks each round.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `{metric, op, threshold}`: a host's latest heartbeat metric.
    Metric {
        metric: String,
        op: Op,
        threshold: f64,
    },
    /// The host is `offline` (missed heartbeats).
    HostOffline,
    /// `{unit?}`: a watched unit (or that unit) not `active`.
    ServiceNotActive { unit: Option<String> },
    /// `{min_hosts, within_hours?}`: a job created in the last
    /// `within_hours` (default 24) with at least `min_hosts` failed commands.
    JobFailed { min_hosts: i64, within_hours: i64 },
    /// `{days, security_only?}`: updates known for at least `days` days.
    UpdatesPending { days: i64, security_only: bool },
    /// `{within_minutes?}`: a command or result refused for a security
    /// reason, or input dropped as malformed, in the last `within_minutes`
    /// (default 60).
    SecurityRefusal { within_minutes: i64 },
    /// An unresolved duplicate-identity (cloned host) conflict.
    IdentityConflict,
    /// The agent is below the minimum version or speaks another protocol.
    AgentOutdated,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricParams {
    metric: String,
    op: Op,
    threshold: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceParams {
    #[serde(default)]
    unit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobParams {
    min_hosts: i64,
    #[serde(default)]
    within_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatesParams {
    days: i64,
    #[serde(default)]
    security_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefusalParams {
    #[serde(default)]
    within_minutes: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Parameters whose values are numbers: a form's text (`threshold=90`) is
/// read as one, as is `security_only=true`.
const NUMERIC: &[&str] = &[
    "threshold",
    "min_hosts",
    "within_hours",
    "days",
    "within_minutes",
];

fn params_as<T: serde::de::DeserializeOwned>(
    kind: &str,
    p: &Value,
    want: &str,
) -> Result<T, RuleError> {
    let mut p = p.clone();
    if let Some(obj) = p.as_object_mut() {
        for (k, v) in obj.iter_mut() {
            let Some(t) = v.as_str().map(|t| t.trim().to_string()) else {
                continue;
            };
            if NUMERIC.contains(&k.as_str()) {
                if let Ok(n) = t.parse::<i64>() {
                    *v = Value::from(n);
                } else if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
                {
                    *v = Value::Number(n);
                }
            } else if k == "security_only" && (t == "true" || t == "false") {
                *v = Value::Bool(t == "true");
            }
        }
    }
    serde_json::from_value(p)
        .map_err(|e| RuleError::Invalid(format!("params of a {kind} rule: {e}; write {want}")))
}

impl Condition {
    /// Checks `params` (a JSON object; `null` is `{}`) for `kind`.
    pub fn parse(kind: &str, params: &Value) -> Result<Self, RuleError> {
        let empty = json!({});
        let p = if params.is_null() { &empty } else { params };
        if !p.is_object() {
            return Err(RuleError::Invalid("params must be a JSON object".into()));
        }
        let bad = |m: String| Err(RuleError::Invalid(m));
        Ok(match kind {
            "metric" => {
                let m: MetricParams = params_as(
                    kind,
                    p,
                    r#"{"metric": "disk_used_percent", "op": ">", "threshold": 90}"#,
                )?;
                if !METRICS.contains(&m.metric.as_str()) {
                    return bad(format!(
                        "metric {:?} is not known; use one of {}",
                        m.metric,
                        METRICS.join(", ")
                    ));
                }
                if !m.threshold.is_finite() {
                    return bad("threshold must be a finite number".into());
                }
                if m.metric.ends_with("_percent") && !(0.0..=100.0).contains(&m.threshold) {
                    return bad(format!(
                        "threshold of {} is a percentage: 0 to 100",
                        m.metric
                    ));
                }
                if m.threshold < 0.0 {
                    return bad("threshold must be 0 or more".into());
                }
                Condition::Metric {
                    metric: m.metric,
                    op: m.op,
                    threshold: m.threshold,
                }
            }
            "host_offline" => {
                params_as::<NoParams>(kind, p, "{}")?;
                Condition::HostOffline
            }
            "service_not_active" => {
                let s: ServiceParams = params_as(kind, p, r#"{"unit": "nginx.service"} or {}"#)?;
                // The same names watch lists and heartbeats use: `nginx`
                // is `nginx.service`, so the rule matches what hosts report.
                let unit = match s.unit.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
                    None => None,
                    Some(u) => {
                        let name = bus_schema::catalogue::parse_unit(u).map_err(|e| {
                            RuleError::Invalid(format!("{e} (e.g. nginx or nginx.service)"))
                        })?;
                        if name.is_template() {
                            return bad(format!(
                                "unit {u:?} is a template; name an instance (getty@tty1.service)"
                            ));
                        }
                        Some(name.full())
                    }
                };
                Condition::ServiceNotActive { unit }
            }
            "job_failed" => {
                let j: JobParams = params_as(kind, p, r#"{"min_hosts": 3}"#)?;
                if !(1..=1_000_000).contains(&j.min_hosts) {
                    return bad("min_hosts must be 1 or more".into());
                }
                let within_hours = j.within_hours.unwrap_or(24);
                if !(1..=24 * 365).contains(&within_hours) {
                    return bad("within_hours must be from 1 to 8760".into());
                }
                Condition::JobFailed {
                    min_hosts: j.min_hosts,
                    within_hours,
                }
            }
            "updates_pending" => {
                let u: UpdatesParams = params_as(kind, p, r#"{"days": 7, "security_only": true}"#)?;
                if !(0..=3650).contains(&u.days) {
                    return bad("days must be from 0 to 3650".into());
                }
                Condition::UpdatesPending {
                    days: u.days,
                    security_only: u.security_only,
                }
            }
            "security_refusal" => {
                let r: RefusalParams = params_as(kind, p, r#"{"within_minutes": 60} or {}"#)?;
                let within_minutes = r.within_minutes.unwrap_or(60);
                if !(1..=10_080).contains(&within_minutes) {
                    return bad("within_minutes must be from 1 to 10080".into());
                }
                Condition::SecurityRefusal { within_minutes }
            }
            "identity_conflict" => {
                params_as::<NoParams>(kind, p, "{}")?;
                Condition::IdentityConflict
            }
            "agent_outdated" => {
                params_as::<NoParams>(kind, p, "{}")?;
                Condition::AgentOutdated
            }
            other => {
                return bad(format!(
                    "kind {other:?} is not known; use one of {}",
                    KINDS.join(", ")
                ))
            }
        })
    }

    /// The params as stored (defaults filled in).
    pub fn params_json(&self) -> Value {
        match self {
            Condition::Metric {
                metric,
                op,
                threshold,
            } => {
                json!({"metric": metric, "op": op.as_str(), "threshold": threshold})
            }
            Condition::ServiceNotActive { unit: Some(u) } => json!({ "unit": u }),
            Condition::JobFailed {
                min_hosts,
                within_hours,
            } => {
                json!({"min_hosts": min_hosts, "within_hours": within_hours})
            }
            Condition::UpdatesPending {
                days,
                security_only,
            } => {
                json!({"days": days, "security_only": security_only})
            }
            Condition::SecurityRefusal { within_minutes } => {
                json!({ "within_minutes": within_minutes })
            }
            _ => json!({}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_checked_per_kind_and_form_text_reads_as_numbers() {
        let c = Condition::parse(
            "metric",
            &json!({"metric": "disk_used_percent", "op": ">", "threshold": "90"}),
        )
        .unwrap();
        assert_eq!(
            c,
            Condition::Metric {
                metric: "disk_used_percent".into(),
                op: Op::Above,
                threshold: 90.0
            }
        );
        assert!(
            Condition::parse("metric", &json!({"metric": "x", "op": ">", "threshold": 1})).is_err()
        );
        assert!(Condition::parse("host_offline", &json!({"unit": "x"})).is_err());
        assert_eq!(
            Condition::parse(
                "updates_pending",
                &json!({"days": "7", "security_only": "true"})
            )
            .unwrap(),
            Condition::UpdatesPending {
                days: 7,
                security_only: true
            }
        );
        assert!(Condition::parse("nope", &json!({})).is_err());
        // Unit names are read as hosts report them: `nginx` is nginx.service.
        assert_eq!(
            Condition::parse("service_not_active", &json!({"unit": "nginx"})).unwrap(),
            Condition::ServiceNotActive {
                unit: Some("nginx.service".into())
            }
        );
        for bad in ["-x", "getty@.service", "a b", "../x"] {
            assert!(
                Condition::parse("service_not_active", &json!({ "unit": bad })).is_err(),
                "{bad}"
            );
        }
    }
}
