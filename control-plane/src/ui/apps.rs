//! The apps page (`/apps`): the catalogue's install forms. The installs
//! themselves go through the API; this page only renders.

use axum::{
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, PreEscaped};

use crate::auth::{Principal, Role};

use super::frame::page;

/// The install dialog (fixed markup; `app.js` fills it in).
const INSTALL_CARD: &str = "<section class=\"card\" id=\"install-card\" hidden><h2 id=\"install-title\"></h2><p class=\"mut\" id=\"install-desc\"></p>\
<form id=\"install-form\" class=\"runner\" autocomplete=\"off\"><div id=\"inputs\" class=\"fields\"></div>\
<div class=\"selector\"><label>Targets<select id=\"sel-mode\"><option value=\"all\">all approved agents</option><option value=\"hostname\">hostname pattern</option><option value=\"labels\">labels</option><option value=\"agents\">agent ids</option></select></label>\
<label id=\"sel-value-wrap\" hidden>Value<input id=\"sel-value\"></label><span class=\"preview\" id=\"preview\">…</span></div>\
<div class=\"row\"><button class=\"primary\" id=\"install\" type=\"submit\">Install</button><button type=\"button\" id=\"install-cancel\">Close</button><span class=\"form-error\"></span></div></form></section>";

pub(super) async fn apps_page(Extension(who): Extension<Principal>) -> Response {
    let body = html! {
        div #apps .apps data-can-install=(who.can(Role::Operator)) {
            div.empty.small { "Loading the catalogue…" }
        }
        (PreEscaped(INSTALL_CARD))
    };
    page(&who, "apps", "Apps", body).into_response()
}
