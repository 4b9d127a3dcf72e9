//! Scraping `GET /metrics` from a running stack and parsing it with a real
//! OpenMetrics parser: Python's `prometheus_client` (installed by
//! `scripts/test-deps/prometheus.sh`), the library Prometheus' own
//! ecosystem uses. Owns the parse; not what a test asserts.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::Stack;

/// Reads an exposition from stdin, prints `{family: {"type", "samples":
/// [[name, labels, value]]}}` as JSON; raises on anything malformed.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;

/// One parsed scrape.
pub struct Scrape {
    pub text: String,
    pub families: BTreeMap<String, Value>,
}

impl Scrape {
    /// The value of sample `name` whose labels include `labels`.
    pub fn value(&self, family: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let f = self.families.get(family)?;
        f["samples"].as_array()?.iter().find_map(|s| {
            let ok = s[0] == name && labels.iter().all(|(k, v)| s[1][k].as_str() == Some(v));
            ok.then(|| s[2].as_f64()).flatten()
        })
    }

    pub fn kind(&self, family: &str) -> Option<&str> {
        self.families.get(family)?["type"].as_str()
    }
}

/// The Python with `prometheus_client`: Debian's, where the package puts it.
fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Parses an exposition; panics with the parser's message when it is not
/// valid OpenMetrics text.
pub fn parse_exposition(text: &str) -> BTreeMap<String, Value> {
    let mut child = Command::new(python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (run scripts/test-deps/prometheus.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse (is python3-prometheus-client installed? \
         scripts/test-deps/prometheus.sh): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

impl Stack {
    /// `GET /metrics` with `token` (`None`: none): status and body.
    pub async fn metrics_raw(&self, token: Option<&str>) -> (u16, String) {
        let mut r = reqwest::Client::new().get(format!("{}/metrics", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `GET /metrics` with the admin token, parsed.
    pub async fn scrape(&self) -> Scrape {
        let (code, text) = self.metrics_raw(Some(&self.token)).await;
        assert_eq!(code, 200, "{text}");
        let families = parse_exposition(&text);
        Scrape { text, families }
    }

    /// A page (HTML) with the admin token: status and body.
    pub async fn page_text(&self, path: &str) -> (u16, String) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}
