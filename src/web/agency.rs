//! Pages for agencies: their own records, and who has read them, from the audit chain.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::page::{Chrome, label, render, when};
use super::{PageError, Visitor, Web};

/// The caller's agency by name, as registered; its id if it has none.
fn agency_name(web: &Web, caller: &crate::auth::Caller) -> String {
    let own = caller.principal.agency.as_ref();
    web.app
        .agencies(caller)
        .into_iter()
        .find(|agency| Some(&agency.id) == own)
        .map(|agency| agency.name)
        .or_else(|| own.map(ToString::to_string))
        .unwrap_or_default()
}

const LIST_ACCESS_TO_MY_RECORDS: &str = "/marr.v1.Audit/ListAccessToMyRecords";
const GET_RECORD: &str = "/marr.v1.RiskRegister/GetRecord";

/// Records listed on one page.
const RECORDS_PER_PAGE: usize = 50;

/// One of the agency's records, as its latest revision stands.
pub struct RecordLine {
    pub local_ref: String,
    pub revision: u32,
    pub subject: String,
    pub place: String,
    pub client_group: String,
    pub category: String,
    pub severity: String,
    pub status: String,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    chrome: Chrome,
    agency: String,
    records: Vec<RecordLine>,
    next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecordsQuery {
    /// The page starts after this local reference.
    #[serde(default)]
    after: Option<String>,
    /// Records per page, at most [`MAX_RECORDS_PER_PAGE`].
    #[serde(default)]
    page_size: Option<usize>,
}

/// The most records one page lists.
const MAX_RECORDS_PER_PAGE: usize = 200;

/// The agency's own records by reference, each as its latest revision stands; the listing is
/// a read of those records, recorded as one.
pub async fn records(
    State(web): State<Web>,
    visitor: Visitor,
    Query(query): Query<RecordsQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_RECORD).await?;
    let page_size = query
        .page_size
        .unwrap_or(RECORDS_PER_PAGE)
        .clamp(1, MAX_RECORDS_PER_PAGE);
    let page = web
        .app
        .own_records(&caller, query.after.as_deref(), page_size);
    let (records, next) = visitor.conclude(&web, &caller, page).await?;
    Ok(render(&RecordsPage {
        chrome: Chrome::of(&visitor),
        agency: agency_name(&web, &caller),
        records: records
            .iter()
            .map(|revision| {
                let record = &revision.record;
                RecordLine {
                    local_ref: record.key.local_ref.to_string(),
                    revision: revision.revision,
                    subject: record.subject.map(|s| s.to_string()).unwrap_or_default(),
                    place: record.place.to_string(),
                    client_group: label(record.client_group),
                    category: label(record.category),
                    severity: label(record.severity),
                    status: label(record.status),
                    updated: when(record.source_updated_at),
                }
            })
            .collect(),
        next: next.map(|key| {
            format!(
                "/records?{}",
                serde_urlencoded::to_string([
                    ("after", key.local_ref.as_str()),
                    ("page_size", &page_size.to_string()),
                ])
                .unwrap_or_default()
            )
        }),
    }))
}

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
    let page = visitor.conclude(&web, &caller, page).await?;
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
        agency: agency_name(&web, &caller),
        reads,
        next: page
            .next_after
            .map(|after| format!("/records/access?after={after}")),
    }))
}
