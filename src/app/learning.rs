//! Learning across reviews: an area's collective lessons, open to everyone, and the lines of
//! enquiry for the next review of a place in an inspector's or board's places.

use std::collections::BTreeMap;

use time::{Date, Duration};

use super::{AppError, Application};
use crate::auth::Caller;
use crate::domain::inspection::{PlaceView, ViewFilter};
use crate::domain::learning::{
    Enquiry, EnquiryInputs, Lessons, Period, Relation, ThemeMeasure, lessons, lines_of_enquiry,
};
use crate::domain::review::{Review, Theme};
use crate::domain::{ClientGroup, Invalid, Place, PlaceCode, PlaceLevel, Scope, Vocabulary};

/// Longest period lessons are drawn over, in days (five years): the answer names every
/// finding it counts, so its size follows the period.
pub const MAX_LESSONS_DAYS: i64 = 5 * 366;

/// England, the area lessons are drawn from when none is named.
pub const ENGLAND: &str = "E92000001";

/// An area's lessons, with the area as the directory has it.
#[derive(Debug, Clone)]
pub struct LessonsAnswer {
    pub area: Place,
    pub lessons: Lessons,
}

/// Lines of enquiry for a place, with the places whose reviews were read.
#[derive(Debug, Clone)]
pub struct EnquiryAnswer {
    pub place: Place,
    pub enquiry: Enquiry,
    /// The statistical neighbours read, in the DfE's order.
    pub neighbours: Vec<Place>,
    pub region: Option<Place>,
}

/// A date of a request, `YYYY-MM-DD`, or `None` when empty.
pub fn parse_date(field: &str, text: &str) -> Result<Option<Date>, Invalid> {
    if text.is_empty() {
        return Ok(None);
    }
    crate::domain::record::parse_iso_date(text)
        .map(Some)
        .ok_or_else(|| Invalid::one(field, "is not a date written YYYY-MM-DD"))
}

impl Application {
    /// The lessons of reviews published in `area` (England when `None`) between `from` and
    /// `until`: until defaults to the end of today, from to a year before until.
    pub fn lessons(
        &self,
        area: Option<&str>,
        from: Option<Date>,
        until: Option<Date>,
    ) -> Result<LessonsAnswer, AppError> {
        let code = self.store.place_code(
            "area_code",
            area.filter(|a| !a.is_empty()).unwrap_or(ENGLAND),
        )?;
        let area = self
            .place_named(code)
            .ok_or_else(|| AppError::NotFound(format!("no place {code}")))?;
        let until = until.unwrap_or_else(|| self.store.now().date() + Duration::days(1));
        let from = from.unwrap_or_else(|| until - Duration::days(365));
        let period = Period::new(from, until).map_err(|reason| Invalid::one("until", reason))?;
        if (until - from).whole_days() > MAX_LESSONS_DAYS {
            return Err(Invalid::one(
                "from",
                format!("the period may be at most {MAX_LESSONS_DAYS} days (five years) long"),
            )
            .into());
        }
        let within = Scope::new(vec![area.code]);
        let now = self.store.now();
        let all = self.store.reviews()?;
        let reviews = all
            .iter()
            .filter(|review| review.is_published(now) && self.store.covers(&within, review.place));
        Ok(LessonsAnswer {
            lessons: lessons(reviews, &period),
            area,
        })
    }

