//! Pages for safeguarding boards: the alerts raised in their area, live as server-sent events
//! from the alert log and as a history a page at a time. The live stream is the gRPC watch's
//! own feed: each event's id is its alert sequence, so a browser that reconnects with
//! `Last-Event-ID` (or a page reloaded with the last id it saw) resumes with no gap and no
//! repeat.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use super::page::{Chrome, label, render, when};
use super::{PageError, Visitor, Web};
use crate::app::alerts::{AlertsAsked, FeedEvent};
use crate::domain::alert::Alert;

const LIST_ALERTS: &str = "/marr.v1.Alerts/ListAlerts";
const WATCH: &str = "/marr.v1.Alerts/Watch";

/// Alerts listed on one page of the history.
const ALERTS_PER_PAGE: usize = 50;

/// An alert as a board reads it, on the page and in the live stream.
#[derive(Debug, Clone, Serialize)]
pub struct AlertLine {
    pub sequence: u64,
    pub kind: String,
    pub severity: String,
    pub place: String,
    pub raised_at: String,
    pub detail: String,
    pub agencies: usize,
}

impl AlertLine {
    fn of(web: &Web, alert: &Alert) -> Self {
        let place = web
            .app
            .places(&[alert.place])
            .into_iter()
            .flatten()
            .next()
            .map_or_else(
                || alert.place.to_string(),
                |p| format!("{} ({})", p.name, p.code),
            );
        Self {
            sequence: alert.sequence,
            kind: label(alert.kind),
            severity: label(alert.severity),
            place,
            raised_at: when(alert.raised_at),
            detail: alert.detail.clone(),
            agencies: alert.agencies.len(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertsQuery {
    /// The history starts after this alert sequence.
    #[serde(default)]
    after: u64,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    history: Vec<AlertLine>,
    next: Option<String>,
    /// The live stream starts after this sequence: the newest alert reaching the board's
    /// places when the page was drawn.
    live_after: u64,
}

/// The board's alerts: live ones arrive at the top as they are raised; the history below.
pub async fn alerts(
    State(web): State<Web>,
    visitor: Visitor,
    Query(query): Query<AlertsQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, LIST_ALERTS).await?;
    let page = web
        .app
        .list_alerts(
            &caller,
            AlertsAsked::default(),
            query.after,
            ALERTS_PER_PAGE,
        )
        .await;
    let page = visitor.conclude(&web, &caller, page).await?;
    Ok(render(&AlertsPage {
        chrome: Chrome::of(&visitor),
        history: page.alerts.iter().map(|a| AlertLine::of(&web, a)).collect(),
        next: page.next.map(|after| format!("/alerts?after={after}")),
        live_after: page.head,
    }))
}

#[derive(Debug, Clone, Deserialize)]
pub struct LiveQuery {
    #[serde(default)]
    after: u64,
}

/// How often an idle stream says it is alive, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The live alerts as server-sent events, after `Last-Event-ID` if the browser sends one
/// (it does when it reconnects), else after `?after=`. Each connection is a watch, admitted
/// and recorded as one.
pub async fn live(
    State(web): State<Web>,
    visitor: Visitor,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, WATCH).await?;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = resumed.unwrap_or(query.after);
    let feed = visitor.stream_permit(&web).and_then(|permit| {
        let feed = web.app.alert_feed(&caller, AlertsAsked::default(), after)?;
        Ok((permit, feed))
    });
    let (permit, feed) = visitor.conclude(&web, &caller, feed).await?;
    let events = feed
        .start()
        // The feed ends with an error when the server stops; the browser then reconnects
        // with the last id it saw.
        .take_while(Result::is_ok)
        .filter_map(move |event| {
            // The stream holds its place among the principal's open streams until it ends.
            let _held = &permit;
            match event {
                Ok(FeedEvent::Alert(alert)) => {
                    let line = AlertLine::of(&web, &alert);
                    serde_json::to_string(&line).ok().map(|data| {
                        Event::default()
                            .id(alert.sequence.to_string())
                            .event("alert")
                            .data(data)
                    })
                }
                Ok(FeedEvent::Heartbeat { reached }) => Some(
                    Event::default()
                        .id(reached.to_string())
                        .event("heartbeat")
                        .data(reached.to_string()),
                ),
                Err(_) => None,
            }
        })
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}
