//! Pages for agencies: who has read the agency's records, from the audit chain.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::page::{Chrome, render, when};
use super::{PageError, Visitor, Web};

const LIST_ACCESS_TO_MY_RECORDS: &str = "/marr.v1.Audit/ListAccessToMyRecords";

/// Reads listed on one page.
const READS_PER_PAGE: usize = 50;

/// One read of the agency's records.
pub struct AccessLine {
    pub at: String,
    pub who: String,
    pub role: String,
    pub method: String,
    pub records: String,
    pub purpose: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    chrome: Chrome,
    agency: String,
    reads: Vec<AccessLine>,
    next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AccessQuery {
    #[serde(default)]
    after: u64,
}

/// Who read the agency's records, when, through which call, and why, oldest first.
pub async fn access(
    State(web): State<Web>,
    visitor: Visitor,
    Query(query): Query<AccessQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, LIST_ACCESS_TO_MY_RECORDS).await?;
    let page = web
        .app
        .access_to_my_records(&caller, None, None, query.after, READS_PER_PAGE)
        .await;
    let page = web
        .app
        .conclude(&caller, page)
        .await
        .map_err(|status| PageError::new(status, &visitor))?;
    let reads = page
        .events
        .iter()
        .map(|event| AccessLine {
            at: when(event.at),
            who: event.principal.clone(),
            role: event.role.to_string(),
            method: event
                .method
                .rsplit('/')
                .next()
                .unwrap_or(&event.method)
                .to_string(),
            records: event
                .records
                .iter()
                .map(|r| r.local_ref.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            purpose: event.purpose.clone(),
            outcome: event.outcome.clone(),
        })
        .collect();
    Ok(render(&AccessPage {
        chrome: Chrome::of(&visitor),
        agency: visitor
            .principal
            .agency
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        reads,
        next: page
            .next_after
            .map(|after| format!("/records/access?after={after}")),
    }))
}
