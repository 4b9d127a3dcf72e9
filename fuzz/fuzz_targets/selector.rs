//! Job selectors, in both forms that come from outside: the CLI text
//! (`label:env=prod,host:web-*`, even first byte) and the JSON of API bodies
//! and signed jobs (odd). A text selector that parses must print as text
//! and parse back equal, and matching against a host must finish (the
//! wildcard matcher is iterative). Which hosts exist is the control
//! plane's, not fuzzed here.
#![no_main]

use std::collections::BTreeMap;

use bus_schema::selector::{Selector, SelectorTarget};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

struct Host;

impl SelectorTarget for Host {
    fn agent_id(&self) -> &str {
        "UA"
    }
    fn hostname(&self) -> &str {
        "web-1.example.org"
    }
    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("env".into(), "prod".into())])
    }
    fn facts(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("os".into(), "Debian GNU/Linux 12".into());
        m.insert("os_id".into(), "debian".into());
        m.insert("kernel".into(), "6.1.0-18-amd64".into());
        m
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = drover_fuzz::split(data) else {
        return;
    };
    if which % 2 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let Ok(selector) = Selector::parse(text) else {
            return;
        };
        let _ = selector.matches(&Host);
        // What pages and the CLI show is what runs: the text form of a
        // parsed selector parses back to the same selector.
        let shown = selector.to_text();
        let back = Selector::parse(&shown)
            .unwrap_or_else(|e| panic!("{shown:?}, shown for {text:?}, does not parse: {e}"));
        assert_eq!(back, selector, "{text:?} is shown as {shown:?}");
    } else {
        // The JSON form may hold values the text form cannot (a comma), so
        // only its checks and matching are exercised.
        if let Some(s) = drover_fuzz::json::<Selector>(rest) {
            if s.check().is_ok() {
                let _ = s.matches(&Host);
            }
        }
    }
});
