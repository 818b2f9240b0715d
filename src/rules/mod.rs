//! Alert rules: from one change of a record (or a tick of the clock) to the alerts it raises.
//! No I/O: the writer feeds changes in log order and writes the alerts in the same batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use time::OffsetDateTime;

use crate::domain::alert::Alert;
use crate::domain::{
    AgencyId, AlertKind, ClientGroup, Geography, PlaceCode, PlaceLevel, RecordKey, Revision,
    Severity, SubjectKey,
};

/// Rule settings, from the `[rules]` table of the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSettings {
    /// A subject active at this many distinct agencies raises `multi_agency` (and again at each
    /// further agency).
    pub multi_agency_min_agencies: usize,
    /// Threshold of active high-or-worse records per client group for every district without
    /// one of its own; `None` for no default.
    pub district_threshold: Option<u64>,
    /// Thresholds for particular places or footprint areas, at any level.
    pub place_thresholds: BTreeMap<PlaceCode, u64>,
    /// A high or critical record with no new revision for this long raises `stale_high_risk`.
    pub stale_after: time::Duration,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            multi_agency_min_agencies: 2,
            district_threshold: Some(50),
            place_thresholds: BTreeMap::new(),
            stale_after: time::Duration::days(30),
        }
    }
}

/// An active high-or-critical record, watched for staleness.
#[derive(Debug, Clone)]
struct Watched {
    since: OffsetDateTime,
    revision: u32,
    alerted: bool,
    severity: Severity,
    place: PlaceCode,
    client_group: ClientGroup,
    subject: Option<SubjectKey>,
}

/// What the rules need to remember between changes.
#[derive(Debug, Default)]
pub struct RuleState {
    /// Each subject's active records and their places.
    subjects: HashMap<SubjectKey, BTreeMap<RecordKey, PlaceCode>>,
    /// Active high-or-worse records per (place, client group), at every containing place.
    high_or_worse: HashMap<(PlaceCode, ClientGroup), u64>,
    watched: BTreeMap<RecordKey, Watched>,
    containing: HashMap<PlaceCode, Arc<[PlaceCode]>>,
}

fn draft(
    kind: AlertKind,
    severity: Severity,
    place: PlaceCode,
    raised_by: u64,
    raised_at: OffsetDateTime,
    detail: String,
) -> Alert {
    Alert {
        sequence: 0,
        kind,
        severity,
        place,
        client_group: None,
        records: Vec::new(),
        agencies: Vec::new(),
        places: Vec::new(),
        subject: None,
        raised_by,
        raised_at,
        detail,
    }
}

impl RuleState {
    fn places_of(&mut self, geography: &Geography, place: PlaceCode) -> Arc<[PlaceCode]> {
        self.containing
            .entry(place)
            .or_insert_with(|| {
                let mut codes: Vec<PlaceCode> = std::iter::once(place)
                    .chain(geography.ancestors(place).into_iter().map(|p| p.code))
                    .collect();
                codes.extend(geography.areas_containing(place));
                codes.into()
            })
            .clone()
    }

    /// Forgets cached place ancestry after the geography changed.
    pub fn geography_changed(&mut self) {
        self.containing.clear();
    }

    fn threshold(settings: &RuleSettings, geography: &Geography, place: PlaceCode) -> Option<u64> {
        settings.place_thresholds.get(&place).copied().or_else(|| {
            let is_district = geography
                .place(place)
                .is_some_and(|p| p.level == PlaceLevel::District);
            settings.district_threshold.filter(|_| is_district)
        })
    }

