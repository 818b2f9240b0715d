//! The stylesheet and scripts, built into the binary: pages need nothing from elsewhere.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Each asset by name, with its content type.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "marr.css",
        "text/css; charset=utf-8",
        include_str!("assets/marr.css"),
    ),
    (
        "alerts.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/alerts.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/map.js"),
    ),
];

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(asset, _, _)| *asset == name) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type)], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
