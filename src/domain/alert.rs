//! Alerts: durable, numbered events raised by the rules, for safeguarding boards.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::geography::{Geography, Scope};
use super::record::{AgencyId, PlaceCode, RecordKey, SubjectKey};
use super::vocabulary::{AlertKind, ClientGroup, Severity};

/// One alert as the alert log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Position in the gap-free alert log.
    pub sequence: u64,
    pub kind: AlertKind,
    pub severity: Severity,
    /// Where the alert belongs: the record's place, or the place whose threshold was crossed.
    pub place: PlaceCode,
    pub client_group: Option<ClientGroup>,
    pub records: Vec<RecordKey>,
    pub agencies: Vec<AgencyId>,
    /// Places of the records involved (for multi-agency alerts, each agency's place).
    pub places: Vec<PlaceCode>,
    pub subject: Option<SubjectKey>,
    /// Sequence of the revision that raised it; 0 for the sweep (stale risks, overdue actions).
    pub raised_by: u64,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub raised_at: OffsetDateTime,
    /// What happened, in words.
    pub detail: String,
}

/// One record an alert names, as it stood when the alert was raised: what deciding which
/// parts of a multi-agency alert lie in someone's places needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Involved {
    pub key: RecordKey,
    /// Sequence of the record's revision at the time.
    pub sequence: u64,
    pub place: PlaceCode,
    pub severity: Severity,
    pub client_group: ClientGroup,
}

impl Alert {
    /// Whether someone whose places are `scope` receives this alert at all. A multi-agency
    /// alert reaches every scope holding any of the subject's activity; any other alert
    /// reaches a scope that covers its place and every place it names.
    pub fn reaches(&self, scope: &Scope, geography: &Geography) -> bool {
        match self.kind {
            AlertKind::MultiAgency => self.places.iter().any(|p| scope.covers(geography, *p)),
            _ => self.wholly_in(scope, geography),
        }
    }

    fn wholly_in(&self, scope: &Scope, geography: &Geography) -> bool {
        scope.covers(geography, self.place)
            && self.places.iter().all(|p| scope.covers(geography, *p))
    }

    /// The alert as someone whose places are `scope` may see it, or `None` when nothing of it
    /// lies there. A multi-agency alert about a subject also known elsewhere is trimmed to the
    /// records, agencies and places inside the scope, as a subject trail is for an inspector:
    /// its place, severity and client group become those of the record that raised it when
    /// that record is inside, else of the worst record inside, and its words say that there
    /// is activity elsewhere without saying where or how much. `involved` is asked for only
    /// when an alert must be trimmed; a record it cannot place is left out.
    pub fn seen_from<E>(
        &self,
        scope: &Scope,
        geography: &Geography,
        involved: impl FnOnce(&Alert) -> Result<Vec<Involved>, E>,
    ) -> Result<Option<Alert>, E> {
        if self.wholly_in(scope, geography) {
            return Ok(Some(self.clone()));
        }
        if self.kind != AlertKind::MultiAgency || !self.reaches(scope, geography) {
            return Ok(None);
        }
        let inside: Vec<Involved> = involved(self)?
            .into_iter()
            .filter(|record| {
                self.records.contains(&record.key) && scope.covers(geography, record.place)
            })
            .collect();
        let lead = inside
            .iter()
            .find(|record| record.sequence == self.raised_by)
            .or_else(|| {
                // The worst record inside; the first of equals, by key.
                inside.iter().rev().max_by_key(|record| record.severity)
            });
        let Some(lead) = lead else {
            return Ok(None);
        };
        let agencies: Vec<AgencyId> = inside
            .iter()
            .map(|record| record.key.agency.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let places: Vec<PlaceCode> = inside
            .iter()
            .map(|record| record.place)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let detail = format!(
            "one subject is now active at agencies outside your places as well as at {} inside them: {}",
            if agencies.len() == 1 {
                "one".to_string()
            } else {
                agencies.len().to_string()
            },
            agencies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Some(Alert {
            sequence: self.sequence,
            kind: self.kind,
            severity: lead.severity,
            place: lead.place,
            client_group: Some(lead.client_group),
            records: inside.iter().map(|record| record.key.clone()).collect(),
            agencies,
            places,
            subject: self.subject,
            // The revision that raised it may lie outside the board's places: name the one
            // inside that leads the trimmed alert instead.
            raised_by: lead.sequence,
            raised_at: self.raised_at,
            detail,
        }))
    }
}

/// Which alerts a watcher or a listing wants, among those it may see. The filter is applied
/// to an alert as the asker sees it, so it never turns on a part of an alert outside the
/// asker's places.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// A place or footprint area inside the asker's places: alerts are seen as by a board of
    /// that place alone.
    pub place: Option<PlaceCode>,
    /// Empty means every client group (alerts without one match only an empty list).
    pub client_groups: Vec<ClientGroup>,
    /// Empty means every kind.
    pub kinds: Vec<AlertKind>,
    pub min_severity: Option<Severity>,
}

