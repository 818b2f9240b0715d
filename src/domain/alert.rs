//! Alerts: durable, numbered events raised by the rules, for safeguarding boards.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::geography::Geography;
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
    /// Sequence of the revision that raised it; 0 for the staleness sweep.
    pub raised_by: u64,
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub raised_at: OffsetDateTime,
    /// What happened, in words.
    pub detail: String,
}

/// Which alerts a watcher or a listing wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// A place or footprint area: alerts anywhere in its subtree or footprint match.
    pub place: Option<PlaceCode>,
    /// Empty means every client group (alerts without one match only an empty list).
    pub client_groups: Vec<ClientGroup>,
    /// Empty means every kind.
    pub kinds: Vec<AlertKind>,
    pub min_severity: Option<Severity>,
    /// The places the asker may see: alerts elsewhere never match. `None` for no limit.
    pub scope: Option<Vec<PlaceCode>>,
}

impl AlertFilter {
    pub fn matches(&self, alert: &Alert, geography: &Geography) -> bool {
        self.scope.as_ref().is_none_or(|scope| {
            scope
                .iter()
                .any(|place| geography.within(alert.place, *place))
        }) && self
            .place
            .is_none_or(|scope| geography.within(alert.place, scope))
            && (self.client_groups.is_empty()
                || alert
                    .client_group
                    .is_some_and(|g| self.client_groups.contains(&g)))
            && (self.kinds.is_empty() || self.kinds.contains(&alert.kind))
            && self.min_severity.is_none_or(|min| alert.severity >= min)
    }
}
