//! The browser UI's static files, as the API serves them when it runs without the gateway, and
//! the browser-hardening headers: every UI response carries [`CONTENT_SECURITY_POLICY`],
//! `X-Frame-Options: DENY` and `Referrer-Policy: same-origin`; every response of the API (JSON
//! included) carries `X-Content-Type-Options: nosniff`. The gateway serves the same files itself
//! and sets the same headers (`infra/nginx/nginx.conf.template`, `location /`); the browser
//! tests check that the two answer alike.
//!
//! The policy costs the UI nothing: it is plain ES modules with no inline script, no inline
//! `<style>` and no style attributes in markup. Styles the scripts set go through the CSSOM
//! (`el.style.width = ...`, `h(tag, {style})` assigns `el.style`), which CSP does not govern, so
//! no `'unsafe-inline'` is needed. Images come from this origin and from `blob:` URLs (the seat
//! map draws a venue's SVG through an `<img>` of a blob); the WebSocket (`/ws`) and the waiting
//! room's event stream are same-origin, which `connect-src 'self'` covers. Nothing may frame a
//! page (`frame-ancestors 'none'`, and `X-Frame-Options` for older browsers).

use std::path::Path;

use axum::{
    Router,
    http::{HeaderValue, header},
    middleware::map_response,
    response::Response,
};
use tower_http::services::{ServeDir, ServeFile};

/// The UI's Content-Security-Policy; the gateway's copy must stay identical.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' blob:; connect-src 'self'; object-src 'none'; \
    base-uri 'self'; frame-ancestors 'none'; form-action 'self'";

/// The files under `web_root`, and `index.html` for every other path (client-side routes), with
/// the UI's security headers.
pub fn files(web_root: &Path) -> Router {
    let files = ServeDir::new(web_root).fallback(ServeFile::new(web_root.join("index.html")));
    Router::new()
        .fallback_service(files)
        .layer(map_response(ui_headers))
}

async fn ui_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `X-Content-Type-Options: nosniff` on every response: a browser must never read an answer
/// (a JSON error echoing input, an organizer's SVG) as another type than it says.
pub async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
