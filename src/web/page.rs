//! What every page shares: the header and menu for the visitor's role, rendering, the one
//! mapping from a refusal to an HTTP status and an error page, and number and word formats.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use tonic::Code;
use tonic_types::StatusExt;

use super::Visitor;
use crate::domain::{Role, Vocabulary};

/// One link in the header's menu.
#[derive(Debug, Clone)]
pub struct NavLink {
    pub href: String,
    pub text: &'static str,
}

/// The header: who is signed in, the menu for their role, and the token sign-out posts.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub who: Option<String>,
    pub csrf: String,
    pub nav: Vec<NavLink>,
}

impl Chrome {
    pub fn of(visitor: &Visitor) -> Self {
        let link = |href: &str, text| NavLink {
            href: href.to_string(),
            text,
        };
        let principal = &visitor.principal;
        let mut nav = Vec::new();
        match principal.role {
            Role::Inspector => {
                nav.extend(
                    principal
                        .places
                        .first()
                        .map(|p| link(&format!("/places/{p}"), "Place")),
                );
                nav.push(link("/subjects", "Follow a subject"));
                nav.push(link("/snapshots", "Snapshots"));
            }
            Role::Board => {
                nav.extend(
                    principal
                        .places
                        .first()
                        .map(|p| link(&format!("/places/{p}"), "Place")),
                );
                nav.push(link("/alerts", "Alerts"));
            }
            Role::Agency => {
                nav.push(link("/records", "Our records"));
                nav.push(link("/records/access", "Who read our records"));
            }
            Role::Admin | Role::Public => {}
        }
        nav.push(link("/releases", "Published figures"));
        nav.push(link("/reviews", "Reviews"));
        nav.push(link("/lessons", "Lessons"));
        Self {
            who: visitor
                .session
                .as_ref()
                .map(|_| format!("{} ({})", principal.name, principal.role)),
            csrf: visitor
                .session
                .as_ref()
                .map(|s| s.csrf.clone())
                .unwrap_or_default(),
            nav,
        }
    }
}

/// Renders a page, or the error page if the template fails.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sorry, there is a problem with the service.",
            )
                .into_response()
        }
    }
}

/// A refusal or failure, as a page.
#[derive(Debug)]
pub struct PageError {
    status: tonic::Status,
    chrome: Chrome,
    signed_in: bool,
}

impl PageError {
    pub fn new(status: tonic::Status, visitor: &Visitor) -> Self {
        Self {
            status,
            chrome: Chrome::of(visitor),
            signed_in: visitor.session.is_some(),
        }
    }
}

/// One field's problem, for the error summary.
#[derive(Debug, Clone)]
pub struct Problem {
    pub field: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    title: &'static str,
    message: String,
    problems: Vec<Problem>,
}

/// The HTTP status for a refusal in the contract's terms: one mapping for every page.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound | Code::Unimplemented => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn title(code: Code) -> &'static str {
    match http_status(code) {
        StatusCode::BAD_REQUEST => "There is a problem",
        StatusCode::UNAUTHORIZED => "Sign in to see this page",
        StatusCode::FORBIDDEN => "You cannot see this page",
        StatusCode::NOT_FOUND => "Page not found",
        StatusCode::CONFLICT => "This cannot be shown yet",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            "Sorry, the service is unavailable"
        }
        _ => "Sorry, there is a problem with the service",
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        // Someone not signed in is sent to sign in rather than shown a refusal.
        if self.status.code() == Code::Unauthenticated && !self.signed_in {
            return Redirect::to("/sign-in").into_response();
        }
        let problems = self
            .status
            .get_details_bad_request()
            .map(|bad| {
                bad.field_violations
                    .into_iter()
                    .map(|v| Problem {
                        field: v.field,
                        reason: v.description,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let page = ErrorPage {
            chrome: self.chrome,
            title: title(self.status.code()),
            message: self.status.message().to_string(),
            problems,
        };
        let mut response = render(&page);
        *response.status_mut() = http_status(self.status.code());
        response
    }
}

/// Any address the web front does not serve.
pub async fn not_found(visitor: Visitor) -> PageError {
    PageError::new(
        tonic::Status::not_found("no page at this address; check it, or start from the home page"),
        &visitor,
    )
}

/// A coded word as people read it: `child_protection_plan` → "Child protection plan".
pub fn label<V: Vocabulary>(value: V) -> String {
    let word = value.word().replace('_', " ");
    let mut letters = word.chars();
    letters.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(letters).collect()
    })
}

/// A moment as people read it on a page: `26 Nov 2026, 18:46 UTC`.
pub fn when(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
    );
    at.format(&format).unwrap_or_else(|_| at.to_string())
}

/// A date as people read it on a page: `1 May 2026`.
pub fn day(date: time::Date) -> String {
    let format = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
    date.format(&format).unwrap_or_else(|_| date.to_string())
}

/// A date as a form field holds it: `2026-05-01`.
pub fn iso_day(date: time::Date) -> String {
    crate::domain::record::iso_date(date)
}

/// The places at a level, as a heading names them: `county` → "Upper-tier authorities".
pub fn places_at(level: crate::domain::PlaceLevel) -> &'static str {
    use crate::domain::PlaceLevel::*;
    match level {
        Country => "Countries",
        Region => "Regions",
        County => "Upper-tier authorities",
        District => "Districts",
        Ward => "Wards",
        Lsoa => "Lower layer super output areas",
        PoliceForceArea => "Police force areas",
        CommunitySafetyPartnership => "Community safety partnerships",
        ClinicalCommissioningGroup => "Clinical commissioning groups",
        SubIcbLocation => "Sub-ICB locations",
        IntegratedCareBoard => "Integrated care boards",
    }
}

/// A count with thousands separators: 12345 → "12,345" (the charts' own format).
pub fn count(n: u64) -> String {
    crate::charts::format_number(n as f64, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClientGroup;

    #[test]
    fn words_and_counts_read_as_people_write_them() {
        assert_eq!(
            label(ClientGroup::ChildProtectionPlan),
            "Child protection plan"
        );
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(
            when(time::macros::datetime!(2026-11-06 18:46:39.27 UTC)),
            "6 Nov 2026, 18:46 UTC"
        );
        assert_eq!(day(time::macros::date!(2026 - 05 - 01)), "1 May 2026");
        assert_eq!(iso_day(time::macros::date!(2026 - 05 - 01)), "2026-05-01");
    }

    #[test]
    fn every_refusal_has_an_http_status_that_is_an_error() {
        for code in (1..=16).map(Code::from_i32) {
            assert!(http_status(code).is_client_error() || http_status(code).is_server_error());
        }
    }
}
