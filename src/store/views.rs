//! Reading the inspection projection: place views, comparisons, risk lists, subject trails and
//! snapshots, live or as of an earlier log sequence (replayed from the log).

use std::collections::BinaryHeap;

use super::keyspace::{ByPlace, Keyspace, Latest, Log, Snapshots};
use super::writer::Command;
use super::{Shared, Snapshot, SnapshotRequest, Store, StoreError};
use crate::domain::Actor;
use crate::domain::inspection::{Inspection, PlaceMeasure, PlaceView, ViewFilter, scan_view};
use crate::domain::neighbours::{ComparisonRole, ComparisonRow, NeighbourComparison};
use crate::domain::{
    AgencyKind, ClientGroup, Geography, Invalid, PlaceCode, PlaceLevel, RecordKey, Revision, Scope,
    SubjectKey,
};

/// Most places with entries a live risk listing merges; a place whose subtree has more is
/// listed by walking the log back instead, which finds a page quickly when records are many.
const MERGED_PLACES: usize = 64;
/// Most places in a subtree probed for entries; a larger one (a region, the country) is
/// listed by walking the log back without probing.
const PROBED_PLACES: usize = 4096;

/// `place` and every place below it (or in it, for a footprint area), with the codes each
/// replaced (records may sit at those), or `None` when there are more than `limit`.
fn subtree_of(geography: &Geography, place: PlaceCode, limit: usize) -> Option<Vec<PlaceCode>> {
    let mut found = vec![place];
    let mut seen = std::collections::HashSet::from([place]);
    let mut next = 0;
    while let Some(code) = found.get(next).copied() {
        next += 1;
        let children = geography
            .children_holding_records(code)
            .into_iter()
            .map(|child| child.code);
        for below in geography.replaced_codes(code).into_iter().chain(children) {
            if seen.insert(below) {
                if found.len() == limit {
                    return None;
                }
                found.push(below);
            }
        }
    }
    Some(found)
}

/// One page of records under a place, newest change first.
#[derive(Debug, Clone)]
pub struct RiskPage {
    pub revisions: Vec<Revision>,
    /// Pass back to get the next page; `None` on the last page.
    pub next: Option<u64>,
    /// The log sequence the page is consistent with.
    pub consistent_at: u64,
}

impl RiskPage {
    /// A page of `page_size` from revisions found newest first, with one more if there is a
    /// next page. A walk that stopped short resumes where it stopped.
    fn of(found: Found, page_size: usize, consistent_at: u64) -> Self {
        let Found {
            mut revisions,
            stopped_at,
        } = found;
        let next = if revisions.len() > page_size {
            Some(revisions[page_size - 1].sequence)
        } else {
            stopped_at
        };
        revisions.truncate(page_size);
        Self {
            revisions,
            next,
            consistent_at,
        }
    }
}

/// Revisions a walk found, newest first, and the sequence it stopped at when it had read as
/// many entries as a page may before finding a page (the next page resumes below it).
struct Found {
    revisions: Vec<Revision>,
    stopped_at: Option<u64>,
}

impl Found {
    fn all(revisions: Vec<Revision>) -> Self {
        Self {
            revisions,
            stopped_at: None,
        }
    }
}

impl Shared {
    pub(super) fn read_inspection(&self) -> std::sync::RwLockReadGuard<'_, Inspection> {
        self.inspection.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn write_inspection(&self) -> std::sync::RwLockWriteGuard<'_, Inspection> {
        self.inspection.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters as they stood when `until` was written, from the nearest earlier
    /// checkpoint.
    pub(super) fn counters_at(&self, until: u64) -> Result<Inspection, StoreError> {
        super::fold::counters_at(&*self.engine, &self.read_directory(), until)
    }
}

impl Store {
    /// Checks an as-of sequence against the head; `None` means live.
    fn as_of(&self, as_of: Option<u64>) -> Result<Option<u64>, StoreError> {
        match as_of {
            Some(sequence) if sequence > self.head_sequence() => {
                Err(StoreError::Invalid(Invalid::one(
                    "as_of_sequence",
                    format!(
                        "{sequence} is ahead of the register's head {}",
                        self.head_sequence()
                    ),
                )))
            }
            other => Ok(other),
        }
    }

