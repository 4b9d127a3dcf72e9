//! The "Signing keys" card on the Security page: per kind of key (command,
//! release) the current generation and fingerprint, the overlap end, how
//! many approved hosts hold the current key and which do not yet, and each
//! generation with the hosts holding it. Renders `keys::view::overview`;
//! rotating is `drover keys rotate` (the API), not a button here.

use maud::{html, Markup};
use serde_json::Value;

use super::frame::{short, time};

/// The card for `v` (the shape of `GET /api/v1/keys`).
pub(super) fn card(v: &Value) -> Markup {
    let s = |x: &Value| x.as_str().unwrap_or("").to_string();
    html! {
        section.card #signing-keys {
            h2 { "Signing keys" }
            p class="mut" {
                "Rotate with " code { "drover keys rotate --which command|release --overlap 24h" }
                ". Hosts accept the old key until the overlap ends, then only the new one."
            }
            @for kind in ["command", "release"] {
                @let k = &v[kind];
                h3 { (kind) " key" }
                @if k.is_null() {
                    p class="mut" { "No release key configured (" code { "release_key" } " in drover.toml)." }
                } @else {
                    table.kv {
                        tr { th { "Generation" } td.num { (k["generation"].to_string()) } }
                        tr { th { "Fingerprint" } td.id { (s(&k["fingerprint"])) } }
                        tr {
                            th { "Overlap" }
                            td {
                                @if k["overlap_active"].as_bool() == Some(true) {
                                    "old key accepted until " (time(k["overlap_end_ms"].as_i64().unwrap_or(0)))
                                } @else {
                                    "none"
                                }
                            }
                        }
                        tr {
                            th { "Hosts holding it" }
                            td.holding { (k["hosts_with_current"].to_string()) " of " (k["hosts_total"].to_string()) }
                        }
                    }
                    table.grid {
                        thead { tr { th { "Generation" } th { "Fingerprint" } th { "Made" } th { "By" } th { "Hosts holding" } } }
                        tbody {
                            @for g in k["generations"].as_array().into_iter().flatten() {
                                tr {
                                    td.num { (g["generation"].to_string()) }
                                    td.id { (s(&g["fingerprint"])) }
                                    td { @if g["created_at"].as_i64().unwrap_or(0) > 0 { (time(g["created_at"].as_i64().unwrap_or(0))) } @else { "pinned at install" } }
                                    td { (s(&g["created_by"])) }
                                    td.num { (g["hosts_holding"].to_string()) }
                                }
                            }
                        }
                    }
                    @let behind: Vec<&Value> = k["hosts"].as_array().into_iter().flatten().filter(|h| h["holds_current"].as_bool() != Some(true)).collect();
                    @if !behind.is_empty() {
                        p { "Not holding the current key yet:" }
                        ul.plain {
                            @for h in behind {
                                @let id = h["id"].as_str().unwrap_or("");
                                li { a href=(format!("/agents/{id}")) { (s(&h["hostname"])) } " " span.id { (short(id)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
