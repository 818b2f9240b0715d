//! The start page, for everyone.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::page::{Chrome, render};
use super::{Visitor, Web};
use crate::domain::Role;

/// A place the visitor may open.
pub struct PlaceLink {
    pub code: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    signed_in: bool,
    role: Role,
    name: String,
    places: Vec<PlaceLink>,
}

pub async fn home(State(web): State<Web>, visitor: Visitor) -> Response {
    let principal = &visitor.principal;
    let places = web
        .app
        .store()
        .places(&principal.places)
        .into_iter()
        .zip(&principal.places)
        .map(|(place, code)| PlaceLink {
            code: code.to_string(),
            name: place.map_or_else(|| code.to_string(), |p| p.name),
        })
        .collect();
    render(&HomePage {
        chrome: Chrome::of(&visitor),
        signed_in: visitor.session.is_some(),
        role: principal.role,
        name: principal.name.clone(),
        places,
    })
}
