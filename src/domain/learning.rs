//! What published reviews teach, read across many of them: the collective lessons of an area
//! over a period, and the lines of enquiry worth taking into the next review of a place.
//!
//! Both are pure functions of reviews the caller has already chosen: the latest revision of
//! each, published, and (for lessons) inside the area asked about. Nothing here reads a finding's
//! free text; what comes out names reviews by number, title, kind and place code, themes by
//! their label, and counts.
//!
//! # Collective lessons
//!
//! [`lessons`] counts, for each theme, the findings of reviews published in a [`Period`] by
//! judgement, with the findings behind each count as [`Evidence`], and sets the period's total
//! beside the total of the period of equal length just before it ([`Change`]).
//!
//! # Lines of enquiry
//!
//! [`lines_of_enquiry`] ranks themes for the next review of a place by what reviews of similar
//! places found and by how the place's own records stand:
//!
//! - Each finding of a statistical neighbour's review published in the last
//!   [`ELSEWHERE_LOOKBACK_YEARS`] years weighs 2, of another review in the region 1
//!   ([`Relation::weight`]); a priority action multiplies that by 3, an area for improvement by
//!   2, a strength by 0 (a strength elsewhere is not a line of enquiry, so it is not evidence
//!   either). A theme's *recurrence* is the sum.
//! - The *profile factor* is the place's measure for the theme over its statistical neighbours'
//!   ([`ThemeMeasure`]), clamped between [`FACTOR_MIN`] and [`FACTOR_MAX`] so one measure can
//!   neither bury nor swamp what reviews found; 1 where there is no measure or nothing to compare with.
//! - *score* = recurrence × factor. Themes with recurrence 0 are not suggested.
//! - A theme any finding of the place's own reviews published in the last
//!   [`OWN_RECENT_YEARS`] years already covers (with any judgement) is not suggested: it was
//!   looked at recently. It is listed in [`Enquiry::covered`] with those findings, so a reader
//!   sees why it is absent.
//! - Lines rank by score, then recurrence, then theme order ([`Theme::all`]).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use time::{Date, OffsetDateTime, UtcOffset};

use super::record::PlaceCode;
use super::review::{Judgement, Review, ReviewKind, Theme};

/// A span of publication dates: `from` inclusive, `until` exclusive, dates in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub from: Date,
    pub until: Date,
}

impl Period {
    /// The period from `from` up to (not including) `until`, refused unless `until` is later.
    pub fn new(from: Date, until: Date) -> Result<Period, String> {
        if until <= from {
            return Err("the period must end after it starts (until is exclusive)".to_string());
        }
        Ok(Period { from, until })
    }

    /// The period of equal length that ends where this one starts.
    pub fn previous(&self) -> Period {
        let length = self.until - self.from;
        Period {
            from: self.from.checked_sub(length).unwrap_or(Date::MIN),
            until: self.from,
        }
    }

    /// Whether `at` falls in the period, by its date in UTC.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        let date = at.to_offset(UtcOffset::UTC).date();
        self.from <= date && date < self.until
    }
}

/// One finding of a published review, named by what a reader needs to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The review's number.
    pub review: u64,
    pub title: String,
    pub kind: ReviewKind,
    /// The place or footprint area reviewed.
    pub place: PlaceCode,
    /// The finding's number in the review, from 1.
    pub finding: u32,
    pub judgement: Judgement,
    pub published_at: OffsetDateTime,
}

impl Evidence {
    /// The finding at `index` (from 0) of `review`.
    fn of(review: &Review, index: usize, judgement: Judgement) -> Evidence {
        Evidence {
            review: review.id,
            title: review.title.clone(),
            kind: review.kind,
            place: review.place,
            finding: u32::try_from(index + 1).unwrap_or(u32::MAX),
            judgement,
            published_at: review.published_at,
        }
    }

    /// Oldest first, then by review and finding: the order a reader follows a story in.
    fn chronological(&self) -> (OffsetDateTime, u64, u32) {
        (self.published_at, self.review, self.finding)
    }
}

/// How a theme's count moved from the previous period to this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// None before, some now.
    New,
    /// More now than before.
    Rising,
    /// Fewer now than before, but some.
    Falling,
    /// As many now as before.
    Steady,
    /// Some before, none now.
    Gone,
}

impl Change {
    fn between(previous: u32, now: u32) -> Change {
        match (previous, now) {
            (0, _) => Change::New,
            (_, 0) => Change::Gone,
            (p, n) if n > p => Change::Rising,
            (p, n) if n < p => Change::Falling,
            _ => Change::Steady,
        }
    }
}

