//! The inspection projection: active-record counters at every place, ancestor and footprint
//! area, and which subjects are known to several agencies in each place. It is a pure
//! in-memory structure, fed one change at a time in log order; views read it, never records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::geography::Geography;
use super::record::{AgencyId, PlaceCode, RecordKey, RiskRecord, SubjectKey};
use super::vocabulary::{AgencyKind, ClientGroup, RiskCategory, Severity, Vocabulary};

/// Which records a view counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewFilter {
    /// Empty means every client group.
    pub client_groups: Vec<ClientGroup>,
    /// Empty means every category.
    pub categories: Vec<RiskCategory>,
    pub min_severity: Option<Severity>,
}

impl ViewFilter {
    pub fn admits(
        &self,
        client_group: ClientGroup,
        category: RiskCategory,
        severity: Severity,
    ) -> bool {
        (self.client_groups.is_empty() || self.client_groups.contains(&client_group))
            && (self.categories.is_empty() || self.categories.contains(&category))
            && self.min_severity.is_none_or(|min| severity >= min)
    }

    /// Whether the filter lets every record through.
    pub fn is_everything(&self) -> bool {
        self.client_groups.is_empty() && self.categories.is_empty() && self.min_severity.is_none()
    }

    pub fn admits_record(&self, record: &RiskRecord) -> bool {
        self.admits(record.client_group, record.category, record.severity)
    }
}

/// What risk looks like in one place, across every agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceView {
    pub place: PlaceCode,
    /// The log sequence the view is consistent with.
    pub consistent_at: u64,
    pub total: u64,
    pub by_client_group: BTreeMap<ClientGroup, u64>,
    pub by_category: BTreeMap<RiskCategory, u64>,
    pub by_severity: BTreeMap<Severity, u64>,
    pub by_agency_kind: BTreeMap<AgencyKind, u64>,
    pub by_agency: BTreeMap<AgencyId, u64>,
    /// Each child place (or footprint member) with its filtered total, by code.
    pub children: Vec<(PlaceCode, u64)>,
    /// Distinct subjects with active records at two or more agencies in the place (unfiltered).
    pub subjects_at_two_or_more_agencies: u64,
    /// Distinct subjects with active records at two or more kinds of agency in the place.
    pub subjects_at_two_or_more_agency_kinds: u64,
}

/// What places are ranked by when compared, largest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaceMeasure {
    #[default]
    TotalActive,
    HighOrWorse,
    Critical,
    SubjectsAtTwoOrMoreAgencies,
}

impl PlaceMeasure {
    pub fn of(self, view: &PlaceView) -> u64 {
        match self {
            Self::TotalActive => view.total,
            Self::HighOrWorse => view.high_or_worse(),
            Self::Critical => view.critical(),
            Self::SubjectsAtTwoOrMoreAgencies => view.subjects_at_two_or_more_agencies,
        }
    }
}

impl PlaceView {
    /// Active records at critical severity.
    pub fn critical(&self) -> u64 {
        self.by_severity
            .get(&Severity::Critical)
            .copied()
            .unwrap_or(0)
    }

    /// A view with nothing counted yet.
    pub fn empty(place: PlaceCode, consistent_at: u64) -> Self {
        Self {
            place,
            consistent_at,
            total: 0,
            by_client_group: BTreeMap::new(),
            by_category: BTreeMap::new(),
            by_severity: BTreeMap::new(),
            by_agency_kind: BTreeMap::new(),
            by_agency: BTreeMap::new(),
            children: Vec::new(),
            subjects_at_two_or_more_agencies: 0,
            subjects_at_two_or_more_agency_kinds: 0,
        }
    }

    /// Active records at high severity or worse.
    pub fn high_or_worse(&self) -> u64 {
        self.by_severity
            .iter()
            .filter(|(severity, _)| **severity >= Severity::High)
            .map(|(_, n)| n)
            .sum()
    }

