//! Releases of the public table: cut by the writer (on a schedule, or when an administrator
//! asks), stored frozen, listed, and checked against the log they were cut from.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::engine::Engine;
use super::keyspace::{Keyspace, ReleaseTables, Releases};
use super::writer::Command;
use super::{Shared, Store, StoreError};
use crate::domain::inspection::Inspection;
use crate::domain::release::{Release, ReleaseSchedule, ReleasedTable, release_tables};
use crate::domain::{Actor, PlaceCode, PlaceLevel};

/// A scheduled check: the schedule, and when it started (before the first release, a point
/// counts only if it passed after this, so a new register does not publish at once).
#[derive(Debug, Clone, Copy)]
pub struct Due {
    pub schedule: ReleaseSchedule,
    pub since: OffsetDateTime,
}

/// Where a release stands, as the writer fixed it between batches: the release (its table
/// count still 0), the counters at its sequence, and the release before it.
pub(crate) struct ReleasePoint {
    pub(super) release: Release,
    pub(super) counters: Inspection,
    pub(super) previous: Option<Release>,
}

impl Shared {
    /// Computes every table of a release at its point, with the previous release's tables and
    /// counters (replayed from the log at its sequence). Blocking, and off the writer.
    fn release_at(&self, point: ReleasePoint) -> Result<(Release, Vec<ReleasedTable>), StoreError> {
        let previous = match &point.previous {
            Some(last) => Some((
                tables_of(&*self.engine, last.number)?,
                self.counters_at(last.sequence)?,
            )),
            None => None,
        };
        let tables = {
            let directory = self.read_directory();
            release_tables(
                &directory.geography,
                &point.counters,
                previous
                    .as_ref()
                    .map(|(tables, counters)| (tables, counters)),
            )
        };
        let mut release = point.release;
        release.tables = tables.len() as u64;
        Ok((release, tables))
    }
}

/// Every table of one release, by (parent, level).
pub(super) fn tables_of(
    engine: &dyn Engine,
    release: u64,
) -> Result<BTreeMap<(PlaceCode, PlaceLevel), ReleasedTable>, StoreError> {
    ReleaseTables::of_release(engine, release)
        .map(|entry| entry.map(|((_, parent, level), table)| ((parent, level), table)))
        .collect()
}

impl Store {
    /// The register's clock, as the writer and the schedule read it.
    pub fn now(&self) -> OffsetDateTime {
        (self.shared.clock)()
    }

    /// Cuts a release of the public table now, at the writer's head, on an administrator's
    /// request; the audit chain records who asked.
    pub async fn cut_release(&self, actor: Actor) -> Result<Release, StoreError> {
        self.cut(None, Some(actor))
            .await?
            .ok_or_else(|| StoreError::Corrupt("the writer cut no release when asked".into()))
    }

    /// Cuts the release the schedule says is due, if any: the latest release point has passed
    /// since the last release (before the first, since `due.since`), including one that
    /// passed while the server was down. Answers the release cut.
    /// On a register several nodes serve, each keeps the schedule and the first to cut a
    /// release point cuts it; the others find it cut and answer `None`.
    pub async fn cut_scheduled_release(&self, due: Due) -> Result<Option<Release>, StoreError> {
        match self.cut(Some(due), None).await {
            Err(StoreError::Conflict(reason)) => {
                tracing::info!(%reason, "scheduled release already cut");
                Ok(None)
            }
            cut => cut,
        }
    }

    /// Cuts a release without stalling the writer: the writer fixes its point between batches
    /// (number, sequence, a copy of the counters), the tables are computed on a blocking
    /// thread, and the writer then writes the whole release in one batch. One cut at a time,
    /// so numbers stay gap-free; nothing is written until the tables are done, so a crash
    /// part-way leaves no part of a release.
    async fn cut(
        &self,
        schedule: Option<Due>,
        actor: Option<Actor>,
    ) -> Result<Option<Release>, StoreError> {
        let _one_at_a_time = self.shared.releasing.lock().await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::FixRelease { schedule, reply }).await?;
        let Some(point) = answer.await.map_err(|_| StoreError::Closed)?? else {
            return Ok(None);
        };
        let shared = Arc::clone(&self.shared);
        let (release, tables) = tokio::task::spawn_blocking(move || shared.release_at(point))
            .await
            .map_err(|e| {
                if e.is_cancelled() {
                    StoreError::Closed
                } else {
                    StoreError::Corrupt(format!("computing a release failed: {e}"))
                }
            })??;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::WriteRelease {
            release,
            tables,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?.map(Some)
    }