/// The findings of one judgement on one theme in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u32,
    /// The findings counted, oldest first; as many as `count`.
    pub evidence: Vec<Evidence>,
}

impl Tally {
    fn add(&mut self, evidence: Evidence) {
        self.count += 1;
        self.evidence.push(evidence);
    }
}

/// What the area's reviews found on one theme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThemeLesson {
    pub theme: Theme,
    pub strength: Tally,
    pub area_for_improvement: Tally,
    pub priority_action: Tally,
    /// Findings on the theme in the period, of any judgement.
    pub total: u32,
    /// Findings on the theme in the previous period.
    pub previous_total: u32,
    pub change: Change,
}

impl ThemeLesson {
    fn new(theme: Theme) -> ThemeLesson {
        ThemeLesson {
            theme,
            strength: Tally::default(),
            area_for_improvement: Tally::default(),
            priority_action: Tally::default(),
            total: 0,
            previous_total: 0,
            change: Change::Steady,
        }
    }

    /// The tally of one judgement.
    pub fn tally(&self, judgement: Judgement) -> &Tally {
        match judgement {
            Judgement::Strength => &self.strength,
            Judgement::AreaForImprovement => &self.area_for_improvement,
            Judgement::PriorityAction => &self.priority_action,
        }
    }

    fn tally_mut(&mut self, judgement: Judgement) -> &mut Tally {
        match judgement {
            Judgement::Strength => &mut self.strength,
            Judgement::AreaForImprovement => &mut self.area_for_improvement,
            Judgement::PriorityAction => &mut self.priority_action,
        }
    }
}

/// The collective lessons of an area over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lessons {
    pub period: Period,
    /// The period of equal length just before, that [`ThemeLesson::previous_total`] counts.
    pub previous: Period,
    /// Reviews published in the period.
    pub reviews: usize,
    /// Findings of those reviews.
    pub findings: usize,
    /// Every theme found in the period or the previous one: most findings in the period first,
    /// then most priority actions, then theme order. A theme found only before has total 0.
    pub themes: Vec<ThemeLesson>,
}

/// The lessons of `reviews` for `period`.
///
/// The caller passes the latest revision of each review that is published and inside the area
/// asked about (by place, as the caller's geography decides); this function filters only by
/// publication date, keeping what falls in `period` or in `period.previous()`.
pub fn lessons<'a>(reviews: impl IntoIterator<Item = &'a Review>, period: &Period) -> Lessons {
    let previous = period.previous();
    let mut themes: BTreeMap<Theme, ThemeLesson> = BTreeMap::new();
    let mut review_count = 0;
    let mut finding_count = 0;
    for review in reviews {
        let now = period.contains(review.published_at);
        let before = previous.contains(review.published_at);
        if !now && !before {
            continue;
        }
        if now {
            review_count += 1;
            finding_count += review.findings.len();
        }
        for (index, finding) in review.findings.iter().enumerate() {
            let lesson = themes
                .entry(finding.theme)
                .or_insert_with(|| ThemeLesson::new(finding.theme));
            if now {
                lesson.total += 1;
                lesson.tally_mut(finding.judgement).add(Evidence::of(
                    review,
                    index,
                    finding.judgement,
                ));
            } else {
                lesson.previous_total += 1;
            }
        }
    }
    let mut themes: Vec<ThemeLesson> = themes.into_values().collect();
    for lesson in &mut themes {
        lesson.change = Change::between(lesson.previous_total, lesson.total);
        for judgement in [
            Judgement::Strength,
            Judgement::AreaForImprovement,
            Judgement::PriorityAction,
        ] {
            lesson
                .tally_mut(judgement)
                .evidence
                .sort_by_key(Evidence::chronological);
        }
    }
    // Stable sort over theme order keeps theme order as the last tie-break.
    themes.sort_by_key(|lesson| (Reverse(lesson.total), Reverse(lesson.priority_action.count)));
    Lessons {
        period: *period,
        previous,
        reviews: review_count,
        findings: finding_count,
        themes,
    }
}

/// How far back findings of neighbours' and regional reviews count, in years.
pub const ELSEWHERE_LOOKBACK_YEARS: i32 = 3;
/// How far back the place's own reviews count as having covered a theme, in years.
pub const OWN_RECENT_YEARS: i32 = 2;
/// The least the profile factor can be.
pub const FACTOR_MIN: f64 = 0.5;
/// The most the profile factor can be.
pub const FACTOR_MAX: f64 = 3.0;

/// How a review relates to the place whose next review is being planned; the caller decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    /// A review of the place itself.
    Own,
    /// A review of one of the place's statistical neighbours.
    Neighbour,
    /// A review of another place in the place's region.
    Region,
}

