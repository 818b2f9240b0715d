//! Reading the alert log, and the signals watchers wait on.

use tokio::sync::{oneshot, watch};

use super::keyspace::{AlertLog, Keyspace, Log};
use super::writer::Command;
use super::{Store, StoreError};
use crate::domain::alert::{Alert, AlertFilter, Involved};
use crate::domain::{RecordKey, Revision, Scope};

/// One stretch of the alert log, as one asker sees it.
#[derive(Debug, Clone, Default)]
pub struct AlertScan {
    /// The alerts the asker may see and asked for, trimmed to its places, in order.
    pub alerts: Vec<Alert>,
    /// Sequence of the last alert looked at (where the stretch began, when there was none).
    pub examined: u64,
    /// Sequence of the last alert looked at that reaches the asker's places.
    pub reached: Option<u64>,
}

/// A page of alerts for one asker.
#[derive(Debug, Clone, Default)]
pub struct AlertPage {
    pub alerts: Vec<Alert>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<u64>,
    /// See [`Store::newest_alert_reaching`].
    pub head: u64,
}

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
            .engine
            .range(&start, &AlertLog::key(&u64::MAX))
            .take(limit)
            .map(|entry| {
                let (_, value) = entry?;
                Ok(postcard::from_bytes(&value)?)
            })
            .collect()
    }

    /// Up to `examine` durable alerts after `after` and no further than `until`, as someone
    /// whose places are `scope` sees them through `filter`: only the alerts that reach the
    /// scope (narrowed to the filter's place, if any), trimmed to it, and then only those
    /// the filter asks for. Stops early once `found` alerts are in hand. Blocking: it reads
    /// the log.
    pub fn scan_alerts(
        &self,
        scope: &Scope,
        filter: &AlertFilter,
        after: u64,
        until: u64,
        examine: usize,
        found: usize,
    ) -> Result<AlertScan, StoreError> {
        let mut scan = AlertScan {
            alerts: Vec::new(),
            examined: after,
            reached: None,
        };
        if after >= until {
            return Ok(scan);
        }
        let chunk = self.alerts_after(after, examine)?;
        let directory = self.shared.read_directory();
        let geography = &directory.geography;
        let seen_through = match filter.place {
            Some(place) => scope.narrowed_to(geography, place),
            None => scope.clone(),
        };
        for alert in chunk.into_iter().take_while(|a| a.sequence <= until) {
            scan.examined = alert.sequence;
            if !alert.reaches(scope, geography) {
                continue;
            }
            scan.reached = Some(alert.sequence);
            let seen = alert.seen_from(&seen_through, geography, |alert| self.involved(alert))?;
            if let Some(seen) = seen.filter(|seen| filter.matches(seen)) {
                scan.alerts.push(seen);
                if scan.alerts.len() >= found {
                    break;
                }
            }
        }
        Ok(scan)
    }

    /// A page of the alerts someone whose places are `scope` may see and `filter` asks for,
    /// after `after`, at most `limit`, with where the next page starts and the head to resume
    /// from. No page reads more than the store's page read limit of alerts: a board whose
    /// alerts are rare among many answers a short page that goes on where it stopped.
    /// Blocking: it reads the log.
    pub fn list_alerts(
        &self,
        scope: &Scope,
        filter: &AlertFilter,
        after: u64,
        limit: usize,
    ) -> Result<AlertPage, StoreError> {
        let durable = self.alert_head();
        let budget = self.shared.page_read_limit as u64;
        let mut alerts = Vec::new();
        let mut cursor = after;
        let mut next = None;
        while cursor < durable {
            if cursor - after >= budget {
                next = Some(cursor);
                break;
            }
            let examine = (after + budget - cursor).min(1024) as usize;
            let scan = self.scan_alerts(
                scope,
                filter,
                cursor,
                durable,
                examine,
                limit - alerts.len(),
            )?;
            if scan.examined == cursor {
                break;
            }
            cursor = scan.examined;
            alerts.extend(scan.alerts);
            if alerts.len() >= limit {
                next = alerts.last().map(|a| a.sequence);
                break;
            }
        }
        let newest_listed = alerts.last().map_or(after, |a| a.sequence);
        let head = self
            .newest_alert_reaching(scope, after, durable)?
            .max(newest_listed);
        Ok(AlertPage { alerts, next, head })
    }

    /// The sequence of the newest durable alert up to `until` that reaches `scope`, or `after`
    /// when none after it does. This is the head a board hears: it may resume from it without
    /// missing anything, and it moves only with alerts in its own places, so it says nothing
    /// of how much happens elsewhere. Blocking: it reads the log backwards from `until`, at
    /// most the store's page read limit of alerts; when those hold none of the board's, it
    /// answers `after`, which is never past an alert the board has not seen (at worst a
    /// watch from it sends again alerts already listed, never misses one).
    pub fn newest_alert_reaching(
        &self,
        scope: &Scope,
        after: u64,
        until: u64,
    ) -> Result<u64, StoreError> {
        if after >= until {
            return Ok(after);
        }
        let directory = self.shared.read_directory();
        let (from, to) = (
            AlertLog::key(&after.saturating_add(1)),
            AlertLog::key(&until.saturating_add(1)),
        );
        let reads = self.shared.page_read_limit;
        for entry in self.shared.engine.range(&from, &to).rev().take(reads) {
            let (_, value) = entry?;
            let alert: Alert = postcard::from_bytes(&value)?;
            if alert.reaches(scope, &directory.geography) {
                return Ok(alert.sequence);
            }
        }
        Ok(after)
    }

    /// The records an alert names, each as it stood when the alert was raised.
    fn involved(&self, alert: &Alert) -> Result<Vec<Involved>, StoreError> {
        let mut involved = Vec::with_capacity(alert.records.len());
        for key in &alert.records {
            if let Some(revision) = self.revision_at(key, alert.raised_by)? {
                involved.push(Involved {
                    key: key.clone(),
                    sequence: revision.sequence,
                    place: revision.record.place,
                    severity: revision.record.severity,
                    client_group: revision.record.client_group,
                });
            }
        }
        Ok(involved)
    }

    /// A record's latest revision written at or before log sequence `sequence`.
    pub fn revision_at(
        &self,
        key: &RecordKey,
        sequence: u64,
    ) -> Result<Option<Revision>, StoreError> {
        let mut next = Log::latest(&*self.shared.engine, key)?;
        while let Some(revision) = next {
            if revision.sequence <= sequence {
                return Ok(Some(revision));
            }
            next = match revision.previous {
                Some(earlier) => {
                    Some(Log::get(&*self.shared.engine, &earlier)?.ok_or_else(|| {
                        StoreError::Corrupt(format!("log entry {earlier} of {key} is missing"))
                    })?)
                }
                None => None,
            };
        }
        Ok(None)
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

    /// Becomes true when the server begins to shut down.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.shared.draining.subscribe()
    }
}