    /// Keeps the schedule: looks every `every` whether a release point has passed on the
    /// register's clock and cuts the release if so. Before the first release, only points
    /// after this call count. Runs until the writer stops or fails.
    pub async fn keep_release_schedule(
        &self,
        schedule: ReleaseSchedule,
        every: std::time::Duration,
    ) -> Result<(), StoreError> {
        let due = Due {
            schedule,
            since: self.now(),
        };
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match self.cut_scheduled_release(due).await {
                // The database out of reach (a failover): the next tick tries again.
                Err(error @ (StoreError::Unavailable(_) | StoreError::WriterFailed(_)))
                    if self.shared.engine.shared() =>
                {
                    tracing::warn!(%error, "scheduled release not cut; trying again");
                }
                Err(error) => return Err(error),
                Ok(_) => {}
            }
        }
    }

    /// Every release, oldest first.
    pub fn releases(&self) -> Result<Vec<Release>, StoreError> {
        Releases::scan_all(&*self.shared.engine)
            .map(|entry| entry.map(|(_, release)| release))
            .collect()
    }

    /// One release by number, or the latest when `number` is `None`.
    pub fn release(&self, number: Option<u64>) -> Result<Option<Release>, StoreError> {
        match number {
            Some(number) => Releases::get(&*self.shared.engine, &number),
            None => match Releases::scan_all(&*self.shared.engine).next_back() {
                Some(entry) => Ok(Some(entry?.1)),
                None => Ok(None),
            },
        }
    }

    /// The table of a release for the places of `level` under `parent`, exactly as frozen.
    pub fn release_table(
        &self,
        release: u64,
        parent: PlaceCode,
        level: PlaceLevel,
    ) -> Result<Option<ReleasedTable>, StoreError> {
        ReleaseTables::get(&*self.shared.engine, &(release, parent, level))
    }

    /// Recomputes every release from the log at its sequence (and the release before it,
    /// as when it was cut) and compares it with what is stored. Answers what differs.
    /// Blocking: it replays the log once per release. The geography and agencies are read
    /// as they are now, so a release cut before a geography import may differ for that
    /// reason alone.
    pub fn verify_releases(&self) -> Result<Vec<String>, StoreError> {
        let engine = &*self.shared.engine;
        let mut problems = Vec::new();
        let mut previous: Option<(BTreeMap<(PlaceCode, PlaceLevel), ReleasedTable>, _)> = None;
        for release in self.releases()? {
            let stored = tables_of(engine, release.number)?;
            let counters = self.shared.counters_at(release.sequence)?;
            let recomputed: BTreeMap<(PlaceCode, PlaceLevel), ReleasedTable> = {
                let directory = self.shared.read_directory();
                release_tables(
                    &directory.geography,
                    &counters,
                    previous
                        .as_ref()
                        .map(|(tables, counters)| (tables, counters)),
                )
                .into_iter()
                .map(|table| ((table.parent.code, table.level), table))
                .collect()
            };
            if stored.len() as u64 != release.tables {
                problems.push(format!(
                    "release {} lists {} tables but holds {}",
                    release.number,
                    release.tables,
                    stored.len()
                ));
            }
            for (key, table) in &recomputed {
                match stored.get(key) {
                    Some(frozen) if frozen.table == table.table => {}
                    Some(_) => problems.push(format!(
                        "release {}: the table of {} under {} differs from the log at sequence {}",
                        release.number, key.1, key.0, release.sequence
                    )),
                    None => problems.push(format!(
                        "release {}: the table of {} under {} is missing",
                        release.number, key.1, key.0
                    )),
                }
            }
            for key in stored.keys().filter(|key| !recomputed.contains_key(key)) {
                problems.push(format!(
                    "release {}: holds a table of {} under {} the log does not give",
                    release.number, key.1, key.0
                ));
            }
            previous = Some((stored, counters));
        }
        Ok(problems)
    }
}
