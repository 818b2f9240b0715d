//! Reading the alert log, and the signals watchers wait on.

use tokio::sync::{oneshot, watch};

use super::keyspace::{AlertLog, Keyspace};
use super::writer::Command;
use super::{Store, StoreError};
use crate::domain::alert::{Alert, AlertFilter};

impl Store {
    /// Sequence of the last durable alert (0 when there is none).
    pub fn alert_head(&self) -> u64 {
        *self.shared.alert_head.borrow()
    }

    /// Wakes whenever the alert head moves; ends when the store closes.
    pub fn subscribe_alerts(&self) -> watch::Receiver<u64> {
        self.shared.alert_head.subscribe()
    }

    /// Up to `limit` alerts after sequence `after`, in order, matching or not.
    pub fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let start = AlertLog::key(&after.saturating_add(1));
        self.shared
            .tree
            .range(start..AlertLog::key(&u64::MAX))
            .take(limit)
            .map(|entry| {
                let (_, value) = entry?;
                Ok(postcard::from_bytes(&value)?)
            })
            .collect()
    }

    /// Whether an alert is one the filter asks for.
    pub fn alert_matches(&self, filter: &AlertFilter, alert: &Alert) -> bool {
        filter.matches(alert, &self.shared.read_directory().geography)
    }

    /// Matching durable alerts after `after`, in order, at most `limit`; the second value is
    /// where the next page starts, when there may be more.
    pub fn list_alerts(
        &self,
        filter: &AlertFilter,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Alert>, Option<u64>), StoreError> {
        let durable = self.alert_head();
        let mut found = Vec::new();
        let mut cursor = after;
        loop {
            let chunk: Vec<Alert> = self
                .alerts_after(cursor, 1024)?
                .into_iter()
                .take_while(|a| a.sequence <= durable)
                .collect();
            let Some(last) = chunk.last() else {
                return Ok((found, None));
            };
            cursor = last.sequence;
            for alert in chunk {
                if self.alert_matches(filter, &alert) {
                    found.push(alert);
                    if found.len() == limit {
                        let next = found.last().map(|a| a.sequence);
                        return Ok((found, next));
                    }
                }
            }
        }
    }

    /// Runs the staleness sweep now; answers how many alerts it raised.
    pub async fn sweep_stale(&self) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::SweepStale { reply }).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Tells open watch streams that the server is shutting down.
    pub fn begin_draining(&self) {
        self.shared.draining.send_replace(true);
    }

    /// The register's clock (the injected one in tests).
    pub fn now(&self) -> time::OffsetDateTime {
        (self.shared.clock)()
    }

    /// Becomes true when the server begins to shut down.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.shared.draining.subscribe()
    }
}
