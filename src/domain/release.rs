//! Releases of the public table: open data is published at scheduled points and frozen, not
//! answered live. Between two releases nothing the public sees moves, so a partner agency
//! cannot add its own records one at a time and watch a suppressed cell change.
//!
//! A release stands at one exact log sequence (the writer cuts it between batches) and holds
//! every table the public may ask for, already under disclosure control: for each place or
//! footprint area, one table per published level with places under it, unfiltered. Filters
//! are not offered on releases, because two differently filtered tables of the same records
//! could be differenced against each other.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::disclosure::{
    COMPARATIVE_COLUMNS, ComparativeTable, ContributedRow, Position, comparative_table_forced,
    rest_of, suppressed_positions,
};
use super::inspection::{Inspection, ViewFilter};
use super::{Geography, Place, PlaceCode, PlaceLevel};

/// The levels a release publishes rows at: never ward or LSOA.
pub const PUBLISHED_LEVELS: [PlaceLevel; 9] = [
    PlaceLevel::Country,
    PlaceLevel::Region,
    PlaceLevel::County,
    PlaceLevel::District,
    PlaceLevel::PoliceForceArea,
    PlaceLevel::CommunitySafetyPartnership,
    PlaceLevel::ClinicalCommissioningGroup,
    PlaceLevel::SubIcbLocation,
    PlaceLevel::IntegratedCareBoard,
];

/// When releases are cut: monthly, on a day of the month at an hour, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseSchedule {
    /// 1 to 28, so every month has the day.
    pub day_of_month: u8,
    /// 0 to 23.
    pub hour: u8,
}

impl Default for ReleaseSchedule {
    /// Midnight UTC on the first of each month.
    fn default() -> Self {
        Self {
            day_of_month: 1,
            hour: 0,
        }
    }
}

impl ReleaseSchedule {
    /// A schedule, refusing a day no month can be relied on to have or an hour past 23; the
    /// error names the field.
    pub fn new(day_of_month: u8, hour: u8) -> Result<Self, (&'static str, String)> {
        if !(1..=28).contains(&day_of_month) {
            return Err((
                "release_day_of_month",
                format!("{day_of_month} is not a day every month has (1 to 28)"),
            ));
        }
        if hour > 23 {
            return Err(("release_hour", format!("{hour} is not an hour (0 to 23)")));
        }
        Ok(Self { day_of_month, hour })
    }

    /// The release point in a month.
    fn point_in(&self, year: i32, month: Month) -> Option<OffsetDateTime> {
        let date = Date::from_calendar_date(year, month, self.day_of_month).ok()?;
        let time = Time::from_hms(self.hour, 0, 0).ok()?;
        Some(PrimitiveDateTime::new(date, time).assume_utc())
    }

    /// The latest scheduled point at or before `now`.
    pub fn latest_point(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let now = now.to_offset(time::UtcOffset::UTC);
        let this_month = self.point_in(now.year(), now.month())?;
        if this_month <= now {
            return Some(this_month);
        }
        let (year, month) = match now.month() {
            Month::January => (now.year() - 1, Month::December),
            month => (now.year(), month.previous()),
        };
        self.point_in(year, month)
    }
}

/// A release as listed: which one, when, and where in the log it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// 1, 2, 3… in the order releases were cut.
    pub number: u64,
    /// The log sequence the release stands at: every revision up to it, nothing after.
    pub sequence: u64,
    /// The point the figures are as at: the scheduled point, or the moment an administrator
    /// cut it. Its month is the release's time period.
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub as_at: OffsetDateTime,
    /// When the server cut it (later than `as_at` when the server was down at the point).
    #[serde(with = "time::serde::timestamp::nanoseconds")]
    pub cut_at: OffsetDateTime,
    /// Cut by the schedule, rather than by an administrator.
    pub scheduled: bool,
    /// How many tables it holds.
    pub tables: u64,
}

impl Release {
    /// The release's time period: the year and month its figures are as at.
    pub fn time_period(&self) -> (i32, Month) {
        let at = self.as_at.to_offset(time::UtcOffset::UTC);
        (at.year(), at.month())
    }
}

