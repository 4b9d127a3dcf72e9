//! Security headers on every response the server sends (pages, API,
//! downloads, errors and refusals of the gate and the rate limit alike):
//! a Content-Security-Policy without inline script or style, framing
//! refused, no referrer, no MIME sniffing, and HSTS only when the server
//! itself listens with HTTPS. It does not decide access (the gate does) and
//! does not limit rates ([`super::rate`]).

use axum::{
    extract::{Request, State},
    http::{header, HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

/// The policy: everything from this origin only, no inline script or style
/// (pages load `/ui/app.js` and `/ui/app.css`), no plugins, no `<base>`,
/// forms post only here, and no page may frame ours.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// HSTS for a server that listens with HTTPS: one year. Not sent over plain
/// HTTP (browsers ignore it there, and a plain server must stay reachable).
pub const HSTS: &str = "max-age=31536000";

/// Whether the server listens with HTTPS (then HSTS is sent).
#[derive(Clone, Copy, Debug)]
pub struct Tls(pub bool);

/// Middleware: adds the headers to a response that does not set them itself.
pub async fn security_headers(State(tls): State<Tls>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        h.entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if tls.0 {
        set(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    resp
}