    fn count(
        &mut self,
        agency: &AgencyId,
        kind: AgencyKind,
        client_group: ClientGroup,
        category: RiskCategory,
        severity: Severity,
        n: u64,
    ) {
        self.total += n;
        *self.by_client_group.entry(client_group).or_default() += n;
        *self.by_category.entry(category).or_default() += n;
        *self.by_severity.entry(severity).or_default() += n;
        *self.by_agency_kind.entry(kind).or_default() += n;
        *self.by_agency.entry(agency.clone()).or_default() += n;
    }
}

/// One cell of a place's counters: agency (interned), client group, category, severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Cell(u64);

impl Cell {
    fn new(agency: u32, record: &RiskRecord) -> Self {
        Self(
            (u64::from(agency) << 24)
                | ((record.client_group.number() as u64) << 16)
                | ((record.category.number() as u64) << 8)
                | record.severity.number() as u64,
        )
    }

    fn agency(self) -> u32 {
        (self.0 >> 24) as u32
    }

    fn parts(self) -> Option<(ClientGroup, RiskCategory, Severity)> {
        Some((
            ClientGroup::from_number(((self.0 >> 16) & 0xff) as i32)?,
            RiskCategory::from_number(((self.0 >> 8) & 0xff) as i32)?,
            Severity::from_number((self.0 & 0xff) as i32)?,
        ))
    }
}

/// Running totals by each dimension, indexed by proto number (agency by interned index).
#[derive(Debug, Clone, Default)]
struct Totals {
    total: u64,
    by_client_group: [u64; 8],
    by_category: [u64; 17],
    by_severity: [u64; 5],
    by_agency_kind: [u64; 10],
    by_agency: HashMap<u32, u64>,
    /// Active high-or-worse records by client group, for the place threshold rule.
    high_or_worse: [u64; 8],
}

impl Totals {
    fn add(
        &mut self,
        agency: u32,
        kind: AgencyKind,
        client_group: ClientGroup,
        category: RiskCategory,
        severity: Severity,
        n: u64,
    ) {
        self.total += n;
        self.by_client_group[client_group.number() as usize] += n;
        self.by_category[category.number() as usize] += n;
        self.by_severity[severity.number() as usize] += n;
        self.by_agency_kind[kind.number() as usize] += n;
        *self.by_agency.entry(agency).or_default() += n;
        if severity >= Severity::High {
            self.high_or_worse[client_group.number() as usize] += n;
        }
    }

    fn remove(
        &mut self,
        agency: u32,
        kind: AgencyKind,
        client_group: ClientGroup,
        category: RiskCategory,
        severity: Severity,
    ) {
        self.total -= 1;
        self.by_client_group[client_group.number() as usize] -= 1;
        self.by_category[category.number() as usize] -= 1;
        self.by_severity[severity.number() as usize] -= 1;
        self.by_agency_kind[kind.number() as usize] -= 1;
        if severity >= Severity::High {
            self.high_or_worse[client_group.number() as usize] -= 1;
        }
        if let Some(n) = self.by_agency.get_mut(&agency) {
            *n -= 1;
            if *n == 0 {
                self.by_agency.remove(&agency);
            }
        }
    }

    /// Writes the totals into a view, leaving out zeros.
    fn fill(&self, view: &mut PlaceView, agencies: &[(AgencyId, AgencyKind)]) {
        fn nonzero<V: Vocabulary + Ord>(counts: &[u64]) -> BTreeMap<V, u64> {
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .filter_map(|(i, n)| V::from_number(i as i32).map(|v| (v, *n)))
                .collect()
        }
        view.total = self.total;
        view.by_client_group = nonzero(&self.by_client_group);
        view.by_category = nonzero(&self.by_category);
        view.by_severity = nonzero(&self.by_severity);
        view.by_agency_kind = nonzero(&self.by_agency_kind);
        view.by_agency = self
            .by_agency
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(agency, n)| (agencies[*agency as usize].0.clone(), *n))
            .collect();
    }
}