impl Relation {
    /// How much a finding of such a review weighs: a statistical neighbour is the closer
    /// comparison, so counts twice; the place's own reviews do not count towards recurrence.
    pub fn weight(self) -> u32 {
        match self {
            Relation::Own => 0,
            Relation::Neighbour => 2,
            Relation::Region => 1,
        }
    }
}

/// How much a finding's judgement weighs towards a line of enquiry elsewhere.
pub fn judgement_weight(judgement: Judgement) -> u32 {
    match judgement {
        Judgement::PriorityAction => 3,
        Judgement::AreaForImprovement => 2,
        Judgement::Strength => 0,
    }
}

/// One measure of the place's own records for a client-group or category theme, beside the
/// same measure for its statistical neighbours taken together (the caller computes both).
#[derive(Debug, Clone, PartialEq)]
pub struct ThemeMeasure {
    pub theme: Theme,
    /// The place's value.
    pub place: f64,
    /// The statistical neighbours' value.
    pub comparison: f64,
    /// What is measured, as it reads in a sentence: "rate per 10,000 children", "share of
    /// active records".
    pub measure: String,
}

impl ThemeMeasure {
    /// The ratio place / comparison and that ratio clamped between [`FACTOR_MIN`] and
    /// [`FACTOR_MAX`], or `None` when there is nothing to compare with.
    fn factor(&self) -> Option<(f64, f64)> {
        if !(self.comparison > 0.0 && self.comparison.is_finite() && self.place.is_finite()) {
            return None;
        }
        let ratio = self.place / self.comparison;
        Some((ratio, ratio.clamp(FACTOR_MIN, FACTOR_MAX)))
    }
}

/// What [`lines_of_enquiry`] reads.
#[derive(Debug, Clone)]
pub struct EnquiryInputs<'a> {
    /// The place whose next review is being planned.
    pub place: PlaceCode,
    /// The latest revision of each published review, tagged with how it relates to the place.
    /// A review not yet published at `now` is ignored.
    pub reviews: Vec<(Relation, &'a Review)>,
    pub now: OffsetDateTime,
    /// The place's risk profile; where a theme has more than one measure, the first counts.
    pub profile: Vec<ThemeMeasure>,
}

/// A suggested line of enquiry for the next review of a place.
#[derive(Debug, Clone, PartialEq)]
pub struct LineOfEnquiry {
    /// 1 for the strongest suggestion.
    pub rank: usize,
    pub theme: Theme,
    /// recurrence × factor.
    pub score: f64,
    /// The weighted count of findings elsewhere (see the module documentation).
    pub recurrence: u32,
    /// Exactly the findings that make up the recurrence: neighbours first, then the region,
    /// each oldest first.
    pub evidence: Vec<(Relation, Evidence)>,
    /// The measure of the place's records for the theme, if the profile has one.
    pub measure: Option<ThemeMeasure>,
    pub factor: f64,
    /// One plain sentence built from the numbers, the theme's label and the measure's name.
    pub reason: String,
}

/// A theme the place's own recent reviews already cover, so not suggested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoveredTheme {
    pub theme: Theme,
    /// The place's own findings on it, oldest first.
    pub evidence: Vec<Evidence>,
}

/// The lines of enquiry for a place, and the themes left out as recently covered.
#[derive(Debug, Clone, PartialEq)]
pub struct Enquiry {
    pub place: PlaceCode,
    pub lines: Vec<LineOfEnquiry>,
    /// Every theme a finding of the place's own reviews in the last [`OWN_RECENT_YEARS`] years
    /// covers, in theme order.
    pub covered: Vec<CoveredTheme>,
}

/// The same instant `years` years before `now` (28 February for a 29 February in a year that
/// has none).
fn years_before(now: OffsetDateTime, years: i32) -> OffsetDateTime {
    let now = now.to_offset(UtcOffset::UTC);
    let date = now.date();
    let year = date.year() - years;
    let earlier = date
        .replace_year(year)
        .or_else(|_| Date::from_calendar_date(year, date.month(), 28))
        .unwrap_or(Date::MIN);
    now.replace_date(earlier)
}

