//! Alert rules: from one change of a record (or a tick of the clock) to the alerts it raises.
//! No I/O and no state of their own: the writer folds each change into the inspection
//! projection once, and the rules read what moved ([`Applied`]); the alerts go into the same
//! batch as the change.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::domain::alert::Alert;
use crate::domain::inspection::Applied;
use crate::domain::{
    AgencyId, AlertKind, Geography, PlaceCode, PlaceLevel, Revision, RiskRecord, Severity,
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

/// Whether the staleness sweep watches a revision: active at high severity or worse.
pub fn watched(record: &RiskRecord) -> bool {
    record.is_active() && record.severity >= Severity::High
}

fn threshold(settings: &RuleSettings, geography: &Geography, place: PlaceCode) -> Option<u64> {
    settings.place_thresholds.get(&place).copied().or_else(|| {
        let is_district = geography
            .place(place)
            .is_some_and(|p| p.level == PlaceLevel::District);
        settings.district_threshold.filter(|_| is_district)
    })
}

fn describe(alert: &mut Alert, record: &RiskRecord) {
    alert.client_group = Some(record.client_group);
    alert.records.push(record.key.clone());
    alert.agencies.push(record.key.agency.clone());
    alert.places.push(record.place);
    alert.subject = record.subject;
}

/// The alerts one accepted revision raises, in rule order, from what the change did to the
/// counters and subjects ([`Applied`], folded once by the inspection projection).
pub fn evaluate(
    geography: &Geography,
    settings: &RuleSettings,
    old: Option<&Revision>,
    new: &Revision,
    applied: &Applied,
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
        describe(&mut alert, record);
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
        describe(&mut alert, record);
        alerts.push(alert);
    }

    // place_threshold: the high-or-worse count of a (place, client group) crosses a threshold.
    for &(place, group, before, after) in &applied.high_or_worse {
        let Some(threshold) = threshold(settings, geography, place) else {
            continue;
        };
        let detail = if before < threshold && after >= threshold {
            format!(
                "{after} active high-or-worse {group} records in {place}, at or above the threshold of {threshold}"
            )
        } else if before >= threshold && after < threshold {
            format!(
                "{after} active high-or-worse {group} records in {place}, back below the threshold of {threshold}"
            )
        } else {
            continue;
        };
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

    // multi_agency: a subject becomes active at N or more distinct agencies.
    for change in &applied.subjects {
        let agencies: BTreeSet<AgencyId> = change
            .active_after
            .keys()
            .map(|k| k.agency.clone())
            .collect();
        if agencies.len() > change.agencies_before.len()
            && agencies.len() >= settings.multi_agency_min_agencies
        {
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
            alert.subject = Some(change.subject);
            alert.agencies = agencies.into_iter().collect();
            alert.records = change.active_after.keys().cloned().collect();
            alert.places = change
                .active_after
                .values()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            alerts.push(alert);
        }
    }
    alerts
}

/// `stale_high_risk` for a watched revision with no newer one since `now - stale_after`;
/// `None` while it is still fresh.
pub fn stale(settings: &RuleSettings, revision: &Revision, now: OffsetDateTime) -> Option<Alert> {
    let record = &revision.record;
    if !watched(record) || revision.received_at > now - settings.stale_after {
        return None;
    }
    let days = (now - revision.received_at).whole_days();
    let mut alert = draft(
        AlertKind::StaleHighRisk,
        record.severity,
        record.place,
        0,
        now,
        format!(
            "{} has been active at {} with no new revision for {days} days",
            record.key, record.severity
        ),
    );
    describe(&mut alert, record);
    Some(alert)
}