#[derive(Debug, Clone, Default)]
struct PlaceTally {
    cells: HashMap<Cell, u32>,
    /// Unfiltered totals kept beside the cells, so an unfiltered view reads a few numbers
    /// instead of walking every cell.
    totals: Totals,
    subjects_at_two_or_more_agencies: u64,
    subjects_at_two_or_more_agency_kinds: u64,
}

/// An active record naming a subject, as the subject index has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub record: RecordKey,
    pub place: PlaceCode,
}

/// For each subject a change names (or named), the other active records naming it just
/// before the change. The store reads them from its subject index, so no copy of every
/// subject is kept in memory.
pub type Others = BTreeMap<SubjectKey, Vec<Presence>>;

/// What one change did to the measures the alert rules watch, so the rules need no state of
/// their own.
#[derive(Debug, Default)]
pub struct Applied {
    /// Active high-or-worse records per (place, client group) that moved: before, after.
    pub high_or_worse: Vec<(PlaceCode, ClientGroup, u64, u64)>,
    /// Each subject the change names or named.
    pub subjects: Vec<SubjectChange>,
}

/// One subject before and after a change.
#[derive(Debug)]
pub struct SubjectChange {
    pub subject: SubjectKey,
    /// Distinct agencies with an active record naming the subject, before the change.
    pub agencies_before: BTreeSet<AgencyId>,
    /// The active records naming the subject after the change, with their places.
    pub active_after: BTreeMap<RecordKey, PlaceCode>,
}

/// The counters at every place, as of `applied`. Tallies are shared with the readers' copy,
/// which takes the places a batch touched once the batch is durable ([`Inspection::publish`]).
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    applied: u64,
    agencies: Vec<(AgencyId, AgencyKind)>,
    agency_index: HashMap<AgencyId, u32>,
    places: HashMap<PlaceCode, Arc<PlaceTally>>,
    containing: HashMap<PlaceCode, Arc<[PlaceCode]>>,
    /// Places changed since the last publish.
    touched: BTreeSet<PlaceCode>,
}

/// The counters as persisted at a checkpoint: enough to rebuild an [`Inspection`] without
/// the log before `applied`, whole or (for a view of one place) only the places it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub header: CheckpointHeader,
    pub places: Vec<PlaceCheckpoint>,
}

/// What a checkpoint holds besides the places' counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub applied: u64,
    /// The fingerprint of the geography the counters were made with: a checkpoint made
    /// before an import that changed the tree is recognised and not used.
    pub geography: u64,
    agencies: Vec<(AgencyId, AgencyKind)>,
}

/// One place's cells (sorted) and its two convergence counts, as a checkpoint keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceCheckpoint {
    pub place: PlaceCode,
    cells: Vec<(u64, u32)>,
    subjects_at_two_or_more_agencies: u64,
    subjects_at_two_or_more_agency_kinds: u64,
}

/// Every place whose counters a record at `place` contributes to: itself, its ancestors and
/// every footprint area containing any of them.
fn containing(geography: &Geography, place: PlaceCode) -> Vec<PlaceCode> {
    let mut codes: Vec<PlaceCode> = std::iter::once(place)
        .chain(geography.ancestors(place).into_iter().map(|p| p.code))
        .collect();
    codes.extend(geography.areas_containing(place));
    codes
}

