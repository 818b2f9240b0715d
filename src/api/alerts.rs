//! `marr.v1.Alerts`: boards watch alerts for their area, replayed from the alert log and then
//! live, with no gap and no duplicate.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::blocking;
use super::convert::{coded_list, coded_option, page_size, record_ref, timestamp};
use super::error::ApiError;
use crate::auth::Caller;
use crate::domain::alert::{Alert, AlertFilter};
use crate::domain::{AlertKind, ClientGroup, Scope, Severity, Vocabulary};
use crate::proto::alerts_server::Alerts;
use crate::proto::{self, watch_response::Event};
use crate::store::Store;

/// How often a watcher that has nothing to send hears the head sequence.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Alerts read from the log at a time while catching up.
const CATCH_UP: usize = 512;
/// Answers buffered per watcher; a slower watcher simply reads the log later.
const WATCH_BUFFER: usize = 64;

pub struct AlertsService {
    store: Store,
}

impl AlertsService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The caller's filter; its place, if any, must lie in the caller's places.
    fn filter(
        &self,
        caller: &Caller,
        filter: Option<proto::AlertFilter>,
    ) -> Result<AlertFilter, ApiError> {
        let Some(filter) = filter else {
            return Ok(AlertFilter::default());
        };
        let place = match filter.place_code.as_str() {
            "" => None,
            code => {
                let asked = self.store.place_code("filter.place_code", code)?;
                let code = self
                    .store
                    .place(asked)
                    .ok_or_else(|| ApiError::NotFound(format!("no place {asked}")))?
                    .place
                    .code;
                caller.sees(&self.store, code)?;
                caller.touched(|t| t.place = Some(code));
                Some(code)
            }
        };
        Ok(AlertFilter {
            place,
            client_groups: coded_list::<ClientGroup>(
                "filter.client_groups",
                &filter.client_groups,
            )?,
            kinds: coded_list::<AlertKind>("filter.kinds", &filter.kinds)?,
            min_severity: coded_option::<Severity>("filter.min_severity", filter.min_severity)?,
        })
    }
}

pub fn alert_to_proto(alert: &Alert) -> proto::Alert {
    proto::Alert {
        sequence: alert.sequence,
        kind: alert.kind.number(),
        severity: alert.severity.number(),
        place_code: alert.place.to_string(),
        client_group: alert.client_group.map_or(0, |g| g.number()),
        records: alert.records.iter().map(record_ref).collect(),
        agency_ids: alert.agencies.iter().map(ToString::to_string).collect(),
        place_codes: alert.places.iter().map(ToString::to_string).collect(),
        subject_key: alert.subject.map(|s| s.to_string()).unwrap_or_default(),
        raised_by_sequence: alert.raised_by,
        raised_at: Some(timestamp(alert.raised_at)),
        detail: alert.detail.clone(),
    }
}

type Answer = Result<proto::WatchResponse, Status>;

/// Counts an open watch stream for as long as it lives.
struct Watching;

impl Watching {
    fn start() -> Self {
        metrics::gauge!(crate::telemetry::WATCHERS).increment(1.0);
        Self
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::WATCHERS).decrement(1.0);
    }
}

/// What one watcher may see and asked for.
#[derive(Clone)]
struct Watch {
    scope: Scope,
    filter: AlertFilter,
}

/// Feeds one watcher: every durable alert after `cursor` from the log, those it may see sent
/// as it may see them, then waits for the head to move. It never holds more than a few
/// answers, so a slow watcher costs the writer nothing; it reads the log again when it catches
/// up. Heartbeats carry the newest alert in the watcher's places that it has been brought
/// past, never the log's own head, so a board hears nothing of other areas' alerts.
async fn feed(store: Store, mut cursor: u64, watch: Watch, out: mpsc::Sender<Answer>) {
    let _watching = Watching::start();
    let mut head = store.subscribe_alerts();
    let mut draining = store.draining();
    let mut quiet_since = tokio::time::Instant::now();
    let mut reached = cursor;
    loop {
        if *draining.borrow_and_update() {
            let _ = out
                .send(Err(Status::unavailable(
                    "the server is shutting down; resume from your last sequence",
                )))
                .await;
            return;
        }
        // Only alerts up to the published head are durable.
        let durable = *head.borrow_and_update();
        metrics::histogram!(crate::telemetry::WATCHER_LAG)
            .record(durable.saturating_sub(cursor) as f64);
        while cursor < durable {
            let (reader, looking) = (store.clone(), watch.clone());
            let scan = blocking(move || {
                reader.scan_alerts(
                    &looking.scope,
                    &looking.filter,
                    cursor,
                    durable,
                    CATCH_UP,
                    usize::MAX,
                )
            })
            .await;
            let scan = match scan {
                Ok(scan) => scan,
                Err(error) => {
                    let _ = out.send(Err(error.into())).await;
                    return;
                }
            };
            if scan.examined == cursor {
                break;
            }
            cursor = scan.examined;
            reached = reached.max(scan.reached.unwrap_or(0));
            for alert in &scan.alerts {
                let event = Event::Alert(alert_to_proto(alert));
                if out
                    .send(Ok(proto::WatchResponse { event: Some(event) }))
                    .await
                    .is_err()
                {
                    return;
                }
                quiet_since = tokio::time::Instant::now();
            }
        }
        tokio::select! {
            moved = head.changed() => {
                if moved.is_err() {
                    return;
                }
            }
            _ = draining.changed() => {}
            _ = tokio::time::sleep_until(quiet_since + HEARTBEAT) => {
                let beat = Event::Heartbeat(proto::Heartbeat { head_sequence: reached });
                if out.send(Ok(proto::WatchResponse { event: Some(beat) })).await.is_err() {
                    return;
                }
                quiet_since = tokio::time::Instant::now();
            }
            _ = out.closed() => return,
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Answer> + Send>>;

#[tonic::async_trait]
impl Alerts for AlertsService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<proto::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let filter = self.filter(&caller, request.filter)?;
        let scope = caller.scope();
        let from = request.from_sequence;
        // Any cursor is taken: refusing one ahead of the log would let a board find the
        // log's head, which counts other areas' alerts, by trying cursors. A cursor ahead of
        // the log is simply waited past; a cursor saved before the board's places changed
        // still resumes.
        let (out, answers) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(feed(self.store.clone(), from, Watch { scope, filter }, out));
        Ok(Response::new(Box::pin(ReceiverStream::new(answers))))
    }

    async fn list_alerts(
        &self,
        request: Request<proto::ListAlertsRequest>,
    ) -> Result<Response<proto::ListAlertsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let filter = self.filter(&caller, request.filter)?;
        let page_size = page_size(request.page_size).map_err(ApiError::from)?;
        let (store, scope) = (self.store.clone(), caller.scope());
        let after = request.after_sequence;
        let page = blocking(move || store.list_alerts(&scope, &filter, after, page_size)).await?;
        caller.touched(|t| {
            t.records = page
                .alerts
                .iter()
                .flat_map(|a| a.records.iter().cloned())
                .collect();
        });
        Ok(Response::new(proto::ListAlertsResponse {
            alerts: page.alerts.iter().map(alert_to_proto).collect(),
            next_after_sequence: page.next.unwrap_or(0),
            head_sequence: page.head,
        }))
    }
}