/// Ranked lines of enquiry for the next review of `inputs.place`; see the module
/// documentation for the scoring.
pub fn lines_of_enquiry(inputs: &EnquiryInputs<'_>) -> Enquiry {
    let elsewhere_from = years_before(inputs.now, ELSEWHERE_LOOKBACK_YEARS);
    let own_from = years_before(inputs.now, OWN_RECENT_YEARS);
    let within = |review: &Review, from: OffsetDateTime| {
        from <= review.published_at && review.is_published(inputs.now)
    };

    let mut covered: BTreeMap<Theme, Vec<Evidence>> = BTreeMap::new();
    let mut found: BTreeMap<Theme, Vec<(Relation, Evidence)>> = BTreeMap::new();
    for &(relation, review) in &inputs.reviews {
        let from = match relation {
            Relation::Own => own_from,
            Relation::Neighbour | Relation::Region => elsewhere_from,
        };
        if !within(review, from) {
            continue;
        }
        for (index, finding) in review.findings.iter().enumerate() {
            let evidence = Evidence::of(review, index, finding.judgement);
            if relation == Relation::Own {
                covered.entry(finding.theme).or_default().push(evidence);
            } else if judgement_weight(finding.judgement) > 0 {
                found
                    .entry(finding.theme)
                    .or_default()
                    .push((relation, evidence));
            }
        }
    }

    let mut lines: Vec<LineOfEnquiry> = found
        .into_iter()
        .filter(|(theme, _)| !covered.contains_key(theme))
        .map(|(theme, mut evidence)| {
            evidence.sort_by_key(|(relation, e)| (*relation, e.chronological()));
            let recurrence = evidence
                .iter()
                .map(|(relation, e)| relation.weight() * judgement_weight(e.judgement))
                .sum::<u32>();
            let measure = inputs.profile.iter().find(|m| m.theme == theme).cloned();
            let factor = measure
                .as_ref()
                .and_then(ThemeMeasure::factor)
                .map_or(1.0, |(_, clamped)| clamped);
            let reason = reason(theme, &evidence, measure.as_ref());
            LineOfEnquiry {
                rank: 0,
                theme,
                score: f64::from(recurrence) * factor,
                recurrence,
                evidence,
                measure,
                factor,
                reason,
            }
        })
        .filter(|line| line.recurrence > 0)
        .collect();
    // Stable over theme order, so theme order breaks the last tie.
    lines.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.recurrence.cmp(&a.recurrence))
    });
    for (index, line) in lines.iter_mut().enumerate() {
        line.rank = index + 1;
    }

    let covered = covered
        .into_iter()
        .map(|(theme, mut evidence)| {
            evidence.sort_by_key(Evidence::chronological);
            CoveredTheme { theme, evidence }
        })
        .collect();
    Enquiry {
        place: inputs.place,
        lines,
        covered,
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// "3 findings in 2 reviews of statistical neighbours", or `None` when there are none.
fn findings_in(
    evidence: &[(Relation, Evidence)],
    relation: Relation,
    whose: &str,
) -> Option<String> {
    let findings: Vec<&Evidence> = evidence
        .iter()
        .filter(|(r, _)| *r == relation)
        .map(|(_, e)| e)
        .collect();
    if findings.is_empty() {
        return None;
    }
    let mut reviews: Vec<u64> = findings.iter().map(|e| e.review).collect();
    reviews.sort_unstable();
    reviews.dedup();
    Some(format!(
        "{} in {} {whose}",
        plural(findings.len(), "finding", "findings"),
        plural(reviews.len(), "review", "reviews"),
    ))
}

/// One sentence from the line's numbers: only the theme's label, counts, and the measure's
/// name and ratio, never a finding's text.
fn reason(
    theme: Theme,
    evidence: &[(Relation, Evidence)],
    measure: Option<&ThemeMeasure>,
) -> String {
    let priority = evidence
        .iter()
        .any(|(_, e)| e.judgement == Judgement::PriorityAction);
    let improvement = evidence
        .iter()
        .any(|(_, e)| e.judgement == Judgement::AreaForImprovement);
    let judged = match (priority, improvement) {
        (true, true) => "a priority action or area for improvement",
        (true, false) => "a priority action",
        _ => "an area for improvement",
    };
    let places = [
        findings_in(evidence, Relation::Neighbour, "of statistical neighbours"),
        findings_in(evidence, Relation::Region, "elsewhere in the region"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" and ");
    let mut sentence = format!("{} was {judged} in {places}", theme.label());
    if let Some(measure) = measure {
        match measure.factor() {
            Some((ratio, clamped)) if ratio == clamped => sentence.push_str(&format!(
                "; the place's {} is {ratio:.1} times its statistical neighbours'",
                measure.measure
            )),
            Some((ratio, clamped)) => sentence.push_str(&format!(
                "; the place's {} is {ratio:.1} times its statistical neighbours' (counted as {clamped:.1})",
                measure.measure
            )),
            None => sentence.push_str(&format!(
                "; its statistical neighbours have no {} to compare with",
                measure.measure
            )),
        }
    }
    sentence.push('.');
    sentence
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::review::{Finding, PracticeTheme};
    use crate::domain::{ClientGroup, RiskCategory};
    use proptest::prelude::*;
    use time::Duration;
    use time::macros::{date, datetime};

    const INFORMATION_SHARING: Theme = Theme::Practice(PracticeTheme::InformationSharing);
    const FRONT_DOOR: Theme = Theme::Practice(PracticeTheme::FrontDoor);
    const NEGLECT: Theme = Theme::Category(RiskCategory::Neglect);
    const MISSING: Theme = Theme::Category(RiskCategory::Missing);

    fn review(
        id: u64,
        place: &str,
        published_at: OffsetDateTime,
        findings: &[(Theme, Judgement)],
    ) -> Review {
        Review {
            id,
            revision: 1,
            kind: ReviewKind::JointTargetedAreaInspection,
            title: format!("Joint inspection number {id}"),
            place: PlaceCode::parse(place).expect("place"),
            agencies: Vec::new(),
            fieldwork_start: date!(2020 - 01 - 01),
            fieldwork_end: date!(2020 - 01 - 10),
            published_at,
            findings: findings
                .iter()
                .map(|&(theme, judgement)| Finding {
                    theme,
                    judgement,
                    summary: "Summary text that must never reach a reason.".into(),
                    recommendations: Vec::new(),
                })
                .collect(),
            note: String::new(),
            recorded_by: "inspector".into(),
            recorded_at: published_at,
        }
    }

    // ---- Periods and lessons ----

    #[test]
    fn a_period_must_end_after_it_starts_and_the_previous_one_is_as_long() {
        assert!(Period::new(date!(2026 - 03 - 01), date!(2026 - 03 - 01)).is_err());
        assert!(Period::new(date!(2026 - 03 - 02), date!(2026 - 03 - 01)).is_err());
        let period = Period::new(date!(2026 - 03 - 01), date!(2026 - 03 - 11)).expect("period");
        assert_eq!(
            period.previous(),
            Period {
                from: date!(2026 - 02 - 19),
                until: date!(2026 - 03 - 01)
            }
        );
    }

    #[test]
    fn a_review_published_exactly_at_the_end_of_a_period_belongs_to_the_next() {
        let first = Period::new(date!(2026 - 01 - 01), date!(2026 - 04 - 01)).expect("period");
        let next = Period::new(date!(2026 - 04 - 01), date!(2026 - 06 - 30)).expect("period");
        assert_eq!(next.previous(), first);
        let at_the_end = review(
            1,
            "E08000021",
            datetime!(2026-04-01 0:00 UTC),
            &[(INFORMATION_SHARING, Judgement::PriorityAction)],
        );
        // 23:30 UTC on the last day, though it is already April in British Summer Time.
        let last_evening = review(
            2,
            "E08000021",
            datetime!(2026-04-01 0:30 +1),
            &[(FRONT_DOOR, Judgement::Strength)],
        );
        let reviews = [at_the_end, last_evening];

        let in_first = lessons(&reviews, &first);
        assert_eq!((in_first.reviews, in_first.findings), (1, 1));
        assert_eq!(in_first.themes.len(), 1, "the later review is not counted");
        assert_eq!(in_first.themes[0].theme, FRONT_DOOR);
        assert_eq!(in_first.themes[0].strength.evidence[0].review, 2);

        let in_next = lessons(&reviews, &next);
        assert_eq!((in_next.reviews, in_next.findings), (1, 1));
        let shared = &in_next.themes[0];
        assert_eq!(shared.theme, INFORMATION_SHARING);
        assert_eq!((shared.total, shared.change), (1, Change::New));
        assert_eq!(shared.priority_action.evidence[0].review, 1);
        // The front door was found only before: still listed, with nothing now.
        let gone = &in_next.themes[1];
        assert_eq!(
            (gone.theme, gone.total, gone.previous_total, gone.change),
            (FRONT_DOOR, 0, 1, Change::Gone)
        );
    }

    #[test]
    fn theme_order_is_the_vocabulary_s_order() {
        // Lessons and lines break their last tie by `Theme`'s ordering: it must be the order
        // the vocabulary publishes.
        let all = Theme::all();
        assert!(all.windows(2).all(|pair| pair[0] < pair[1]));
    }

    fn julian(at: OffsetDateTime) -> i32 {
        at.to_offset(UtcOffset::UTC).date().to_julian_day()
    }

    fn arbitrary_reviews() -> impl Strategy<Value = Vec<Review>> {
        // A few themes only, so that findings collide on them.
        let themes = [
            INFORMATION_SHARING,
            FRONT_DOOR,
            NEGLECT,
            MISSING,
            Theme::ClientGroup(ClientGroup::CareLeaver),
        ];
        let judgements = [
            Judgement::Strength,
            Judgement::AreaForImprovement,
            Judgement::PriorityAction,
        ];
        let finding = (0..themes.len(), 0..judgements.len())
            .prop_map(move |(t, j)| (themes[t], judgements[j]));
        let one = (
            0i64..120 * 24 * 60,
            proptest::collection::vec(finding, 1..6),
        );
        proptest::collection::vec(one, 0..14).prop_map(|drafts| {
            drafts
                .into_iter()
                .enumerate()
                .map(|(index, (minutes, findings))| {
                    let at = datetime!(2026-01-01 0:00 UTC) + Duration::minutes(minutes);
                    review(index as u64 + 1, "E08000021", at, &findings)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn lessons_agree_with_a_naive_recount(
            reviews in arbitrary_reviews(),
            start in 0i64..100,
            length in 1i64..50,
        ) {
            let from = date!(2026 - 01 - 01) + Duration::days(start);
            let period = Period::new(from, from + Duration::days(length)).expect("period");
            let found = lessons(&reviews, &period);

            // The recount works on Julian day numbers, not on `Period`.
            let (now_from, now_until) = (period.from.to_julian_day(), period.until.to_julian_day());
            let before_from = now_from - (now_until - now_from);
            let now = |r: &&Review| (now_from..now_until).contains(&julian(r.published_at));
            let before = |r: &&Review| (before_from..now_from).contains(&julian(r.published_at));
            prop_assert_eq!(found.reviews, reviews.iter().filter(now).count());
            prop_assert_eq!(
                found.findings,
                reviews.iter().filter(now).map(|r| r.findings.len()).sum::<usize>()
            );

            let mut listed = 0;
            for theme in Theme::all() {
                let count = |judgement: Option<Judgement>, when: &dyn Fn(&&Review) -> bool| {
                    reviews
                        .iter()
                        .filter(when)
                        .flat_map(|r| &r.findings)
                        .filter(|f| f.theme == theme && judgement.is_none_or(|j| f.judgement == j))
                        .count() as u32
                };
                let total = count(None, &now);
                let previous_total = count(None, &before);
                let lesson = found.themes.iter().find(|l| l.theme == theme);
                if total == 0 && previous_total == 0 {
                    prop_assert!(lesson.is_none(), "{} listed with nothing found", theme);
                    continue;
                }
                listed += 1;
                let lesson = lesson.expect("a theme found is listed");
                prop_assert_eq!(lesson.total, total);
                prop_assert_eq!(lesson.previous_total, previous_total);
                for judgement in [Judgement::Strength, Judgement::AreaForImprovement, Judgement::PriorityAction] {
                    let tally = lesson.tally(judgement);
                    prop_assert_eq!(tally.count, count(Some(judgement), &now));
                    prop_assert_eq!(tally.evidence.len() as u32, tally.count);
                    for evidence in &tally.evidence {
                        let source = reviews.iter().find(|r| r.id == evidence.review).expect("review");
                        let finding = source.finding(evidence.finding).expect("finding");
                        prop_assert_eq!((finding.theme, finding.judgement), (theme, judgement));
                        prop_assert!(now(&source));
                    }
                }
                let change = match (previous_total, total) {
                    (0, _) => Change::New,
                    (_, 0) => Change::Gone,
                    (p, t) if t > p => Change::Rising,
                    (p, t) if t < p => Change::Falling,
                    _ => Change::Steady,
                };
                prop_assert_eq!(lesson.change, change);
            }
            prop_assert_eq!(found.themes.len(), listed);
            for pair in found.themes.windows(2) {
                let key = |l: &ThemeLesson| (Reverse(l.total), Reverse(l.priority_action.count), l.theme);
                prop_assert!(key(&pair[0]) < key(&pair[1]), "out of order");
            }
        }
    }

    // ---- Lines of enquiry ----

    const PLACE: &str = "E08000021";
    const NEIGHBOUR: &str = "E08000022";
    const REGIONAL: &str = "E08000037";
    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

    fn inputs<'a>(
        reviews: &'a [(Relation, Review)],
        profile: Vec<ThemeMeasure>,
    ) -> EnquiryInputs<'a> {
        EnquiryInputs {
            place: PlaceCode::parse(PLACE).expect("place"),
            reviews: reviews.iter().map(|(relation, r)| (*relation, r)).collect(),
            now: NOW,
            profile,
        }
    }

    fn themes(enquiry: &Enquiry) -> Vec<Theme> {
        enquiry.lines.iter().map(|line| line.theme).collect()
    }

    #[test]
    fn a_theme_recurring_in_neighbours_ranks_above_one_recurring_only_in_the_region() {
        let a_year_ago = NOW - Duration::days(365);
        let reviews = [
            (
                Relation::Region,
                review(
                    1,
                    REGIONAL,
                    a_year_ago,
                    &[(FRONT_DOOR, Judgement::PriorityAction)],
                ),
            ),
            (
                Relation::Neighbour,
                review(
                    2,
                    NEIGHBOUR,
                    a_year_ago,
                    &[(INFORMATION_SHARING, Judgement::AreaForImprovement)],
                ),
            ),
        ];
        let enquiry = lines_of_enquiry(&inputs(&reviews, Vec::new()));
        assert_eq!(themes(&enquiry), [INFORMATION_SHARING, FRONT_DOOR]);
        let ranks: Vec<(usize, u32)> = enquiry
            .lines
            .iter()
            .map(|l| (l.rank, l.recurrence))
            .collect();
        assert_eq!(ranks, [(1, 4), (2, 3)]);
        assert_eq!(
            enquiry.lines[0].reason,
            "Information sharing between agencies was an area for improvement in 1 finding in \
             1 review of statistical neighbours."
        );
    }

    #[test]
    fn a_theme_the_place_reviewed_recently_is_left_out_and_listed_as_covered() {
        let reviews = [
            (
                Relation::Own,
                review(
                    1,
                    PLACE,
                    NOW - Duration::days(400),
                    &[(INFORMATION_SHARING, Judgement::Strength)],
                ),
            ),
            // Too long ago to count as covering the front door.
            (
                Relation::Own,
                review(
                    2,
                    PLACE,
                    NOW - Duration::days(800),
                    &[(FRONT_DOOR, Judgement::PriorityAction)],
                ),
            ),
            (
                Relation::Neighbour,
                review(
                    3,
                    NEIGHBOUR,
                    NOW - Duration::days(30),
                    &[
                        (INFORMATION_SHARING, Judgement::PriorityAction),
                        (FRONT_DOOR, Judgement::AreaForImprovement),
                    ],
                ),
            ),
        ];
        let enquiry = lines_of_enquiry(&inputs(&reviews, Vec::new()));
        assert_eq!(themes(&enquiry), [FRONT_DOOR]);
        assert_eq!(enquiry.covered.len(), 1);
        assert_eq!(enquiry.covered[0].theme, INFORMATION_SHARING);
        let why: Vec<(u64, u32)> = enquiry.covered[0]
            .evidence
            .iter()
            .map(|e| (e.review, e.finding))
            .collect();
        assert_eq!(why, [(1, 1)]);
    }

    #[test]
    fn the_place_s_own_records_reorder_themes_found_as_often() {
        let reviews = [(
            Relation::Neighbour,
            review(
                1,
                NEIGHBOUR,
                NOW - Duration::days(100),
                &[
                    (NEGLECT, Judgement::AreaForImprovement),
                    (MISSING, Judgement::AreaForImprovement),
                ],
            ),
        )];
        let plain = lines_of_enquiry(&inputs(&reviews, Vec::new()));
        assert_eq!(
            themes(&plain),
            [NEGLECT, MISSING],
            "theme order breaks the tie"
        );

        let profile = vec![
            ThemeMeasure {
                theme: MISSING,
                place: 14.0,
                comparison: 10.0,
                measure: "rate per 10,000 children".into(),
            },
            ThemeMeasure {
                theme: NEGLECT,
                place: 1.0,
                comparison: 10.0,
                measure: "rate per 10,000 children".into(),
            },
        ];
        let weighed = lines_of_enquiry(&inputs(&reviews, profile));
        assert_eq!(themes(&weighed), [MISSING, NEGLECT]);
        let missing = &weighed.lines[0];
        assert_eq!((missing.recurrence, missing.factor), (4, 1.4));
        assert!((missing.score - 5.6).abs() < 1e-9);
        assert!(
            missing.reason.ends_with(
                "; the place's rate per 10,000 children is 1.4 times its statistical neighbours'."
            ),
            "{}",
            missing.reason
        );
        // A tenth of the neighbours' rate still counts half, not nothing.
        assert_eq!(weighed.lines[1].factor, FACTOR_MIN);
        assert!(weighed.lines[1].reason.contains("(counted as 0.5)"));
    }

    #[test]
    fn findings_older_than_the_lookback_are_ignored() {
        let lookback_start = datetime!(2023-11-26 12:00 UTC);
        let reviews = [
            (
                Relation::Neighbour,
                review(
                    1,
                    NEIGHBOUR,
                    lookback_start - Duration::seconds(1),
                    &[(NEGLECT, Judgement::PriorityAction)],
                ),
            ),
            (
                Relation::Region,
                review(
                    2,
                    REGIONAL,
                    lookback_start - Duration::days(10),
                    &[(NEGLECT, Judgement::PriorityAction)],
                ),
            ),
            (
                Relation::Region,
                review(
                    3,
                    REGIONAL,
                    lookback_start,
                    &[(MISSING, Judgement::PriorityAction)],
                ),
            ),
        ];
        let enquiry = lines_of_enquiry(&inputs(&reviews, Vec::new()));
        assert_eq!(themes(&enquiry), [MISSING]);
        assert_eq!(enquiry.lines[0].evidence[0].1.review, 3);
    }

    #[test]
    fn evidence_lists_exactly_the_findings_that_count() {
        let reviews = [
            (
                Relation::Region,
                review(
                    1,
                    REGIONAL,
                    NOW - Duration::days(200),
                    &[(FRONT_DOOR, Judgement::AreaForImprovement)],
                ),
            ),
            (
                Relation::Neighbour,
                review(
                    2,
                    NEIGHBOUR,
                    NOW - Duration::days(300),
                    &[
                        (FRONT_DOOR, Judgement::PriorityAction),
                        (FRONT_DOOR, Judgement::Strength),
                        (NEGLECT, Judgement::AreaForImprovement),
                        (FRONT_DOOR, Judgement::AreaForImprovement),
                    ],
                ),
            ),
            // Beyond the lookback.
            (
                Relation::Neighbour,
                review(
                    3,
                    NEIGHBOUR,
                    NOW - Duration::days(1200),
                    &[(FRONT_DOOR, Judgement::PriorityAction)],
                ),
            ),
            // Not yet published.
            (
                Relation::Neighbour,
                review(
                    4,
                    NEIGHBOUR,
                    NOW + Duration::days(1),
                    &[(FRONT_DOOR, Judgement::PriorityAction)],
                ),
            ),
            // A strength alone is not a line of enquiry.
            (
                Relation::Neighbour,
                review(
                    5,
                    NEIGHBOUR,
                    NOW - Duration::days(10),
                    &[(MISSING, Judgement::Strength)],
                ),
            ),
        ];
        let enquiry = lines_of_enquiry(&inputs(&reviews, Vec::new()));
        assert_eq!(themes(&enquiry), [FRONT_DOOR, NEGLECT]);
        let front_door = &enquiry.lines[0];
        let cited: Vec<(Relation, u64, u32, Judgement)> = front_door
            .evidence
            .iter()
            .map(|(relation, e)| (*relation, e.review, e.finding, e.judgement))
            .collect();
        assert_eq!(
            cited,
            [
                (Relation::Neighbour, 2, 1, Judgement::PriorityAction),
                (Relation::Neighbour, 2, 4, Judgement::AreaForImprovement),
                (Relation::Region, 1, 1, Judgement::AreaForImprovement),
            ]
        );
        assert_eq!(front_door.recurrence, 2 * 3 + 2 * 2 + 2);
        assert_eq!(
            front_door.reason,
            "The front door (contact, referral and triage) was a priority action or area for \
             improvement in 2 findings in 1 review of statistical neighbours and 1 finding in \
             1 review elsewhere in the region."
        );
        for line in &enquiry.lines {
            assert!(!line.reason.contains("Summary text") && !line.reason.contains("inspection"));
        }
    }

    #[test]
    fn one_more_neighbour_review_on_a_new_theme_adds_a_line_naming_it() {
        let mut reviews = vec![(
            Relation::Neighbour,
            review(
                1,
                NEIGHBOUR,
                NOW - Duration::days(60),
                &[(NEGLECT, Judgement::PriorityAction)],
            ),
        )];
        let before = lines_of_enquiry(&inputs(&reviews, Vec::new()));
        assert_eq!(themes(&before), [NEGLECT]);

        reviews.push((
            Relation::Neighbour,
            review(
                2,
                NEIGHBOUR,
                NOW - Duration::days(5),
                &[(INFORMATION_SHARING, Judgement::AreaForImprovement)],
            ),
        ));
        let after = lines_of_enquiry(&inputs(&reviews, Vec::new()));
        assert_eq!(themes(&after), [NEGLECT, INFORMATION_SHARING]);
        let added = &after.lines[1];
        assert_eq!((added.rank, added.evidence.len()), (2, 1));
        assert_eq!(added.evidence[0].1.review, 2);
        assert!(
            added
                .reason
                .starts_with("Information sharing between agencies was")
        );
        assert_eq!(
            after.lines[0], before.lines[0],
            "the earlier line is unchanged"
        );
    }
}
