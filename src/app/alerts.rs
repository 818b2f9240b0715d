//! Alerts: boards list and watch the alerts raised in their places, replayed from the alert
//! log and then live, with no gap and no duplicate. The feed is a stream of domain events, so
//! the gRPC watch and a web page's server-sent events serve the same one.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use super::{AppError, Application, blocking};
use crate::auth::Caller;
use crate::domain::alert::{Alert, AlertFilter};
use crate::domain::{AlertKind, ClientGroup, Scope, Severity};
use crate::store::{AlertPage, Store};

/// How often a watcher that has nothing to send hears how far it has been brought.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Alerts read from the log at a time while catching up.
const CATCH_UP: usize = 512;
/// Events buffered per watcher; a slower watcher simply reads the log later.
const WATCH_BUFFER: usize = 64;

/// Which alerts a board asked for, as a front read them: the place as named (empty for all
/// the board's places), the rest in the vocabulary.
#[derive(Debug, Clone, Default)]
pub struct AlertsAsked {
    pub place: String,
    /// Empty means every client group.
    pub client_groups: Vec<ClientGroup>,
    /// Empty means every kind.
    pub kinds: Vec<AlertKind>,
    pub min_severity: Option<Severity>,
}

/// One event of an alert feed.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// A durable alert the watcher may see, trimmed to its places.
    Alert(Alert),
    /// Nothing to send for a while: the newest alert reaching the watcher's places that it
    /// has been brought past, never the log's own head, so a board hears nothing of other
    /// areas' alerts. A cursor saved from it resumes without a gap.
    Heartbeat { reached: u64 },
}

/// A watch admitted and scoped but not yet started: it reads nothing until
/// [`AlertFeed::start`], so the watch is recorded before any alert is read.
pub struct AlertFeed {
    store: Store,
    scope: Scope,
    filter: AlertFilter,
    after: u64,
}

impl Application {
    /// The asked filter; its place, if any, must be known and lie in the caller's places.
    fn alert_filter(&self, caller: &Caller, asked: AlertsAsked) -> Result<AlertFilter, AppError> {
        let place = match asked.place.as_str() {
            "" => None,
            code => {
                let asked = self.store.place_code("filter.place_code", code)?;
                let code = self
                    .store
                    .place(asked)
                    .ok_or_else(|| AppError::NotFound(format!("no place {asked}")))?
                    .place
                    .code;
                caller.sees(&self.store, code)?;
                caller.touched(|t| t.place = Some(code));
                Some(code)
            }
        };
        Ok(AlertFilter {
            place,
            client_groups: asked.client_groups,
            kinds: asked.kinds,
            min_severity: asked.min_severity,
        })
    }

    /// One page of the alerts in the caller's places after the sequence `after`; every
    /// record the page names is noted for the audit event.
    pub async fn list_alerts(
        &self,
        caller: &Caller,
        asked: AlertsAsked,
        after: u64,
        page_size: usize,
    ) -> Result<AlertPage, AppError> {
        let filter = self.alert_filter(caller, asked)?;
        let (store, scope) = (self.store.clone(), caller.scope());
        let page = blocking(move || store.list_alerts(&scope, &filter, after, page_size)).await?;
        caller.touched(|t| {
            t.records = page
                .alerts
                .iter()
                .flat_map(|a| a.records.iter().cloned())
                .collect();
        });
        Ok(page)
    }

    /// A feed of the alerts in the caller's places after the sequence `after_sequence`.
    /// Any cursor is taken: refusing one ahead of the log would let a board find the log's
    /// head, which counts other areas' alerts, by trying cursors. A cursor ahead of the log
    /// is simply waited past; one saved before the board's places changed still resumes.
    pub fn alert_feed(
        &self,
        caller: &Caller,
        asked: AlertsAsked,
        after_sequence: u64,
    ) -> Result<AlertFeed, AppError> {
        Ok(AlertFeed {
            filter: self.alert_filter(caller, asked)?,
            scope: caller.scope(),
            store: self.store.clone(),
            after: after_sequence,
        })
    }
}

impl AlertFeed {
    /// Starts the feed: catch-up from the log, then live. The stream ends with
    /// [`AppError::Unavailable`] when the server stops (resume from the last sequence), and
    /// its producer stops as soon as the stream is dropped.
    pub fn start(self) -> impl Stream<Item = Result<FeedEvent, AppError>> + Send + 'static {
        let (out, events) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(feed(self, out));
        ReceiverStream::new(events)
    }
}

/// Counts an open feed for as long as it lives.
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

type Event = Result<FeedEvent, AppError>;

/// Feeds one watcher: every durable alert after its cursor from the log, those it may see
/// sent as it may see them, then waits for the head to move. It never holds more than a few
/// events, so a slow watcher costs the writer nothing; it reads the log again when it catches
/// up.
async fn feed(watch: AlertFeed, out: mpsc::Sender<Event>) {
    let _watching = Watching::start();
    let AlertFeed {
        store,
        scope,
        filter,
        after: mut cursor,
    } = watch;
    let looking = std::sync::Arc::new((scope, filter));
    let mut head = store.subscribe_alerts();
    let mut draining = store.draining();
    let mut quiet_since = tokio::time::Instant::now();
    let mut reached = cursor;
    loop {
        if *draining.borrow_and_update() {
            let _ = out
                .send(Err(AppError::Unavailable(
                    "the server is shutting down; resume from your last sequence".into(),
                )))
                .await;
            return;
        }
        // Only alerts up to the published head are durable.
        let durable = *head.borrow_and_update();
        metrics::histogram!(crate::telemetry::WATCHER_LAG)
            .record(durable.saturating_sub(cursor) as f64);
        while cursor < durable {
            let (reader, looking) = (store.clone(), std::sync::Arc::clone(&looking));
            let scan = blocking(move || {
                let (scope, filter) = &*looking;
                reader.scan_alerts(scope, filter, cursor, durable, CATCH_UP, usize::MAX)
            })
            .await;
            let scan = match scan {
                Ok(scan) => scan,
                Err(error) => {
                    let _ = out.send(Err(error)).await;
                    return;
                }
            };
            if scan.examined == cursor {
                break;
            }
            cursor = scan.examined;
            reached = reached.max(scan.reached.unwrap_or(0));
            for alert in scan.alerts {
                if out.send(Ok(FeedEvent::Alert(alert))).await.is_err() {
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
                if out.send(Ok(FeedEvent::Heartbeat { reached })).await.is_err() {
                    return;
                }
                quiet_since = tokio::time::Instant::now();
            }
            _ = out.closed() => return,
        }
    }
}