impl Inspection {
    /// The log sequence the counters are consistent with.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    fn agency(&mut self, agency: &AgencyId, kind: AgencyKind) -> u32 {
        if let Some(index) = self.agency_index.get(agency) {
            return *index;
        }
        let index = self.agencies.len() as u32;
        self.agencies.push((agency.clone(), kind));
        self.agency_index.insert(agency.clone(), index);
        index
    }

    fn places_of(&mut self, geography: &Geography, place: PlaceCode) -> Arc<[PlaceCode]> {
        self.containing
            .entry(place)
            .or_insert_with(|| containing(geography, place).into())
            .clone()
    }

    /// Forgets cached ancestry after the geography changed.
    pub fn geography_changed(&mut self) {
        self.containing.clear();
    }

    fn tally_mut(&mut self, place: PlaceCode) -> &mut PlaceTally {
        self.touched.insert(place);
        Arc::make_mut(self.places.entry(place).or_default())
    }

    fn high_or_worse(&self, place: PlaceCode, group: ClientGroup) -> u64 {
        self.places
            .get(&place)
            .map_or(0, |t| t.totals.high_or_worse[group.number() as usize])
    }

    /// Applies one change of a record, from its previous revision (if any) to `new`, written
    /// at `sequence`. `kind_of` gives an agency's kind; `others` holds, for each subject the
    /// change names or named, the other active records naming it just before the change.
    pub fn apply(
        &mut self,
        geography: &Geography,
        kind_of: &dyn Fn(&AgencyId) -> AgencyKind,
        old: Option<&RiskRecord>,
        new: &RiskRecord,
        sequence: u64,
        others: &Others,
    ) -> Applied {
        let kind = kind_of(&new.key.agency);
        let agency = self.agency(&new.key.agency, kind);
        let old = old.filter(|r| r.is_active());
        let new_active = new.is_active().then_some(new);
        let old_places = old.map(|r| self.places_of(geography, r.place));
        let new_places = new_active.map(|r| self.places_of(geography, r.place));

        // The high-or-worse counts the change can move, as they stand before it.
        let mut watched: BTreeMap<(PlaceCode, ClientGroup), u64> = BTreeMap::new();
        for (record, places) in [(old, &old_places), (new_active, &new_places)] {
            if let (Some(record), Some(places)) = (record, places)
                && record.severity >= Severity::High
            {
                for place in places.iter() {
                    watched.insert(
                        (*place, record.client_group),
                        self.high_or_worse(*place, record.client_group),
                    );
                }
            }
        }

        if let (Some(old), Some(places)) = (old, &old_places) {
            let cell = Cell::new(agency, old);
            for place in places.iter() {
                let tally = self.tally_mut(*place);
                if let Some(n) = tally.cells.get_mut(&cell) {
                    *n -= 1;
                    if *n == 0 {
                        tally.cells.remove(&cell);
                    }
                    tally
                        .totals
                        .remove(agency, kind, old.client_group, old.category, old.severity);
                }
            }
        }
        if let (Some(new), Some(places)) = (new_active, &new_places) {
            let cell = Cell::new(agency, new);
            for place in places.iter() {
                let tally = self.tally_mut(*place);
                *tally.cells.entry(cell).or_default() += 1;
                tally.totals.add(
                    agency,
                    kind,
                    new.client_group,
                    new.category,
                    new.severity,
                    1,
                );
            }
        }
        let mut applied = Applied {
            high_or_worse: watched
                .into_iter()
                .filter_map(|((place, group), before)| {
                    let after = self.high_or_worse(place, group);
                    (after != before).then_some((place, group, before, after))
                })
                .collect(),
            subjects: Vec::new(),
        };

        let mut touched: Vec<PlaceCode> = old_places
            .iter()
            .chain(new_places.iter())
            .flat_map(|places| places.iter().copied())
            .collect();
        touched.sort();
        touched.dedup();
        let subjects: BTreeSet<SubjectKey> = old
            .and_then(|r| r.subject)
            .into_iter()
            .chain(new.subject)
            .collect();
        let nobody = Vec::new();
        for subject in subjects {
            let others = others.get(&subject).unwrap_or(&nobody);
            let naming = |record: Option<&RiskRecord>| {
                record
                    .filter(|r| r.subject == Some(subject))
                    .map(|r| Presence {
                        record: r.key.clone(),
                        place: r.place,
                    })
            };
            let before: Vec<Presence> = others.iter().cloned().chain(naming(old)).collect();
            let after: Vec<Presence> = others.iter().cloned().chain(naming(new_active)).collect();
            let was = self.convergence(geography, kind_of, &before, &touched);
            let now = self.convergence(geography, kind_of, &after, &touched);
            for ((place, (agencies_before, kinds_before)), (agencies_after, kinds_after)) in
                touched.iter().zip(was).zip(now)
            {
                if agencies_before == agencies_after && kinds_before == kinds_after {
                    continue;
                }
                let tally = self.tally_mut(*place);
                if agencies_before != agencies_after {
                    if agencies_after {
                        tally.subjects_at_two_or_more_agencies += 1;
                    } else {
                        // Saturating: a replay for one place leaves its ancestors' counts
                        // unread, so they may start from nothing.
                        tally.subjects_at_two_or_more_agencies =
                            tally.subjects_at_two_or_more_agencies.saturating_sub(1);
                    }
                }
                if kinds_before != kinds_after {
                    if kinds_after {
                        tally.subjects_at_two_or_more_agency_kinds += 1;
                    } else {
                        tally.subjects_at_two_or_more_agency_kinds =
                            tally.subjects_at_two_or_more_agency_kinds.saturating_sub(1);
                    }
                }
            }
            applied.subjects.push(SubjectChange {
                subject,
                agencies_before: before.iter().map(|p| p.record.agency.clone()).collect(),
                active_after: after.into_iter().map(|p| (p.record, p.place)).collect(),
            });
        }
        self.applied = self.applied.max(sequence);
        applied
    }

    /// For each place: is the subject active there at two or more agencies, and kinds?
    fn convergence(
        &mut self,
        geography: &Geography,
        kind_of: &dyn Fn(&AgencyId) -> AgencyKind,
        presences: &[Presence],
        places: &[PlaceCode],
    ) -> Vec<(bool, bool)> {
        let reach: Vec<(&AgencyId, AgencyKind, Arc<[PlaceCode]>)> = presences
            .iter()
            .map(|p| {
                (
                    &p.record.agency,
                    kind_of(&p.record.agency),
                    self.places_of(geography, p.place),
                )
            })
            .collect();
        places
            .iter()
            .map(|place| {
                let mut agencies = BTreeSet::new();
                let mut kinds = BTreeSet::new();
                for (agency, kind, within) in &reach {
                    if within.contains(place) {
                        agencies.insert(*agency);
                        kinds.insert(*kind);
                    }
                }
                (agencies.len() >= 2, kinds.len() >= 2)
            })
            .collect()
    }

    /// Hands the places changed since the last publish to `readers`, so they see exactly
    /// these counters (and nothing later).
    pub fn publish(&mut self, readers: &mut Inspection) {
        for place in std::mem::take(&mut self.touched) {
            match self.places.get(&place) {
                Some(tally) => readers.places.insert(place, Arc::clone(tally)),
                None => readers.places.remove(&place),
            };
        }
        if readers.agencies.len() != self.agencies.len() {
            readers.agencies.clone_from(&self.agencies);
            readers.agency_index.clone_from(&self.agency_index);
        }
        readers.applied = self.applied;
    }

    /// The counters, for a checkpoint made under the geography with this fingerprint.
    pub fn checkpoint(&self, geography: u64) -> Checkpoint {
        let mut places: Vec<_> = self
            .places
            .iter()
            .filter(|(_, t)| !t.cells.is_empty() || t.subjects_at_two_or_more_agencies > 0)
            .map(|(place, tally)| {
                let mut cells: Vec<(u64, u32)> =
                    tally.cells.iter().map(|(cell, n)| (cell.0, *n)).collect();
                cells.sort_unstable();
                PlaceCheckpoint {
                    place: *place,
                    cells,
                    subjects_at_two_or_more_agencies: tally.subjects_at_two_or_more_agencies,
                    subjects_at_two_or_more_agency_kinds: tally
                        .subjects_at_two_or_more_agency_kinds,
                }
            })
            .collect();
        places.sort_unstable_by_key(|p| p.place);
        Checkpoint {
            header: CheckpointHeader {
                applied: self.applied,
                geography,
                agencies: self.agencies.clone(),
            },
            places,
        }
    }

    /// The places whose counters differ between `self` and `other` (agencies compared by id,
    /// not by the order they were first seen in).
    pub fn differences(&self, other: &Inspection) -> Vec<PlaceCode> {
        let places: BTreeSet<PlaceCode> = self
            .places
            .keys()
            .chain(other.places.keys())
            .copied()
            .collect();
        places
            .into_iter()
            .filter(|place| self.normalised(*place) != other.normalised(*place))
            .collect()
    }

    fn normalised(&self, place: PlaceCode) -> (BTreeMap<(&AgencyId, u64), u32>, u64, u64) {
        let Some(tally) = self.places.get(&place) else {
            return (BTreeMap::new(), 0, 0);
        };
        let cells = tally
            .cells
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(cell, n)| {
                let agency = &self.agencies[cell.agency() as usize].0;
                ((agency, cell.0 & 0xff_ffff), *n)
            })
            .collect();
        (
            cells,
            tally.subjects_at_two_or_more_agencies,
            tally.subjects_at_two_or_more_agency_kinds,
        )
    }

    /// The counters a checkpoint kept; every place is marked touched, so publishing them
    /// hands over the lot.
    pub fn from_checkpoint(checkpoint: Checkpoint) -> Self {
        let header = checkpoint.header;
        let mut inspection = Self {
            applied: header.applied,
            agency_index: header
                .agencies
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (id.clone(), i as u32))
                .collect(),
            agencies: header.agencies,
            ..Self::default()
        };
        for stored in checkpoint.places {
            let place = stored.place;
            let mut tally = PlaceTally {
                subjects_at_two_or_more_agencies: stored.subjects_at_two_or_more_agencies,
                subjects_at_two_or_more_agency_kinds: stored.subjects_at_two_or_more_agency_kinds,
                ..PlaceTally::default()
            };
            for (cell, n) in stored.cells {
                let cell = Cell(cell);
                let Some((group, category, severity)) = cell.parts() else {
                    continue;
                };
                let kind = inspection
                    .agencies
                    .get(cell.agency() as usize)
                    .map_or(AgencyKind::Other, |a| a.1);
                tally
                    .totals
                    .add(cell.agency(), kind, group, category, severity, u64::from(n));
                tally.cells.insert(cell, n);
            }
            inspection.places.insert(place, Arc::new(tally));
            inspection.touched.insert(place);
        }
        inspection
    }

    fn filtered_total(&self, place: PlaceCode, filter: &ViewFilter) -> u64 {
        let Some(tally) = self.places.get(&place) else {
            return 0;
        };
        if filter.is_everything() {
            return tally.totals.total;
        }
        tally
            .cells
            .iter()
            .filter(|(cell, _)| cell.parts().is_some_and(|(g, c, s)| filter.admits(g, c, s)))
            .map(|(_, n)| u64::from(*n))
            .sum()
    }

    /// Each agency's own view of a place (its records only, `children` left empty): what it
    /// contributes to every count of the place's view, for contributor-aware disclosure
    /// control. Agencies with nothing counted are left out.
    pub fn views_by_agency(
        &self,
        place: PlaceCode,
        filter: &ViewFilter,
    ) -> BTreeMap<AgencyId, PlaceView> {
        let Some(tally) = self.places.get(&place) else {
            return BTreeMap::new();
        };
        let mut totals: HashMap<u32, Totals> = HashMap::new();
        for (cell, n) in &tally.cells {
            let Some((client_group, category, severity)) = cell.parts() else {
                continue;
            };
            if filter.admits(client_group, category, severity) {
                let kind = self.agencies[cell.agency() as usize].1;
                totals.entry(cell.agency()).or_default().add(
                    cell.agency(),
                    kind,
                    client_group,
                    category,
                    severity,
                    u64::from(*n),
                );
            }
        }
        totals
            .into_iter()
            .filter(|(_, totals)| totals.total > 0)
            .map(|(agency, totals)| {
                let mut view = PlaceView::empty(place, self.applied);
                totals.fill(&mut view, &self.agencies);
                (self.agencies[agency as usize].0.clone(), view)
            })
            .collect()
    }

    /// The view of one place (or footprint area) from the counters.
    pub fn view(&self, geography: &Geography, place: PlaceCode, filter: &ViewFilter) -> PlaceView {
        let mut view = PlaceView::empty(place, self.applied);
        if let Some(tally) = self.places.get(&place) {
            if filter.is_everything() {
                tally.totals.fill(&mut view, &self.agencies);
            } else {
                let mut totals = Totals::default();
                for (cell, n) in &tally.cells {
                    let Some((client_group, category, severity)) = cell.parts() else {
                        continue;
                    };
                    if filter.admits(client_group, category, severity) {
                        let kind = self.agencies[cell.agency() as usize].1;
                        totals.add(
                            cell.agency(),
                            kind,
                            client_group,
                            category,
                            severity,
                            u64::from(*n),
                        );
                    }
                }
                totals.fill(&mut view, &self.agencies);
            }
            view.subjects_at_two_or_more_agencies = tally.subjects_at_two_or_more_agencies;
            view.subjects_at_two_or_more_agency_kinds = tally.subjects_at_two_or_more_agency_kinds;
        }
        view.children = geography
            .children(place)
            .into_iter()
            .map(|child| (child.code, self.filtered_total(child.code, filter)))
            .collect();
        view
    }
}

