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

/// An active record naming a subject.
#[derive(Debug, Clone)]
struct Presence {
    record: RecordKey,
    agency: u32,
    kind: AgencyKind,
    place: PlaceCode,
}

/// The counters and subject presences, as of `applied`.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    applied: u64,
    agencies: Vec<(AgencyId, AgencyKind)>,
    agency_index: HashMap<AgencyId, u32>,
    places: HashMap<PlaceCode, PlaceTally>,
    subjects: HashMap<SubjectKey, Vec<Presence>>,
    containing: HashMap<PlaceCode, Arc<[PlaceCode]>>,
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
    /// A copy of the per-place counters, without the subject presences: what a release
    /// needs ([`Inspection::views_by_agency`]), cheap enough to take between two batches.
    pub fn counters_only(&self) -> Self {
        Self {
            applied: self.applied,
            agencies: self.agencies.clone(),
            agency_index: self.agency_index.clone(),
            places: self.places.clone(),
            subjects: HashMap::new(),
            containing: HashMap::new(),
        }
    }

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

    /// Applies one change of a record, from its previous revision (if any) to `new`, written
    /// at `sequence`. `kind` is the kind of the record's agency.
    pub fn apply(
        &mut self,
        geography: &Geography,
        kind: AgencyKind,
        old: Option<&RiskRecord>,
        new: &RiskRecord,
        sequence: u64,
    ) {
        let agency = self.agency(&new.key.agency, kind);
        let old = old.filter(|r| r.is_active());
        let new_active = new.is_active().then_some(new);
        let mut touched: Vec<PlaceCode> = Vec::new();
        if let Some(old) = old {
            let places = self.places_of(geography, old.place);
            for place in places.iter() {
                let tally = self.places.entry(*place).or_default();
                let cell = Cell::new(agency, old);
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
            touched.extend(places.iter());
        }
        if let Some(new) = new_active {
            let places = self.places_of(geography, new.place);
            for place in places.iter() {
                let tally = self.places.entry(*place).or_default();
                *tally.cells.entry(Cell::new(agency, new)).or_default() += 1;
                tally.totals.add(
                    agency,
                    kind,
                    new.client_group,
                    new.category,
                    new.severity,
                    1,
                );
            }
            touched.extend(places.iter());
        }
        touched.sort();
        touched.dedup();

        let subjects: BTreeSet<SubjectKey> = old
            .and_then(|r| r.subject)
            .into_iter()
            .chain(new_active.and_then(|r| r.subject))
            .collect();
        for subject in subjects {
            let before = self.convergence(geography, subject, &touched);
            let presences = self.subjects.entry(subject).or_default();
            presences.retain(|p| p.record != new.key);
            if let Some(new) = new_active.filter(|r| r.subject == Some(subject)) {
                presences.push(Presence {
                    record: new.key.clone(),
                    agency,
                    kind,
                    place: new.place,
                });
            }
            if presences.is_empty() {
                self.subjects.remove(&subject);
            }
            let after = self.convergence(geography, subject, &touched);
            for ((place, (agencies_before, kinds_before)), (agencies_after, kinds_after)) in
                touched.iter().zip(before).zip(after)
            {
                let tally = self.places.entry(*place).or_default();
                if agencies_before != agencies_after {
                    if agencies_after {
                        tally.subjects_at_two_or_more_agencies += 1;
                    } else {
                        tally.subjects_at_two_or_more_agencies -= 1;
                    }
                }
                if kinds_before != kinds_after {
                    if kinds_after {
                        tally.subjects_at_two_or_more_agency_kinds += 1;
                    } else {
                        tally.subjects_at_two_or_more_agency_kinds -= 1;
                    }
                }
            }
        }
        self.applied = self.applied.max(sequence);
    }

    /// For each place: is the subject active there at two or more agencies, and kinds?
    fn convergence(
        &mut self,
        geography: &Geography,
        subject: SubjectKey,
        places: &[PlaceCode],
    ) -> Vec<(bool, bool)> {
        let presences: Vec<(u32, AgencyKind, PlaceCode)> = self
            .subjects
            .get(&subject)
            .map(|ps| ps.iter().map(|p| (p.agency, p.kind, p.place)).collect())
            .unwrap_or_default();
        let reach: Vec<(u32, AgencyKind, Arc<[PlaceCode]>)> = presences
            .into_iter()
            .map(|(agency, kind, place)| (agency, kind, self.places_of(geography, place)))
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
