//! Inspection: place views across agencies, comparisons, risks under a place, subject trails
//! and snapshots, each within the caller's places.

use std::collections::BTreeMap;

use super::{AppError, Application, blocking};
use crate::auth::Caller;
use crate::domain::boundaries::Shape;
use crate::domain::free_text::{check_label, check_purpose};
use crate::domain::inspection::{PlaceMeasure, PlaceView, ViewFilter};
use crate::domain::neighbours::NeighbourComparison;
use crate::domain::population::Rate;
use crate::domain::{
    Agency, AgencyId, ClientGroup, Invalid, Place, PlaceCode, Revision, SubjectKey,
};
use crate::store::{RiskPage, Snapshot, SnapshotRequest, ViewNames};

/// A live view of a place, named as the directory has things now.
#[derive(Debug, Clone)]
pub struct PlaceViewAnswer {
    /// The code as asked (a replaced code, or an ODS code, may stand for `view.place`).
    pub asked: PlaceCode,
    pub view: PlaceView,
    pub names: ViewNames,
    /// Rates per 10,000 for the client groups whose population is known.
    pub rates: BTreeMap<ClientGroup, Rate>,
}

/// One place in a comparison, with its name and rates.
#[derive(Debug, Clone)]
pub struct ComparedPlace {
    pub view: PlaceView,
    pub place: Option<Place>,
    pub rates: BTreeMap<ClientGroup, Rate>,
}

/// One point of a trend: the total at the end of a month (the last point: now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendPoint {
    /// `YYYY-MM`.
    pub month: String,
    pub total: u64,
    /// The log sequence the total is consistent with.
    pub sequence: u64,
}

/// Totals at past month ends by (place, filter, sequence): as-of views cost a replay, and a
/// view as of a sequence never changes. Bounded; emptied when full.
#[derive(Debug, Default)]
pub struct TrendCache {
    totals: std::sync::Mutex<std::collections::HashMap<(PlaceCode, String, u64), u64>>,
    /// Trends being worked out now, by place and filter.
    working: std::sync::Mutex<std::collections::HashSet<(PlaceCode, String)>>,
}

/// A place's trend, or word that it is being worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trend {
    Ready(Vec<TrendPoint>),
    /// Some month ends are not yet known; they are being worked out. Ask again shortly.
    Computing,
}

/// Trends worked out in the background at once, across all callers.
const TRENDS_WORKED_AT_ONCE: usize = 2;

/// Totals kept in the trend cache at most.
const TREND_CACHE_ENTRIES: usize = 20_000;