    /// Applies one accepted revision and returns the alerts it raises, in rule order.
    pub fn apply(
        &mut self,
        geography: &Geography,
        settings: &RuleSettings,
        old: Option<&Revision>,
        new: &Revision,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let record = &new.record;
        let was = old.map(|o| &o.record).filter(|r| r.is_active());
        let now_active = record.is_active();
        let at = new.received_at;
        let by = new.sequence;

        // critical_risk: a record becomes active at critical severity.
        if now_active
            && record.severity == Severity::Critical
            && was.is_none_or(|w| w.severity != Severity::Critical)
        {
            let mut alert = draft(
                AlertKind::CriticalRisk,
                Severity::Critical,
                record.place,
                by,
                at,
                format!(
                    "{} is active at critical severity ({})",
                    record.key, record.category
                ),
            );
            self.describe(&mut alert, record);
            alerts.push(alert);
        }
        // escalation: an active record's severity rises.
        if let Some(was) = was
            && now_active
            && record.severity > was.severity
        {
            let mut alert = draft(
                AlertKind::Escalation,
                record.severity,
                record.place,
                by,
                at,
                format!(
                    "{} rose from {} to {}",
                    record.key, was.severity, record.severity
                ),
            );
            self.describe(&mut alert, record);
            alerts.push(alert);
        }

        // place_threshold: the high-or-worse count of a (place, client group) crosses a threshold.
        let mut deltas: BTreeMap<(PlaceCode, ClientGroup), i64> = BTreeMap::new();
        if let Some(was) = was.filter(|w| w.severity >= Severity::High) {
            for place in self.places_of(geography, was.place).iter() {
                *deltas.entry((*place, was.client_group)).or_default() -= 1;
            }
        }
        if now_active && record.severity >= Severity::High {
            for place in self.places_of(geography, record.place).iter() {
                *deltas.entry((*place, record.client_group)).or_default() += 1;
            }
        }
        for ((place, group), delta) in deltas.into_iter().filter(|(_, d)| *d != 0) {
            let count = self.high_or_worse.entry((place, group)).or_default();
            let before = *count;
            *count = count.saturating_add_signed(delta);
            let after = *count;
            if let Some(threshold) = Self::threshold(settings, geography, place) {
                let crossing = if before < threshold && after >= threshold {
                    Some(format!(
                        "{after} active high-or-worse {group} records in {place}, at or above the threshold of {threshold}"
                    ))
                } else if before >= threshold && after < threshold {
                    Some(format!(
                        "{after} active high-or-worse {group} records in {place}, back below the threshold of {threshold}"
                    ))
                } else {
                    None
                };
                if let Some(detail) = crossing {
                    let mut alert = draft(
                        AlertKind::PlaceThreshold,
                        Severity::High,
                        place,
                        by,
                        at,
                        detail,
                    );
                    alert.client_group = Some(group);
                    alert.records.push(record.key.clone());
                    alert.agencies.push(record.key.agency.clone());
                    alerts.push(alert);
                }
            }
        }

        // multi_agency: a subject becomes active at N or more distinct agencies.
        let subjects: BTreeSet<SubjectKey> = was
            .and_then(|w| w.subject)
            .into_iter()
            .chain(record.subject)
            .collect();
        for subject in subjects {
            let before = self.agencies_of(subject).len();
            let records = self.subjects.entry(subject).or_default();
            records.remove(&record.key);
            if now_active && record.subject == Some(subject) {
                records.insert(record.key.clone(), record.place);
            }
            if records.is_empty() {
                self.subjects.remove(&subject);
            }
            let agencies = self.agencies_of(subject);
            if agencies.len() > before && agencies.len() >= settings.multi_agency_min_agencies {
                let involved = self.subjects.get(&subject).cloned().unwrap_or_default();
                let mut alert = draft(
                    AlertKind::MultiAgency,
                    record.severity,
                    record.place,
                    by,
                    at,
                    format!(
                        "one subject is now active at {} agencies: {}",
                        agencies.len(),
                        agencies
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                alert.client_group = Some(record.client_group);
                alert.subject = Some(subject);
                alert.agencies = agencies.into_iter().collect();
                alert.records = involved.keys().cloned().collect();
                alert.places = involved
                    .values()
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                alerts.push(alert);
            }
        }

        // Staleness watch: active high-or-critical records, from their latest revision.
        if now_active && record.severity >= Severity::High {
            self.watched.insert(
                record.key.clone(),
                Watched {
                    since: new.received_at,
                    revision: new.revision,
                    alerted: false,
                    severity: record.severity,
                    place: record.place,
                    client_group: record.client_group,
                    subject: record.subject,
                },
            );
        } else {
            self.watched.remove(&record.key);
        }
        alerts
    }

    fn agencies_of(&self, subject: SubjectKey) -> BTreeSet<AgencyId> {
        self.subjects
            .get(&subject)
            .map(|records| records.keys().map(|k| k.agency.clone()).collect())
            .unwrap_or_default()
    }

    fn describe(&self, alert: &mut Alert, record: &crate::domain::RiskRecord) {
        alert.client_group = Some(record.client_group);
        alert.records.push(record.key.clone());
        alert.agencies.push(record.key.agency.clone());
        alert.places.push(record.place);
        alert.subject = record.subject;
    }

    /// Notes that a stale alert was already raised for this revision (replaying the alert log).
    pub fn already_alerted(&mut self, record: &RecordKey, revision: u32) {
        if let Some(watched) = self.watched.get_mut(record)
            && watched.revision == revision
        {
            watched.alerted = true;
        }
    }

    /// The staleness sweep: every watched record with no new revision since `now - stale_after`
    /// raises `stale_high_risk`, once per revision.
    pub fn sweep(
        &mut self,
        settings: &RuleSettings,
        now: OffsetDateTime,
    ) -> Vec<(Alert, RecordKey, u32)> {
        let cutoff = now - settings.stale_after;
        let mut alerts = Vec::new();
        for (key, watched) in self
            .watched
            .iter_mut()
            .filter(|(_, w)| !w.alerted && w.since <= cutoff)
        {
            watched.alerted = true;
            let days = (now - watched.since).whole_days();
            let mut alert = draft(
                AlertKind::StaleHighRisk,
                watched.severity,
                watched.place,
                0,
                now,
                format!(
                    "{key} has been active at {} with no new revision for {days} days",
                    watched.severity
                ),
            );
            alert.client_group = Some(watched.client_group);
            alert.records.push(key.clone());
            alert.agencies.push(key.agency.clone());
            alert.places.push(watched.place);
            alert.subject = watched.subject;
            alerts.push((alert, key.clone(), watched.revision));
        }
        alerts
    }
}