    /// The last log sequence received at or before `at` (0 when none was), found by halving
    /// the log: sequences are given in the order revisions are received.
    pub fn sequence_at(&self, at: time::OffsetDateTime) -> Result<u64, StoreError> {
        let received = |sequence: u64| -> Result<time::OffsetDateTime, StoreError> {
            Log::get(&*self.shared.engine, &sequence)?
                .map(|revision| revision.received_at)
                .ok_or_else(|| StoreError::Corrupt(format!("log entry {sequence} is missing")))
        };
        // Invariant: every sequence up to `low` was received by `at`; none after `high`.
        let (mut low, mut high) = (0, self.head_sequence());
        while low < high {
            let middle = low + (high - low).div_ceil(2);
            if received(middle)? <= at {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        Ok(low)
    }

    /// A place's view from the counters, or as of an earlier sequence.
    pub fn place_view(
        &self,
        place: PlaceCode,
        filter: &ViewFilter,
        as_of: Option<u64>,
    ) -> Result<PlaceView, StoreError> {
        let directory = self.shared.read_directory();
        match self.as_of(as_of)? {
            None => Ok(self
                .shared
                .read_inspection()
                .view(&directory.geography, place, filter)),
            Some(sequence) => {
                let replayed = super::fold::counters_of_place_at(
                    &*self.shared.engine,
                    &directory,
                    place,
                    sequence,
                )?;
                let mut view = replayed.view(&directory.geography, place, filter);
                view.consistent_at = sequence;
                Ok(view)
            }
        }
    }

    /// The views of a place's children (or a footprint area's members), side by side, largest
    /// by `measure` first; ties in code order so the table is stable.
    pub fn compare_places(
        &self,
        parent: PlaceCode,
        filter: &ViewFilter,
        measure: PlaceMeasure,
    ) -> Vec<PlaceView> {
        let directory = self.shared.read_directory();
        let inspection = self.shared.read_inspection();
        let mut views: Vec<PlaceView> = directory
            .geography
            .children(parent)
            .into_iter()
            .map(|child| inspection.view(&directory.geography, child.code, filter))
            .collect();
        views.sort_by(|a, b| {
            measure
                .of(b)
                .cmp(&measure.of(a))
                .then_with(|| a.place.cmp(&b.place))
        });
        views
    }

    /// An upper-tier authority beside its statistical neighbours (in the DfE's order), its
    /// region and England, each with its counts and rates, and its standing among the place
    /// and neighbour rows by the rate of `rate_of` (listed in every row, with a count of 0 where
    /// there are no records; a place without a population has no rate and is not ranked).
    /// Places `scope` does not cover are left out, and the standing is taken among the rows
    /// left in. INVALID_ARGUMENT (naming
    /// `parent_code`) when no neighbours are held for the place.
    pub fn compare_with_neighbours(
        &self,
        place: PlaceCode,
        filter: &ViewFilter,
        rate_of: ClientGroup,
        scope: &Scope,
    ) -> Result<NeighbourComparison, StoreError> {
        let mut left_out = 0u32;
        let views: Vec<(ComparisonRole, PlaceView)> = {
            let directory = self.shared.read_directory();
            let inspection = self.shared.read_inspection();
            let geography = &directory.geography;
            // Neighbours imported under a code since replaced (a recode) are the place's own.
            let neighbours = std::iter::once(place)
                .chain(geography.replaced_codes(place))
                .find_map(|code| directory.neighbours.of(code));
            let neighbours = neighbours.ok_or_else(|| {
                Invalid::one(
                    "parent_code",
                    format!(
                        "{place} has no statistical neighbours: name an upper-tier authority in England, once the DfE's statistical neighbours have been imported (marr neighbours import)"
                    ),
                )
            })?;
            let ancestors = geography.ancestors(place);
            let above = |level: PlaceLevel| {
                ancestors
                    .iter()
                    .find(|ancestor| ancestor.level == level)
                    .map(|ancestor| ancestor.code)
            };
            let mut roles = vec![(place, ComparisonRole::Place)];
            roles.extend(neighbours.iter().map(|n| {
                (
                    geography.current(n.place),
                    ComparisonRole::Neighbour(n.closeness),
                )
            }));
            roles.extend(above(PlaceLevel::Region).map(|r| (r, ComparisonRole::Region)));
            roles.extend(above(PlaceLevel::Country).map(|c| (c, ComparisonRole::England)));
            roles
                .into_iter()
                .filter(|(code, role)| {
                    let seen = scope.covers(geography, *code);
                    if !seen && matches!(role, ComparisonRole::Neighbour(_)) {
                        left_out += 1;
                    }
                    seen
                })
                .map(|(code, role)| (role, inspection.view(geography, code, filter)))
                .collect()
        };
        // Rates read the directory again: the locks above are released first.
        let rows: Vec<ComparisonRow> = views
            .into_iter()
            .map(|(role, mut view)| {
                // A place with no records of the ranking group ranks at a rate of 0 where its
                // population is known, rather than dropping out of the standing.
                view.by_client_group.entry(rate_of).or_insert(0);
                ComparisonRow {
                    role,
                    rates: self.rates(view.place, &view.by_client_group),
                    view,
                }
            })
            .collect();
        let consistent_at = rows
            .first()
            .map_or(self.head_sequence(), |row| row.view.consistent_at);
        Ok(NeighbourComparison {
            standing: NeighbourComparison::standing_of(&rows, rate_of),
            rows,
            rate_of,
            neighbours_left_out_for_scope: left_out,
            consistent_at,
        })
    }

    /// The same view computed by scanning every record: the baseline the counters beat.
    pub fn scan_place_view(
        &self,
        place: PlaceCode,
        filter: &ViewFilter,
    ) -> Result<PlaceView, StoreError> {
        let consistent_at = self.head_sequence();
        let mut records = Vec::new();
        for entry in Latest::scan_all(&*self.shared.engine) {
            let (key, sequence) = entry?;
            let revision = Log::get(&*self.shared.engine, &sequence)?.ok_or_else(|| {
                StoreError::Corrupt(format!("latest revision of {key} is missing"))
            })?;
            records.push(revision.record);
        }
        let directory = self.shared.read_directory();
        Ok(scan_view(
            &directory.geography,
            &records,
            |agency| {
                directory
                    .agencies
                    .get(agency)
                    .map_or(AgencyKind::Other, |a| a.kind)
            },
            place,
            filter,
            consistent_at,
        ))
    }

    /// Active records under a place (its subtree or footprint), newest change first, a page at
    /// a time. `before` is the `next` of the previous page. Live, a page reads the place index
    /// (a few places) or the log backwards from `before` (a large place), never the whole
    /// register.
    pub fn list_risks(
        &self,
        place: PlaceCode,
        filter: &ViewFilter,
        page_size: usize,
        before: Option<u64>,
        as_of: Option<u64>,
    ) -> Result<RiskPage, StoreError> {
        match self.as_of(as_of)? {
            None => self.indexed_risks(place, filter, page_size, before),
            Some(until) => self.risks_as_of(place, filter, page_size, before, until),
        }
    }

    /// A page as the register stood when `until` was written: the log walked back from
    /// there, keeping each revision that was then its record's latest. Memory holds a page,
    /// never the log.
    fn risks_as_of(
        &self,
        place: PlaceCode,
        filter: &ViewFilter,
        page_size: usize,
        before: Option<u64>,
        until: u64,
    ) -> Result<RiskPage, StoreError> {
        let page_size = page_size.max(1);
        let before = Some(before.map_or(until, |b| b.saturating_sub(1).min(until)) + 1);
        let keep = |revision: &Revision| {
            revision.record.is_active() && filter.admits_record(&revision.record)
        };
        let then = |revision: &Revision| {
            Ok(self
                .revision_as_of(&revision.record.key, until)?
                .is_some_and(|then| then.sequence == revision.sequence))
        };
        let found = self.walk_log(place, before, page_size + 1, keep, then)?;
        Ok(RiskPage::of(found, page_size, until))
    }

    /// The revision of a record that was its latest when `until` was written, found by
    /// walking back from its latest.
    fn revision_as_of(&self, key: &RecordKey, until: u64) -> Result<Option<Revision>, StoreError> {
        let engine = &*self.shared.engine;
        let mut next = Log::latest(engine, key)?;
        while let Some(revision) = next {
            if revision.sequence <= until {
                return Ok(Some(revision));
            }
            next = match revision.previous {
                Some(previous) => Log::get(engine, &previous)?,
                None => None,
            };
        }
        Ok(None)
    }

    /// The same page found by collecting every record under the place and sorting them: the
    /// baseline the place index beats, and what it must always agree with.
    pub fn scan_risks(
        &self,
        place: PlaceCode,
        filter: &ViewFilter,
        page_size: usize,
        before: Option<u64>,
    ) -> Result<RiskPage, StoreError> {
        let consistent_at = self.head_sequence();
        let places = {
            let geography = &self.shared.read_directory().geography;
            let mut places = geography.descendants(place);
            places.push(place);
            places
        };
        let mut revisions = Vec::new();
        for code in places {
            for key in self.records_at(code)? {
                if let Some(revision) = self.record(&key)? {
                    revisions.push(revision);
                }
            }
        }
        revisions.retain(|r| {
            r.record.is_active()
                && filter.admits_record(&r.record)
                && before.is_none_or(|b| r.sequence < b)
        });
        revisions.sort_by_key(|r| std::cmp::Reverse(r.sequence));
        Ok(RiskPage::of(
            Found::all(revisions),
            page_size,
            consistent_at,
        ))
    }

    /// A live page read through the place index. A place whose subtree holds few places with
    /// entries merges their entries newest first; a larger one (a region, the country, a big
    /// footprint area) walks the log back from `before`, keeping each revision that is still
    /// its record's latest and lies within the place. Either stops once it has a page and one
    /// more (to know whether there is a next page).
    fn indexed_risks(
        &self,
        place: PlaceCode,
        filter: &ViewFilter,
        page_size: usize,
        before: Option<u64>,
    ) -> Result<RiskPage, StoreError> {
        let consistent_at = self.head_sequence();
        let page_size = page_size.max(1);
        let wanted = page_size + 1;
        let keep = |revision: &Revision| {
            revision.record.is_active() && filter.admits_record(&revision.record)
        };
        let subtree = {
            let geography = &self.shared.read_directory().geography;
            subtree_of(geography, place, PROBED_PLACES)
        };
        let few = match subtree {
            Some(places) => self.places_with_entries(places, before)?,
            None => None,
        };
        let found = match few {
            Some(places) => self.merge_places(&places, before, wanted, keep)?,
            None => {
                let engine = &*self.shared.engine;
                let latest = |revision: &Revision| {
                    engine.contains(&ByPlace::key(&(revision.record.place, revision.sequence)))
                };
                self.walk_log(place, before, wanted, keep, latest)?
            }
        };
        Ok(RiskPage::of(found, page_size, consistent_at))
    }

    /// The places among `places` with index entries below `before`, or `None` when there are
    /// more than [`MERGED_PLACES`] of them.
    fn places_with_entries(
        &self,
        places: Vec<PlaceCode>,
        before: Option<u64>,
    ) -> Result<Option<Vec<PlaceCode>>, StoreError> {
        let mut found = Vec::new();
        for place in places {
            if ByPlace::newest_at(&*self.shared.engine, place, before)
                .next()
                .transpose()?
                .is_some()
            {
                if found.len() == MERGED_PLACES {
                    return Ok(None);
                }
                found.push(place);
            }
        }
        Ok(Some(found))
    }

    /// Merges the places' index entries below `before`, newest first, reading each log entry
    /// only as it comes up, until `wanted` revisions pass `keep` or a page's reads are spent.
    fn merge_places(
        &self,
        places: &[PlaceCode],
        before: Option<u64>,
        wanted: usize,
        keep: impl Fn(&Revision) -> bool,
    ) -> Result<Found, StoreError> {
        let engine = &*self.shared.engine;
        let mut cursors: Vec<_> = places
            .iter()
            .map(|place| ByPlace::newest_at(engine, *place, before))
            .collect();
        // The next sequence of each cursor, largest on top.
        let mut heads = BinaryHeap::new();
        for (i, cursor) in cursors.iter_mut().enumerate() {
            if let Some(sequence) = cursor.next().transpose()? {
                heads.push((sequence, i));
            }
        }
        let mut found = Vec::new();
        let mut read = 0;
        while let Some((sequence, i)) = heads.pop() {
            if read == self.shared.page_read_limit {
                // Everything from `sequence` down is still to read.
                return Ok(Found {
                    revisions: found,
                    stopped_at: Some(sequence + 1),
                });
            }
            read += 1;
            let revision = Log::get(engine, &sequence)?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "place index points at missing log entry {sequence}"
                ))
            })?;
            if keep(&revision) {
                found.push(revision);
                if found.len() == wanted {
                    break;
                }
            }
            if let Some(next) = cursors[i].next().transpose()? {
                heads.push((next, i));
            }
        }
        Ok(Found::all(found))
    }

    /// Walks the log back from `before` (or the head), keeping each revision that passes
    /// `keep`, lies within `place` and is `current` (its record's latest now, or then), until
    /// `wanted` are found or a page's reads are spent.
    fn walk_log(
        &self,
        place: PlaceCode,
        before: Option<u64>,
        wanted: usize,
        keep: impl Fn(&Revision) -> bool,
        current: impl Fn(&Revision) -> Result<bool, StoreError>,
    ) -> Result<Found, StoreError> {
        let mut found = Vec::new();
        for (read, entry) in Log::newest_before(&*self.shared.engine, before).enumerate() {
            let (sequence, revision) = entry?;
            if read == self.shared.page_read_limit {
                return Ok(Found {
                    revisions: found,
                    stopped_at: Some(sequence + 1),
                });
            }
            if keep(&revision)
                && self
                    .shared
                    .read_directory()
                    .geography
                    .within(revision.record.place, place)
                && current(&revision)?
            {
                found.push(revision);
                if found.len() == wanted {
                    break;
                }
            }
        }
        Ok(Found::all(found))
    }

    /// One subject's trail: every revision of every record naming the subject, in time order.
    pub fn follow_subject(
        &self,
        subject: SubjectKey,
        as_of: Option<u64>,
    ) -> Result<(Vec<Revision>, u64), StoreError> {
        let as_of = self.as_of(as_of)?;
        // The records naming the subject then, from the subject journal, each at its
        // revision of then.
        let until = as_of.unwrap_or_else(|| self.head_sequence());
        let mut latest = Vec::new();
        for key in super::fold::records_naming(&*self.shared.engine, subject, until)? {
            latest.extend(self.revision_as_of(&key, until)?);
        }
        let consistent_at = until;
        let mut trail = Vec::new();
        for revision in latest {
            let mut next = revision.previous;
            trail.push(revision);
            while let Some(sequence) = next {
                let earlier = Log::get(&*self.shared.engine, &sequence)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("log entry {sequence} is missing"))
                })?;
                next = earlier.previous;
                trail.push(earlier);
            }
        }
        trail.sort_by(|a, b| {
            (a.record.source_updated_at, a.sequence).cmp(&(b.record.source_updated_at, b.sequence))
        });
        Ok((trail, consistent_at))
    }

    /// Freezes a place view for an inspection report.
    pub async fn create_snapshot(
        &self,
        request: SnapshotRequest,
        actor: Actor,
    ) -> Result<Snapshot, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Command::CreateSnapshot {
            request,
            actor,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// A snapshot exactly as it was frozen.
    pub fn snapshot(&self, id: u64) -> Result<Option<Snapshot>, StoreError> {
        Snapshots::get(&*self.shared.engine, &id)
    }

    /// A page of one agency's records (their latest revisions) in the order of their
    /// references, after `after`; with the key to pass for the next page, if there is one.
    pub fn records_of_agency(
        &self,
        agency: &crate::domain::AgencyId,
        after: Option<&crate::domain::RecordKey>,
        page_size: usize,
    ) -> Result<
        (
            Vec<crate::domain::Revision>,
            Option<crate::domain::RecordKey>,
        ),
        StoreError,
    > {
        let engine = &*self.shared.engine;
        let mut revisions = Vec::new();
        let mut next = None;
        for entry in super::keyspace::Latest::of_agency(engine, agency, after) {
            let (key, sequence) = entry?;
            if revisions.len() == page_size {
                next = revisions
                    .last()
                    .map(|r: &crate::domain::Revision| r.record.key.clone());
                break;
            }
            let revision = Log::get(engine, &sequence)?.ok_or_else(|| {
                StoreError::Corrupt(format!("the latest revision of {key} is missing"))
            })?;
            revisions.push(revision);
        }
        Ok((revisions, next))
    }

    /// Snapshots newest first, those `keep` accepts, reading at most `read` of them.
    pub fn snapshots_newest_first(
        &self,
        read: usize,
        keep: impl Fn(&Snapshot) -> bool,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let mut kept = Vec::new();
        for entry in Snapshots::scan_all(&*self.shared.engine).rev().take(read) {
            let (_, snapshot) = entry?;
            if keep(&snapshot) {
                kept.push(snapshot);
            }
        }
        Ok(kept)
    }
}