    /// Ranked lines of enquiry for the next review of a place in the caller's places. The
    /// place's measures are set against those of its statistical neighbours in the caller's
    /// places only, so nothing outside them shapes an answer.
    pub fn lines_of_enquiry(
        &self,
        caller: &Caller,
        place: &str,
    ) -> Result<EnquiryAnswer, AppError> {
        let code = self.place_in_scope(caller, "place_code", place)?;
        let detail = self
            .store
            .place(code)
            .ok_or_else(|| AppError::NotFound(format!("no place {code}")))?;
        let region = detail
            .ancestors
            .iter()
            .find(|ancestor| ancestor.level == PlaceLevel::Region)
            .cloned();
        let neighbours: Vec<Place> = self
            .store
            .neighbours_of(code)
            .iter()
            .filter_map(|neighbour| self.place_named(neighbour.place))
            .collect();
        let own = Scope::new(vec![code]);
        let beside: Vec<(PlaceCode, Scope)> = neighbours
            .iter()
            .map(|n| (n.code, Scope::new(vec![n.code])))
            .collect();
        let in_region = region.as_ref().map(|r| Scope::new(vec![r.code]));
        let now = self.store.now();
        let reviews = self.store.reviews()?;
        let related: Vec<(Relation, &Review)> = reviews
            .iter()
            .filter(|review| review.is_published(now))
            .filter_map(|review| {
                let relation = if self.store.covers(&own, review.place) {
                    Relation::Own
                } else if beside
                    .iter()
                    .any(|(_, scope)| self.store.covers(scope, review.place))
                {
                    Relation::Neighbour
                } else if in_region
                    .as_ref()
                    .is_some_and(|scope| self.store.covers(scope, review.place))
                {
                    Relation::Region
                } else {
                    return None;
                };
                Some((relation, review))
            })
            .collect();
        let compared: Vec<PlaceCode> = beside
            .iter()
            .map(|(code, _)| *code)
            .filter(|code| caller.in_scope(&self.store, *code))
            .collect();
        let profile = self.profile(code, &compared)?;
        let enquiry = lines_of_enquiry(&EnquiryInputs {
            place: code,
            reviews: related,
            now: self.store.now(),
            profile,
        });
        Ok(EnquiryAnswer {
            place: detail.place,
            enquiry,
            neighbours,
            region,
        })
    }

    /// Where the place stands against its neighbours: each client group's rate per 10,000 of
    /// its population against the neighbours' mean rate, and each category's share of active
    /// records against the neighbours' pooled share.
    fn profile(
        &self,
        place: PlaceCode,
        neighbours: &[PlaceCode],
    ) -> Result<Vec<ThemeMeasure>, AppError> {
        if neighbours.is_empty() {
            return Ok(Vec::new());
        }
        let view = |code: PlaceCode| -> Result<PlaceView, AppError> {
            Ok(self.store.place_view(code, &ViewFilter::default(), None)?)
        };
        let own = view(place)?;
        let others: Vec<PlaceView> = neighbours
            .iter()
            .map(|c| view(*c))
            .collect::<Result<_, _>>()?;
        let own_rates = self.store.rates(place, &own.by_client_group);
        let other_rates: Vec<_> = others
            .iter()
            .map(|v| self.store.rates(v.place, &v.by_client_group))
            .collect();
        let mut profile = Vec::new();
        for group in ClientGroup::ALL {
            let Some(rate) = own_rates.get(group) else {
                continue;
            };
            let theirs: Vec<f64> = other_rates
                .iter()
                .filter_map(|rates| rates.get(group).map(|r| r.per_10000))
                .collect();
            if theirs.is_empty() {
                continue;
            }
            profile.push(ThemeMeasure {
                theme: Theme::ClientGroup(*group),
                place: rate.per_10000,
                comparison: theirs.iter().sum::<f64>() / theirs.len() as f64,
                measure: format!("rate per 10,000 people {}", rate.band.label()),
            });
        }
        let their_total: u64 = others.iter().map(|v| v.total).sum();
        if own.total > 0 && their_total > 0 {
            let mut theirs: BTreeMap<_, u64> = BTreeMap::new();
            for other in &others {
                for (category, count) in &other.by_category {
                    *theirs.entry(*category).or_default() += count;
                }
            }
            for (category, count) in &own.by_category {
                profile.push(ThemeMeasure {
                    theme: Theme::Category(*category),
                    place: *count as f64 / own.total as f64,
                    comparison: theirs.get(category).copied().unwrap_or(0) as f64
                        / their_total as f64,
                    measure: "share of active records".into(),
                });
            }
        }
        Ok(profile)
    }
}