impl TrendCache {
    fn get(&self, key: &(PlaceCode, String, u64)) -> Option<u64> {
        self.totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    /// Marks a trend as being worked out; false if it already is, or if as many as the
    /// machine should replay at once already are (a later visit starts it then), so that
    /// visits naming many places or filters cannot queue unbounded background work.
    fn begin(&self, trend: (PlaceCode, String)) -> bool {
        let mut working = self.working.lock().unwrap_or_else(|p| p.into_inner());
        working.len() < TRENDS_WORKED_AT_ONCE && working.insert(trend)
    }

    fn end(&self, trend: &(PlaceCode, String)) {
        self.working
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(trend);
    }

    fn put(&self, key: (PlaceCode, String, u64), total: u64) {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        if totals.len() >= TREND_CACHE_ENTRIES {
            totals.clear();
        }
        totals.insert(key, total);
    }
}

/// The first instant of the month `back` months before the one `at` is in.
fn month_start(at: time::OffsetDateTime, back: u32) -> time::OffsetDateTime {
    let months = at.year() * 12 + i32::from(u8::from(at.month())) - 1 - back as i32;
    let (year, month) = (months.div_euclid(12), months.rem_euclid(12) + 1);
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .unwrap_or(time::Month::January);
    time::Date::from_calendar_date(year, month, 1)
        .map(|date| date.midnight().assume_utc())
        .unwrap_or(at)
}

fn month_label(at: time::OffsetDateTime) -> String {
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

/// A place's children side by side.
#[derive(Debug, Clone)]
pub struct ChildComparison {
    /// The place whose children these are.
    pub parent: Option<Place>,
    pub rows: Vec<ComparedPlace>,
    pub consistent_at: u64,
}

/// A place beside its statistical neighbours, region and England.
#[derive(Debug, Clone)]
pub struct NeighbourAnswer {
    pub comparison: NeighbourComparison,
    /// Each row's place, in the rows' order.
    pub places: Vec<Option<Place>>,
}

/// One revision on a subject's trail, with who holds it and where.
#[derive(Debug, Clone)]
pub struct TrailEntry {
    pub revision: Revision,
    pub agency: Option<Agency>,
    pub place: Option<Place>,
}

/// A subject's records across agencies, within the caller's places.
#[derive(Debug, Clone)]
pub struct Trail {
    pub entries: Vec<TrailEntry>,
    pub consistent_at: u64,
}

impl Application {
    /// A known place code, or NOT_FOUND; a replaced code gives the code that replaced it.
    fn known_place(&self, field: &str, code: &str) -> Result<PlaceCode, AppError> {
        let code = self.store.place_code(field, code)?;
        self.store
            .place(code)
            .map(|detail| detail.place.code)
            .ok_or_else(|| AppError::NotFound(format!("no place {code}")))
    }

    /// A known place the caller may see: NOT_FOUND if unknown (geography is public), else
    /// PERMISSION_DENIED if outside the caller's places.
    pub(crate) fn place_in_scope(
        &self,
        caller: &Caller,
        field: &str,
        code: &str,
    ) -> Result<PlaceCode, AppError> {
        let place = self.known_place(field, code)?;
        caller.sees(&self.store, place)?;
        caller.touched(|t| t.place = Some(place));
        Ok(place)
    }

    /// A place's view, live or as of a sequence, with names and rates.
    pub async fn place_view(
        &self,
        caller: &Caller,
        place: &str,
        filter: ViewFilter,
        as_of: Option<u64>,
    ) -> Result<PlaceViewAnswer, AppError> {
        // The code as named (a GSS or ODS code), and the place that stands for it today.
        let asked = self.store.place_code("place_code", place)?;
        let place = self.place_in_scope(caller, "place_code", asked.as_str())?;
        let store = self.store.clone();
        let view = blocking(move || store.place_view(place, &filter, as_of)).await?;
        Ok(PlaceViewAnswer {
            asked,
            names: self.store.view_names(&view),
            rates: self.store.rates(view.place, &view.by_client_group),
            view,
        })
    }

    /// A place's total at the end of each of the last `months - 1` months and now, from
    /// as-of views of the log. Past month ends never change, so each is worked out once and
    /// kept; a page does not wait for that: when some are not yet known this answers
    /// [`Trend::Computing`] and works them out in the background.
    pub async fn place_trend(
        &self,
        caller: &Caller,
        place: &str,
        filter: &ViewFilter,
        months: u32,
    ) -> Result<Trend, AppError> {
        let place = self.place_in_scope(caller, "place_code", place)?;
        let now = self.store.now();
        let filter_key = format!("{filter:?}");
        // The month ends' sequences, by halving the log: a few reads each.
        let ends: Vec<(String, u64)> = {
            let store = self.store.clone();
            let ends: Vec<(String, time::OffsetDateTime)> = (0..months.saturating_sub(1))
                .rev()
                .map(|back| {
                    (
                        month_label(month_start(now, back + 1)),
                        month_start(now, back),
                    )
                })
                .collect();
            blocking(move || {
                ends.into_iter()
                    .map(|(label, end)| Ok((label, store.sequence_at(end)?)))
                    .collect()
            })
            .await?
        };
        let known: Vec<Option<u64>> = ends
            .iter()
            .map(|(_, sequence)| match sequence {
                0 => Some(0),
                sequence => self.trends.get(&(place, filter_key.clone(), *sequence)),
            })
            .collect();
        if known.iter().any(Option::is_none) {
            self.work_out_trend(place, filter.clone(), filter_key, ends);
            return Ok(Trend::Computing);
        }
        let mut points: Vec<TrendPoint> = ends
            .into_iter()
            .zip(known)
            .map(|((month, sequence), total)| TrendPoint {
                month,
                total: total.unwrap_or(0),
                sequence,
            })
            .collect();
        let store = self.store.clone();
        let filter = filter.clone();
        let live = blocking(move || store.place_view(place, &filter, None)).await?;
        points.push(TrendPoint {
            month: month_label(now),
            total: live.total,
            sequence: live.consistent_at,
        });
        Ok(Trend::Ready(points))
    }

    /// Works out the month-end totals not yet known, in the background, once per place and
    /// filter at a time.
    fn work_out_trend(
        &self,
        place: PlaceCode,
        filter: ViewFilter,
        filter_key: String,
        ends: Vec<(String, u64)>,
    ) {
        if !self.trends.begin((place, filter_key.clone())) {
            return;
        }
        let (store, trends) = (self.store.clone(), std::sync::Arc::clone(&self.trends));
        tokio::task::spawn_blocking(move || {
            for (_, sequence) in ends.into_iter().filter(|(_, s)| *s > 0) {
                let key = (place, filter_key.clone(), sequence);
                if trends.get(&key).is_some() {
                    continue;
                }
                match store.place_view(place, &filter, Some(sequence)) {
                    Ok(view) => trends.put(key, view.total),
                    Err(error) => {
                        tracing::warn!(%error, %place, "cannot work out a month's total");
                        break;
                    }
                }
            }
            trends.end(&(place, filter_key));
        });
    }

    /// The boundaries of these places, for maps (reference data anyone may read), in order;
    /// `None` where the register holds none (wards and LSOAs have none).
    pub async fn shapes(&self, places: Vec<PlaceCode>) -> Result<Vec<Option<Shape>>, AppError> {
        let store = self.store.clone();
        blocking(move || store.shapes(&places)).await
    }

    /// A place's children side by side, ordered by `measure`.
    pub fn compare_children(
        &self,
        caller: &Caller,
        parent: &str,
        filter: &ViewFilter,
        measure: PlaceMeasure,
    ) -> Result<ChildComparison, AppError> {
        let parent = self.place_in_scope(caller, "parent_code", parent)?;
        let views = self.store.compare_places(parent, filter, measure);
        let consistent_at = views
            .first()
            .map_or(self.store.head_sequence(), |v| v.consistent_at);
        let codes: Vec<PlaceCode> = views.iter().map(|v| v.place).collect();
        let rows = views
            .into_iter()
            .zip(self.store.places(&codes))
            .map(|(view, place)| ComparedPlace {
                rates: self.store.rates(view.place, &view.by_client_group),
                view,
                place,
            })
            .collect();
        Ok(ChildComparison {
            parent: self.store.places(&[parent]).into_iter().flatten().next(),
            rows,
            consistent_at,
        })
    }

    /// A place beside its statistical neighbours, ranked by the rate of `rate_of`; rows
    /// outside the caller's places are left out and counted.
    pub fn compare_with_neighbours(
        &self,
        caller: &Caller,
        place: &str,
        filter: &ViewFilter,
        rate_of: ClientGroup,
    ) -> Result<NeighbourAnswer, AppError> {
        let place = self.place_in_scope(caller, "parent_code", place)?;
        let comparison =
            self.store
                .compare_with_neighbours(place, filter, rate_of, &caller.scope())?;
        let codes: Vec<PlaceCode> = comparison.rows.iter().map(|r| r.view.place).collect();
        Ok(NeighbourAnswer {
            places: self.store.places(&codes),
            comparison,
        })
    }

    /// One page of the risks under a place, newest first; each record listed is noted for
    /// the audit event.
    pub async fn list_risks(
        &self,
        caller: &Caller,
        place: &str,
        filter: ViewFilter,
        page_size: usize,
        before: Option<u64>,
        as_of: Option<u64>,
    ) -> Result<RiskPage, AppError> {
        let place = self.place_in_scope(caller, "place_code", place)?;
        let store = self.store.clone();
        let page =
            blocking(move || store.list_risks(place, &filter, page_size, before, as_of)).await?;
        caller.touched(|t| {
            t.records = page
                .revisions
                .iter()
                .map(|r| r.record.key.clone())
                .collect();
        });
        Ok(page)
    }

    /// A subject's trail across agencies within the caller's places. The purpose is required
    /// and kept in the audit event.
    pub async fn follow_subject(
        &self,
        caller: &Caller,
        subject: SubjectKey,
        purpose: &str,
        as_of: Option<u64>,
    ) -> Result<Trail, AppError> {
        let purpose = purpose.trim().to_string();
        // Checked before anything is noted for the audit event, so a refused purpose is
        // never written to the chain.
        check_purpose(&purpose).map_err(|refusal| {
            let reason = format!("say why you follow this subject: the purpose {refusal}");
            Invalid::one("purpose", reason)
        })?;
        caller.touched(|t| {
            t.subject = Some(subject);
            t.purpose = purpose;
        });
        let store = self.store.clone();
        let (trail, consistent_at) = blocking(move || store.follow_subject(subject, as_of)).await?;
        // An inspector sees the trail inside its places only.
        let trail: Vec<Revision> = trail
            .into_iter()
            .filter(|revision| caller.in_scope(&self.store, revision.record.place))
            .collect();
        caller.touched(|t| t.records = trail.iter().map(|r| r.record.key.clone()).collect());
        let agencies: BTreeMap<AgencyId, Agency> = self
            .store
            .agencies()
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let places = self
            .store
            .places(&trail.iter().map(|r| r.record.place).collect::<Vec<_>>());
        let entries = trail
            .into_iter()
            .zip(places)
            .map(|(revision, place)| TrailEntry {
                agency: agencies.get(&revision.record.key.agency).cloned(),
                revision,
                place,
            })
            .collect();
        Ok(Trail {
            entries,
            consistent_at,
        })
    }

    /// Freezes a place's view under a label.
    pub async fn create_snapshot(
        &self,
        caller: &Caller,
        place: &str,
        filter: ViewFilter,
        label: &str,
    ) -> Result<Snapshot, AppError> {
        let place = self.place_in_scope(caller, "place_code", place)?;
        let label = label.trim().to_string();
        check_label(&label).map_err(|refusal| Invalid::one("label", refusal))?;
        let request = SnapshotRequest {
            place,
            filter,
            label,
        };
        Ok(self.store.create_snapshot(request, caller.actor()).await?)
    }

    /// The newest snapshots of places in the caller's places (of the latest `read` taken).
    pub fn snapshots(&self, caller: &Caller, read: usize) -> Result<Vec<Snapshot>, AppError> {
        Ok(self.store.snapshots_newest_first(read, |snapshot| {
            caller.in_scope(&self.store, snapshot.view.place)
        })?)
    }

    /// A snapshot of a place in the caller's places. One outside them is answered as if it
    /// did not exist, so snapshot numbers say nothing about other areas' inspections. A
    /// snapshot stored before names were kept is named as the directory has things now.
    pub fn snapshot(&self, caller: &Caller, id: u64) -> Result<Snapshot, AppError> {
        let mut snapshot = self
            .store
            .snapshot(id)?
            .filter(|snapshot| caller.in_scope(&self.store, snapshot.view.place))
            .ok_or_else(|| AppError::NotFound(format!("no snapshot {id} in your places")))?;
        if snapshot.names.is_empty() {
            snapshot.names = self.store.view_names(&snapshot.view);
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_trends_are_bounded_and_one_per_place_and_filter() {
        let cache = TrendCache::default();
        let trend = |code: &str| (PlaceCode::parse(code).expect("code"), String::new());
        assert!(cache.begin(trend("E08000021")));
        assert!(!cache.begin(trend("E08000021")), "already being worked out");
        assert!(cache.begin(trend("E08000037")));
        assert!(!cache.begin(trend("E06000001")), "no more than two at once");
        cache.end(&trend("E08000021"));
        assert!(cache.begin(trend("E06000001")), "room again once one ends");
    }

    #[test]
    fn month_starts_step_back_across_years() {
        let at = time::macros::datetime!(2026-01-15 10:30 UTC);
        assert_eq!(
            month_start(at, 0),
            time::macros::datetime!(2026-01-01 0:00 UTC)
        );
        assert_eq!(
            month_start(at, 1),
            time::macros::datetime!(2025-12-01 0:00 UTC)
        );
        assert_eq!(
            month_start(at, 13),
            time::macros::datetime!(2024-12-01 0:00 UTC)
        );
        assert_eq!(month_label(month_start(at, 2)), "2025-11");
    }
}