impl AlertFilter {
    /// Whether an alert, as the asker sees it, is one the filter asks for (its place is
    /// decided by the scope, see [`Scope::narrowed_to`]).
    pub fn matches(&self, alert: &Alert) -> bool {
        (self.client_groups.is_empty()
            || alert
                .client_group
                .is_some_and(|g| self.client_groups.contains(&g)))
            && (self.kinds.is_empty() || self.kinds.contains(&alert.kind))
            && self.min_severity.is_none_or(|min| alert.severity >= min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::geography::{Membership, Place};
    use crate::domain::vocabulary::PlaceLevel;

    const REGION: &str = "E12000001";
    const NEWCASTLE: &str = "E08000021";
    const GATESHEAD: &str = "E08000037";
    const NORTHUMBRIA: &str = "E23000007";

    fn code(code: &str) -> PlaceCode {
        PlaceCode::parse(code).expect("code")
    }

    /// A region with two districts, and a police force area of both.
    fn geography() -> Geography {
        let mut geography = Geography::default();
        let place = |c: &str, level, parent: Option<&str>| Place {
            code: code(c),
            name: c.to_string(),
            level,
            parent: parent.map(code),
        };
        geography.insert_place(place(REGION, PlaceLevel::Region, None));
        for district in [NEWCASTLE, GATESHEAD] {
            geography.insert_place(place(district, PlaceLevel::District, Some(REGION)));
            geography.insert_membership(Membership {
                area: code(NORTHUMBRIA),
                member: code(district),
            });
        }
        geography.insert_place(place(NORTHUMBRIA, PlaceLevel::PoliceForceArea, None));
        geography
    }

    fn key(agency: &str, local_ref: &str) -> RecordKey {
        RecordKey::parse(agency, local_ref).expect("key")
    }

    /// The subject was known to Newcastle's council (sequence 1, low), then to the police in
    /// Gateshead (sequence 2, high), which raised the alert.
    fn multi_agency() -> (Alert, Vec<Involved>) {
        let council = Involved {
            key: key(NEWCASTLE, "C-1"),
            sequence: 1,
            place: code(NEWCASTLE),
            severity: Severity::Low,
            client_group: ClientGroup::ChildProtectionPlan,
        };
        let police = Involved {
            key: key(NORTHUMBRIA, "P-1"),
            sequence: 2,
            place: code(GATESHEAD),
            severity: Severity::High,
            client_group: ClientGroup::YouthJustice,
        };
        let alert = Alert {
            sequence: 7,
            kind: AlertKind::MultiAgency,
            severity: Severity::High,
            place: code(GATESHEAD),
            client_group: Some(ClientGroup::YouthJustice),
            records: vec![council.key.clone(), police.key.clone()],
            agencies: vec![council.key.agency.clone(), police.key.agency.clone()],
            places: vec![code(NEWCASTLE), code(GATESHEAD)],
            subject: None,
            raised_by: 2,
            raised_at: OffsetDateTime::UNIX_EPOCH,
            detail: format!("one subject is now active at 2 agencies: {NEWCASTLE}, {NORTHUMBRIA}"),
        };
        (alert, vec![council, police])
    }

    fn seen(alert: &Alert, places: &[&str], involved: &[Involved]) -> Option<Alert> {
        let scope = Scope::new(places.iter().map(|p| code(p)).collect());
        alert
            .seen_from(&scope, &geography(), |_| {
                Ok::<_, std::convert::Infallible>(involved.to_vec())
            })
            .expect("infallible")
    }

    #[test]
    fn a_multi_agency_alert_is_trimmed_to_the_part_inside_the_scope() {
        let (alert, involved) = multi_agency();
        assert_eq!(seen(&alert, &[REGION], &involved), Some(alert.clone()));
        assert_eq!(seen(&alert, &[NORTHUMBRIA], &involved), Some(alert.clone()));

        let newcastle = seen(&alert, &[NEWCASTLE], &involved).expect("reaches Newcastle");
        assert_eq!(newcastle.records, vec![key(NEWCASTLE, "C-1")]);
        assert_eq!(
            newcastle.agencies,
            vec![AgencyId::parse(NEWCASTLE).expect("id")]
        );
        assert_eq!(newcastle.places, vec![code(NEWCASTLE)]);
        assert_eq!(newcastle.place, code(NEWCASTLE));
        assert_eq!(newcastle.severity, Severity::Low);
        assert_eq!(
            newcastle.client_group,
            Some(ClientGroup::ChildProtectionPlan)
        );
        assert!(
            !newcastle.detail.contains(NORTHUMBRIA),
            "{}",
            newcastle.detail
        );
        assert_eq!(newcastle.sequence, alert.sequence);

        let gateshead = seen(&alert, &[GATESHEAD], &involved).expect("reaches Gateshead");
        assert_eq!(gateshead.records, vec![key(NORTHUMBRIA, "P-1")]);
        assert_eq!(gateshead.severity, Severity::High);
        assert!(
            !gateshead.detail.contains(NEWCASTLE),
            "{}",
            gateshead.detail
        );

        assert_eq!(seen(&alert, &["E06000001"], &involved), None);
        assert_eq!(seen(&alert, &[], &involved), None);
    }

    #[test]
    fn a_footprint_alert_reaches_a_scope_covering_every_member() {
        let (mut alert, _) = multi_agency();
        alert.kind = AlertKind::PlaceThreshold;
        alert.place = code(NORTHUMBRIA);
        alert.places.clear();
        let geography = geography();
        let reaches = |places: &[&str]| {
            alert.reaches(
                &Scope::new(places.iter().map(|p| code(p)).collect()),
                &geography,
            )
        };
        assert!(reaches(&[REGION]));
        assert!(reaches(&[NORTHUMBRIA]));
        assert!(!reaches(&[NEWCASTLE]));
        assert!(
            !reaches(&[NEWCASTLE, GATESHEAD]),
            "each place on its own, as for views"
        );
        assert_eq!(seen(&alert, &[NEWCASTLE], &[]), None);
    }
}