/// One frozen table of a release: the places of a level under a parent, already under
/// disclosure control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedTable {
    /// The parent as it was when the release was cut; the table's total row is its row.
    pub parent: Place,
    pub level: PlaceLevel,
    pub table: ComparativeTable,
}

/// The previous release: its tables by (parent, level), and the counters as they stood at
/// its sequence.
pub type PreviousRelease<'a> = (
    &'a BTreeMap<(PlaceCode, PlaceLevel), ReleasedTable>,
    &'a Inspection,
);

/// Every table a release publishes, computed from the counters: for each place or footprint
/// area above ward level, one table per published level with places under it, in parent code
/// then level order. Contributor-aware disclosure control is applied to each, taking the
/// previous release into account so that the two together give nothing away either.
///
/// The same count is published in several tables: a district's row under its county, its
/// region, England and every footprint area containing it, and a table's margin row is its
/// parent's own row, as in the tables above. Where a table's rows do not make up its parent
/// (records placed at a ward lie in no clinical commissioning group), the rest of the parent
/// is an unpublished row of that table in disclosure control, so that the margin less the
/// rows never gives a small rest away. Suppression is made consistent across all of them, or
/// a complement hidden in one table could be read from another and subtracted: every count
/// suppressed in any table is suppressed in every table that publishes it, and secondary
/// suppression runs again where that hid more, until nothing changes (suppression only
/// grows, so this ends).
pub fn release_tables(
    geography: &Geography,
    inspection: &Inspection,
    previous: Option<PreviousRelease<'_>>,
) -> Vec<ReleasedTable> {
    let everything = ViewFilter::default();
    let mut parents: Vec<&Place> = geography
        .all_places()
        .filter(|p| !matches!(p.level, PlaceLevel::Ward | PlaceLevel::Lsoa))
        .collect();
    parents.sort_by_key(|p| p.code);
    let candidates: Vec<(PlaceLevel, Vec<&Place>)> = PUBLISHED_LEVELS
        .iter()
        .map(|level| (*level, geography.places_of_level(*level)))
        .collect();
    let mut counts = Counts::default();
    let mut pending = Vec::new();
    for parent in parents {
        for (level, places) in &candidates {
            let rows: Vec<&Place> = places
                .iter()
                .copied()
                .filter(|place| {
                    place.code != parent.code && geography.covers(parent.code, place.code)
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let contributed = |counters: &Inspection| -> Vec<ContributedRow> {
                rows.iter()
                    .map(|place| {
                        (
                            (*place).clone(),
                            counters.views_by_agency(place.code, &everything),
                        )
                    })
                    .collect()
            };
            let whole = |counters: &Inspection| -> ContributedRow {
                (
                    parent.clone(),
                    counters.views_by_agency(parent.code, &everything),
                )
            };
            let mut earlier = previous.and_then(|(tables, counters)| {
                tables.get(&(parent.code, *level)).map(|table| {
                    let then = contributed(counters);
                    let rest = rest_of(&then, &whole(counters));
                    (&table.table, then, rest)
                })
            });
            let mut now = contributed(inspection);
            let rest_now = rest_of(&now, &whole(inspection));
            let mut lines: Vec<usize> = rows
                .iter()
                .map(|place| counts.id(Count::Place(place.code)))
                .collect();
            // The margin row is the parent's own count. Where the rows do not make it up (a
            // footprint of LSOAs under a region with records placed at a ward, say), the rest
            // of the parent, now or at the previous release, is a row of its own in
            // disclosure control, never published: the margin less the rows shown beside it
            // must not give it away. Where the rows hold more than the parent (they overlap),
            // there is no rest to speak of, and the margin row is the sum of the rows.
            let has_views = |rest: &Option<ContributedRow>| {
                rest.as_ref().is_some_and(|(_, views)| !views.is_empty())
            };
            let rest = rest_now.is_some()
                && (has_views(&rest_now)
                    || earlier.as_ref().is_some_and(|(_, _, then)| has_views(then)));
            let margin = if rest_now.is_some() {
                counts.id(Count::Place(parent.code))
            } else {
                counts.id(Count::Sum(rows.iter().map(|p| p.code).collect()))
            };
            if rest {
                let empty = (parent.clone(), Default::default());
                now.push(rest_now.unwrap_or_else(|| empty.clone()));
                if let Some((_, then, rest_then)) = &mut earlier {
                    then.push(rest_then.take().unwrap_or(empty));
                }
            }
            let earlier = earlier.map(|(table, then, _)| (table, then));
            lines.push(margin);
            pending.push(Pending {
                parent,
                level: *level,
                rows: now,
                rest,
                earlier,
                lines,
            });
        }
    }
    // Every (line, column) suppressed in some table so far.
    let mut suppressed: HashSet<(usize, usize)> = HashSet::new();
    let mut done: Vec<Option<(BTreeSet<Position>, ComparativeTable)>> = vec![None; pending.len()];
    loop {
        let mut grew = false;
        for (table, done) in pending.iter().zip(done.iter_mut()) {
            let forced: BTreeSet<Position> = table
                .lines
                .iter()
                .enumerate()
                .flat_map(|(r, line)| {
                    (0..=COMPARATIVE_COLUMNS)
                        .filter(|c| suppressed.contains(&(*line, *c)))
                        .map(move |c| (r, c))
                })
                .collect();
            if done.as_ref().is_some_and(|(before, _)| *before == forced) {
                continue;
            }
            let computed = comparative_table_forced(
                table.rows.clone(),
                table.rest,
                table
                    .earlier
                    .as_ref()
                    .map(|(table, then)| (*table, &then[..])),
                &forced,
            );
            for (r, c) in suppressed_positions(&computed) {
                grew |= suppressed.insert((table.lines[r], c));
            }
            *done = Some((forced, computed));
        }
        if !grew {
            break;
        }
    }
    pending
        .into_iter()
        .zip(done)
        .filter_map(|(table, done)| {
            done.map(|(_, computed)| ReleasedTable {
                parent: table.parent.clone(),
                level: table.level,
                table: computed,
            })
        })
        .collect()
}

/// One table of a release before disclosure control: its rows now and as the previous
/// release had them, and which count each of its rows (then its margin row) is.
struct Pending<'a> {
    parent: &'a Place,
    level: PlaceLevel,
    rows: Vec<ContributedRow>,
    /// Whether the last of `rows` (and of the earlier rows) is the rest of the parent.
    rest: bool,
    earlier: Option<(&'a ComparativeTable, Vec<ContributedRow>)>,
    lines: Vec<usize>,
}

/// What a row of a table counts: one place's records, or (a margin row) the records of
/// several places together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Count {
    Place(PlaceCode),
    Sum(Vec<PlaceCode>),
}

/// The rows published across a release, numbered: rows that are one and the same count (a
/// place's row wherever it is published, a parent's own row as a margin) share a number.
#[derive(Default)]
struct Counts {
    ids: HashMap<Count, usize>,
}

impl Counts {
    fn id(&mut self, count: Count) -> usize {
        let next = self.ids.len();
        *self.ids.entry(count).or_insert(next)
    }
}

/// The key a released table is found by.
pub fn table_key(table: &ReleasedTable) -> (PlaceCode, PlaceLevel) {
    (table.parent.code, table.level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_latest_point_is_this_months_once_passed_else_last_months() {
        let schedule = ReleaseSchedule::new(1, 6).expect("valid");
        assert_eq!(
            schedule.latest_point(datetime!(2026-11-26 09:00 UTC)),
            Some(datetime!(2026-11-01 06:00 UTC))
        );
        assert_eq!(
            schedule.latest_point(datetime!(2026-11-01 05:59 UTC)),
            Some(datetime!(2026-10-01 06:00 UTC))
        );
        assert_eq!(
            schedule.latest_point(datetime!(2026-01-01 00:00 UTC)),
            Some(datetime!(2025-12-01 06:00 UTC))
        );
        assert_eq!(
            ReleaseSchedule::new(29, 0).map_err(|e| e.0),
            Err("release_day_of_month")
        );
        assert_eq!(
            ReleaseSchedule::new(1, 24).map_err(|e| e.0),
            Err("release_hour")
        );
    }
}