/// The same view computed the slow way, by scanning records: the oracle for the counters and
/// the baseline they are measured against. `kind_of` gives each agency's kind.
pub fn scan_view<'a>(
    geography: &Geography,
    records: impl IntoIterator<Item = &'a RiskRecord>,
    kind_of: impl Fn(&AgencyId) -> AgencyKind,
    place: PlaceCode,
    filter: &ViewFilter,
    consistent_at: u64,
) -> PlaceView {
    let mut view = PlaceView::empty(place, consistent_at);
    let children: Vec<PlaceCode> = geography
        .children(place)
        .into_iter()
        .map(|p| p.code)
        .collect();
    let mut child_totals: BTreeMap<PlaceCode, u64> = children.iter().map(|c| (*c, 0)).collect();
    let mut subjects: HashMap<SubjectKey, (BTreeSet<AgencyId>, BTreeSet<AgencyKind>)> =
        HashMap::new();
    for record in records.into_iter().filter(|r| r.is_active()) {
        if !geography.within(record.place, place) {
            continue;
        }
        let kind = kind_of(&record.key.agency);
        if let Some(subject) = record.subject {
            let entry = subjects.entry(subject).or_default();
            entry.0.insert(record.key.agency.clone());
            entry.1.insert(kind);
        }
        if !filter.admits_record(record) {
            continue;
        }
        view.count(
            &record.key.agency,
            kind,
            record.client_group,
            record.category,
            record.severity,
            1,
        );
        for child in &children {
            if geography.within(record.place, *child) {
                *child_totals.entry(*child).or_default() += 1;
            }
        }
    }
    view.children = children.iter().map(|c| (*c, child_totals[c])).collect();
    view.subjects_at_two_or_more_agencies =
        subjects.values().filter(|(a, _)| a.len() >= 2).count() as u64;
    view.subjects_at_two_or_more_agency_kinds =
        subjects.values().filter(|(_, k)| k.len() >= 2).count() as u64;
    view
}
