//! Signing in with a token and out again. Both are recorded in the audit chain; a failed
//! sign-in is a refusal like any other, and attempts from one address are limited.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page::{Chrome, render};
use super::session::{random_token, tokens_match};
use super::{PageError, Visitor, Web};
use crate::domain::{Access, Actor, Role};

/// The method name sign-ins and sign-outs are recorded under (the web's own, not a gRPC one).
pub const SIGN_IN: &str = "/marr.web/SignIn";
pub const SIGN_OUT: &str = "/marr.web/SignOut";

/// The cookie that carries the sign-in form's token before there is a session.
const SIGN_IN_COOKIE: &str = "marr-sign-in";

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    csrf: String,
    error: Option<String>,
    /// The browser presented a client certificate under mutual TLS: it may sign in with it.
    with_certificate: bool,
}

/// The sign-in form, with a fresh token in a cookie and in the form: a post must carry both.
fn sign_in_page(web: &Web, visitor: &Visitor, error: Option<String>) -> Response {
    let csrf = random_token();
    let mut response = render(&SignInPage {
        chrome: Chrome::of(visitor),
        csrf: csrf.clone(),
        error,
        with_certificate: visitor.certificate.is_some(),
    });
    set_cookie(
        &mut response,
        &format!(
            "{SIGN_IN_COOKIE}={csrf}; {}; Max-Age=3600",
            web.cookie_attributes()
        ),
    );
    response
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

pub async fn form(State(web): State<Web>, visitor: Visitor) -> Response {
    if visitor.session.is_some() {
        return Redirect::to("/").into_response();
    }
    sign_in_page(&web, &visitor, None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    /// `certificate` to sign in with the client certificate presented under mutual TLS.
    #[serde(default)]
    with: String,
}

pub async fn sign_in(
    State(web): State<Web>,
    visitor: Visitor,
    headers: axum::http::HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let refuse = |reason: &str| {
        let mut access = Access::by(Actor::new(
            format!("unidentified caller from {}", visitor.address),
            Role::Public,
            SIGN_IN,
        ));
        access.outcome = format!("Unauthenticated: {reason}");
        access
    };
    let planted = super::cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !tokens_match(planted, &form.csrf) {
        let status = tonic::Status::permission_denied(
            "the sign-in form has expired or did not come from this service; open it again",
        );
        web.app
            .trail()
            .record_refusal(&visitor.address, refuse(status.message()), &status)
            .await;
        return PageError::new(status, &visitor).into_response();
    }
    let limited = visitor
        .address
        .parse()
        .is_ok_and(|ip| web.sign_ins.check_key(&ip).is_err());
    if limited {
        let status = tonic::Status::resource_exhausted(
            "too many sign-in attempts from this address; wait a minute and try again",
        );
        web.app
            .trail()
            .record_refusal(&visitor.address, refuse(status.message()), &status)
            .await;
        return PageError::new(status, &visitor).into_response();
    }
    let principal = match (form.with.as_str(), &visitor.certificate) {
        ("certificate", Some(certificate)) => web.identities.by_certificate(certificate),
        ("certificate", None) => None,
        _ => web.identities.by_token(form.token.trim()),
    };
    let Some(principal) = principal else {
        let status = tonic::Status::unauthenticated(if form.with == "certificate" {
            "the client certificate does not name a known principal"
        } else {
            "the token is not known"
        });
        web.app
            .trail()
            .record_refusal(&visitor.address, refuse(status.message()), &status)
            .await;
        let mut page = sign_in_page(
            &web,
            &visitor,
            Some(if form.with == "certificate" {
                "Your certificate does not name anyone this register knows".into()
            } else {
                "Enter a token this register knows".into()
            }),
        );
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return page;
    };
    // A session this browser already had ends: the new one is started under a fresh id.
    if let Some(old) = &visitor.session {
        web.sessions.end(&old.id);
    }
    let session = web.sessions.start(principal);
    let mut access = Access::by(Actor::new(
        session.principal.name.clone(),
        session.principal.role,
        SIGN_IN,
    ));
    access.outcome = format!("OK: signed in to the web from {}", visitor.address);
    if let Err(status) = web.app.trail().record_read(access).await {
        web.sessions.end(&session.id);
        return PageError::new(status, &visitor).into_response();
    }
    let mut response = Redirect::to("/").into_response();
    set_cookie(
        &mut response,
        &format!(
            "{}={}; {}",
            web.session_cookie(),
            session.id,
            web.cookie_attributes()
        ),
    );
    set_cookie(
        &mut response,
        &format!("{SIGN_IN_COOKIE}=; {}; Max-Age=0", web.cookie_attributes()),
    );
    response
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(web): State<Web>,
    visitor: Visitor,
    Form(form): Form<SignOutForm>,
) -> Result<Response, PageError> {
    visitor.check_form(&form.csrf)?;
    if let Some(session) = visitor
        .session
        .as_ref()
        .and_then(|s| web.sessions.end(&s.id))
    {
        let mut access = Access::by(Actor::new(
            session.principal.name.clone(),
            session.principal.role,
            SIGN_OUT,
        ));
        access.outcome = "OK: signed out".into();
        // The session has ended whether or not the event is written; a failure is logged.
        if let Err(status) = web.app.trail().record_read(access).await {
            tracing::error!(message = status.message(), "cannot record a sign-out");
        }
    }
    let mut response = Redirect::to("/").into_response();
    set_cookie(
        &mut response,
        &format!(
            "{}=; {}; Max-Age=0",
            web.session_cookie(),
            web.cookie_attributes()
        ),
    );
    Ok(response)
}
