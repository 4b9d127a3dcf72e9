//! The Releases page (`/releases`): the fleet's release key (fingerprint,
//! or how to configure one), the agent releases (version, channel,
//! platform, size, SHA-256, who published them when, notes, yank state and
//! reason) with a yank form for admins (sent through the API by `app.js`
//! with the CSRF header), and the `.deb`/`.rpm` packages install.sh
//! fetches. Its regions refresh live like the other pages. Reads
//! `agent_releases` and `releases`; writes nothing itself.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup};
use serde_json::Value;

use crate::agent_releases::{entity, store, views};
use crate::auth::{Principal, Role};
use crate::state::AppState;

use super::frame::{none, page, pill, time, unavailable};

fn size(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn key_card(key: &Value) -> Markup {
    html! {
        @match key["fingerprint"].as_str() {
            Some(f) => {
                p #release-key {
                    "Release key " code { (f) }
                    span.mut { " — agents and rootd install only releases it signed; the private half stays with the operator." }
                }
            }
            None => {
                p #release-key .warn {
                    "No release key is configured"
                    @if let Some(e) = key["error"].as_str() { " (" (e) ")" }
                    ": run " code { "drover releases keygen --out release.key" }
                    " on your own machine, set " code { "release_key" }
                    " in drover.toml to the public key it prints, and restart the control plane."
                }
            }
        }
    }
}

fn yank_form(r: &entity::Model) -> Markup {
    html! {
        form.inline-form.yank-form data-api=(format!("/api/v1/releases/{}/yank", r.version)) data-reload="1" {
            input type="hidden" name="platform" value=(r.platform);
            input name="reason" required maxlength=(store::MAX_REASON_CHARS) placeholder="why it must not be installed" size="18";
            button.danger.small { "Yank" }
            span.form-error {}
        }
    }
}

fn releases_table(who: &Principal, rows: &[entity::Model]) -> Markup {
    html! {
        @if rows.is_empty() {
            div.empty.small {
                "No agent releases yet. Publish one with "
                code { "drover releases publish ./drover-agent --version X.Y.Z --key release.key" } "."
            }
        } @else {
            table.grid #agent-releases {
                thead { tr {
                    th { "Version" } th { "Channel" } th { "Platform" } th { "Size" } th { "SHA-256" }
                    th { "Published" } th { "Notes" } th { "State" }
                } }
                tbody {
                    @for r in rows {
                        tr data-release=(format!("{}-{}", r.version, r.platform)) {
                            td { b { (r.version) } }
                            td { (pill(&r.channel)) }
                            td { (r.platform) }
                            td.num { (size(r.size)) }
                            td.id title=(r.sha256) { (r.sha256.get(..12).unwrap_or(&r.sha256)) }
                            td { (time(r.published_at)) span.mut { " by " (r.published_by) } }
                            td.mut { @if r.notes.is_empty() { (none()) } @else { (r.notes) } }
                            td {
                                @if let Some(at) = r.yanked_at {
                                    (pill("yanked")) " " (time(at))
                                    span.mut { " by " (r.yanked_by.as_deref().unwrap_or("")) ": " }
                                    span.yank-reason { (r.yank_reason.as_deref().unwrap_or("")) }
                                } @else {
                                    (pill("available"))
                                    @if who.can(Role::Admin) { (yank_form(r)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn packages_table(list: &[crate::releases::Artifact]) -> Markup {
    html! {
        @if list.is_empty() {
            div.empty.small {
                "No packages. Publish them with " code { "drover releases publish FILE..." }
                " on the control-plane host, or put them in releases_dir."
            }
        } @else {
            table.grid.small #packages {
                thead { tr { th { "Name" } th { "Format" } th { "Arch" } th { "Version" } th { "Size" } th { "SHA-256" } } }
                tbody {
                    @for a in list {
                        tr {
                            td { (a.name) } td { (a.format) } td { (a.arch) } td { (a.version) }
                            td.num { (size(a.size as i64)) }
                            td.id title=(a.sha256) { (a.sha256.get(..12).unwrap_or(&a.sha256)) }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn releases_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let rows = match store::list(&state.db).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    // The packages come from the broker; the page still shows the agent
    // releases when it cannot answer.
    let packages = crate::releases::list(&state.js).await;
    let key = views::key(&state.cfg);
    let body = html! {
        section.card {
            h2 { "Agent releases" }
            p.mut {
                "Signed agent binaries for self-update. A yanked release is never offered again: "
                "an agent.update naming it is refused and rollouts of it stop."
            }
            (key_card(&key))
            div data-live="agent-releases" #agent-releases-wrap { (releases_table(&who, &rows)) }
        }
        section.card {
            h2 { "Packages" }
            p.mut { "The .deb and .rpm packages install.sh fetches for new hosts." }
            div data-live="packages" #packages-wrap {
                @match &packages {
                    Ok(list) => { (packages_table(list)) }
                    Err(e) => { div.empty.small { "The releases bucket is not answering: " (e.to_string()) } }
                }
            }
        }
    };
    page(&who, "releases", "Releases", body).into_response()
}
