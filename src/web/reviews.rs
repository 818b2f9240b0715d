//! Pages of reviews and learning: published reviews with their findings and action plans, an
//! area's collective lessons (for everyone), and the lines of enquiry for a place's next review
//! (for inspectors and boards). Each stands for one gRPC method and is admitted and concluded
//! as that method.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::inspector::Choice;
use super::page::{Chrome, day, iso_day, render};
use super::{PageError, Visitor, Web};
use crate::app::AppError;
use crate::app::learning::{ENGLAND, parse_date};
use crate::app::reviews::{MAX_REVIEWS_PAGE, ReviewAnswer, ReviewFilter};
use crate::charts;
use crate::domain::learning::{Change, Evidence, Relation};
use crate::domain::review::{Judgement, ReviewKind, Theme, ThemeFamily};
use crate::domain::{AgencyId, Invalid, PlaceCode, PlaceLevel, Role, Vocabulary};

const LIST_REVIEWS: &str = "/marr.v1.OpenData/ListReviews";
const GET_REVIEW: &str = "/marr.v1.OpenData/GetReview";
const GET_LESSONS: &str = "/marr.v1.OpenData/GetLessons";
const GET_LINES_OF_ENQUIRY: &str = "/marr.v1.Inspection/GetLinesOfEnquiry";
const GET_PLACE_VIEW: &str = "/marr.v1.Inspection/GetPlaceView";

/// Whether a visitor of `role` may open the page standing for `method` at all.
fn admitted(method: &str, role: Role) -> bool {
    crate::auth::policy::rule_for(method).is_some_and(|rule| rule.admits(role))
}

/// A judgement's tag: green for a strength, orange for an area for improvement, red for a
/// priority action.
fn judgement_tag(judgement: Judgement) -> &'static str {
    match judgement {
        Judgement::Strength => "tag",
        Judgement::AreaForImprovement => "tag tag--orange",
        Judgement::PriorityAction => "tag tag--red",
    }
}

fn change_label(change: Change) -> &'static str {
    match change {
        Change::New => "New",
        Change::Rising => "Rising",
        Change::Falling => "Falling",
        Change::Steady => "Steady",
        Change::Gone => "Gone",
    }
}

fn relation_label(relation: Relation) -> &'static str {
    match relation {
        Relation::Own => "This place",
        Relation::Neighbour => "Statistical neighbour",
        Relation::Region => "Same region",
    }
}

/// A place's name as the directory has it, or its code.
fn place_name(web: &Web, code: PlaceCode) -> String {
    web.app
        .place_named(code)
        .map_or_else(|| code.to_string(), |p| p.name)
}

/// An agency's registered name, or its id.
fn agency_name(web: &Web, id: &AgencyId) -> String {
    web.app
        .store()
        .agency(id)
        .map_or_else(|| id.to_string(), |a| a.name)
}

/// One finding named as evidence: which review, which finding, what it judged.
pub struct EvidenceLine {
    pub relation: &'static str,
    pub review: u64,
    pub title: String,
    pub place: String,
    pub finding: u32,
    pub judgement: &'static str,
    pub tag: &'static str,
    pub published: String,
}

impl EvidenceLine {
    fn of(web: &Web, evidence: &Evidence, relation: Option<Relation>) -> Self {
        Self {
            relation: relation.map_or("", relation_label),
            review: evidence.review,
            title: evidence.title.clone(),
            place: place_name(web, evidence.place),
            finding: evidence.finding,
            judgement: evidence.judgement.label(),
            tag: judgement_tag(evidence.judgement),
            published: day(evidence.published_at.date()),
        }
    }
}

/// The review listing's filter as its form sends it: words, empty for "any".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReviewsQuery {
    #[serde(default)]
    place: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    theme: String,
    /// Inspectors: a ticked box includes unpublished reviews in their places.
    #[serde(default)]
    unpublished: String,
    /// The id to list after, for the next page.
    #[serde(default)]
    after: String,
}

impl ReviewsQuery {
    fn filter(&self, web: &Web) -> Result<ReviewFilter, Invalid> {
        let place = self.place.trim();
        let area = match place {
            "" => None,
            code => Some(web.app.store().place_code("place", code)?),
        };
        let kind = match self.kind.trim() {
            "" => None,
            word => Some(ReviewKind::parse_word(word).map_err(|unknown| {
                Invalid::one(
                    "kind",
                    format!("{} is not one of {}", unknown.word, unknown.expected),
                )
            })?),
        };
        let theme = match self.theme.trim() {
            "" => None,
            word => Some(Theme::parse(word).map_err(|reason| Invalid::one("theme", reason))?),
        };
        let after = match self.after.trim() {
            "" => 0,
            n => n
                .parse()
                .map_err(|_| Invalid::one("after", "is a review number"))?,
        };
        Ok(ReviewFilter {
            area,
            kind,
            theme,
            include_unpublished: !self.unpublished.is_empty(),
            after,
            page_size: MAX_REVIEWS_PAGE,
        })
    }

    /// The filter as a query string for the next page's link, already encoded.
    fn next(&self, after: u64) -> String {
        let after = after.to_string();
        serde_urlencoded::to_string([
            ("place", self.place.as_str()),
            ("kind", self.kind.as_str()),
            ("theme", self.theme.as_str()),
            ("unpublished", self.unpublished.as_str()),
            ("after", after.as_str()),
        ])
        .unwrap_or_default()
    }
}

/// One review as listed.
pub struct ReviewLine {
    pub id: u64,
    pub title: String,
    pub kind: &'static str,
    pub place: String,
    pub published_on: String,
    pub published: bool,
    pub strengths: usize,
    pub improvements: usize,
    pub priorities: usize,
}

impl ReviewLine {
    fn of(web: &Web, answer: &ReviewAnswer) -> Self {
        let review = &answer.review;
        let judged = |judgement| {
            review
                .findings
                .iter()
                .filter(|f| f.judgement == judgement)
                .count()
        };
        Self {
            id: review.id,
            title: review.title.clone(),
            kind: review.kind.label(),
            place: answer
                .place
                .as_ref()
                .map_or_else(|| place_name(web, review.place), |p| p.name.clone()),
            published_on: day(review.published_at.date()),
            published: answer.published,
            strengths: judged(Judgement::Strength),
            improvements: judged(Judgement::AreaForImprovement),
            priorities: judged(Judgement::PriorityAction),
        }
    }
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    chrome: Chrome,
    place: String,
    kinds: Vec<Choice>,
    themes: Vec<Choice>,
    inspector: bool,
    unpublished: bool,
    reviews: Vec<ReviewLine>,
    next: Option<String>,
}

/// Published reviews, newest first, filtered by place, kind and theme; an inspector may
/// include the unpublished reviews of its places.
pub async fn reviews(
    State(web): State<Web>,
    visitor: Visitor,
    Query(query): Query<ReviewsQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, LIST_REVIEWS).await?;
    let page = query
        .filter(&web)
        .map_err(AppError::from)
        .and_then(|filter| web.app.reviews(&caller, &filter));
    let page = visitor.conclude(&web, &caller, page).await?;
    let mut answers = page.reviews;
    answers.sort_by_key(|a| std::cmp::Reverse((a.review.published_at, a.review.id)));
    let kind = query.kind.trim();
    let theme = query.theme.trim();
    Ok(render(&ReviewsPage {
        chrome: Chrome::of(&visitor),
        place: query.place.trim().to_string(),
        kinds: ReviewKind::ALL
            .iter()
            .map(|k| Choice {
                word: k.word(),
                label: k.label().to_string(),
                selected: k.word() == kind,
            })
            .collect(),
        themes: Theme::all()
            .into_iter()
            .map(|t| Choice {
                word: t.word(),
                label: t.label(),
                selected: t.word() == theme,
            })
            .collect(),
        inspector: visitor.role() == Role::Inspector,
        unpublished: !query.unpublished.is_empty(),
        reviews: answers.iter().map(|a| ReviewLine::of(&web, a)).collect(),
        next: page.next_after.map(|after| query.next(after)),
    }))
}

/// Which revision of a review to show: empty for the latest.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReviewQuery {
    #[serde(default)]
    revision: String,
}

/// One action of a plan.
pub struct ActionLine {
    pub number: u32,
    pub description: String,
    pub owner: String,
    pub due: String,
    pub status: &'static str,
    pub overdue: bool,
    pub note: String,
}

/// One recommendation with its accountable agency and its actions.
pub struct RecommendationLine {
    pub finding: u32,
    pub number: u32,
    pub text: String,
    pub agency: String,
    pub actions: Vec<ActionLine>,
}

/// One finding of a review.
pub struct FindingLine {
    pub number: u32,
    pub theme: String,
    pub judgement: &'static str,
    pub tag: &'static str,
    pub summary: String,
    pub recommendations: Vec<RecommendationLine>,
}

/// A link to one revision of a review.
pub struct RevisionLink {
    pub number: u32,
    pub href: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    chrome: Chrome,
    title: String,
    kind: &'static str,
    place: String,
    place_code: String,
    /// A link to the place's page, when the visitor may open it.
    place_link: Option<String>,
    agencies: Vec<String>,
    fieldwork: String,
    published_on: String,
    published: bool,
    revision: u32,
    revisions: u32,
    note: String,
    other_revisions: Vec<RevisionLink>,
    findings: Vec<FindingLine>,
    has_recommendations: bool,
}

/// One review: its findings and recommendations, and the action plan answering them.
pub async fn review(
    State(web): State<Web>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(query): Query<ReviewQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_REVIEW).await?;
    let answer = (|| {
        let id: u64 = id
            .parse()
            .map_err(|_| Invalid::one("review", "is a review number"))?;
        let revision = match query.revision.trim() {
            "" => None,
            n => Some(
                n.parse()
                    .map_err(|_| Invalid::one("revision", "is a revision number"))?,
            ),
        };
        web.app.review(&caller, id, revision)
    })();
    let answer = visitor.conclude(&web, &caller, answer).await?;
    let review = &answer.review;
    let place_link = (admitted(GET_PLACE_VIEW, visitor.role())
        && caller.in_scope(web.app.store(), review.place))
    .then(|| format!("/places/{}", review.place));
    let findings: Vec<FindingLine> = review
        .findings
        .iter()
        .zip(1u32..)
        .map(|(finding, number)| FindingLine {
            number,
            theme: finding.theme.label(),
            judgement: finding.judgement.label(),
            tag: judgement_tag(finding.judgement),
            summary: finding.summary.clone(),
            recommendations: finding
                .recommendations
                .iter()
                .zip(1u32..)
                .map(|(recommendation, r)| RecommendationLine {
                    finding: number,
                    number: r,
                    text: recommendation.text.clone(),
                    agency: agency_name(&web, &recommendation.agency),
                    actions: answer
                        .actions
                        .iter()
                        .filter(|a| {
                            let at = a.action.key.recommendation;
                            at.finding == number && at.recommendation == r
                        })
                        .map(|a| ActionLine {
                            number: a.action.key.number,
                            description: a.action.description.clone(),
                            owner: a.action.owner.clone(),
                            due: day(a.action.due),
                            status: a.action.status.label(),
                            overdue: a.overdue,
                            note: a.action.note.clone(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let page = ReviewPage {
        chrome: Chrome::of(&visitor),
        title: review.title.clone(),
        kind: review.kind.label(),
        place: answer
            .place
            .as_ref()
            .map_or_else(|| review.place.to_string(), |p| p.name.clone()),
        place_code: review.place.to_string(),
        place_link,
        agencies: review
            .agencies
            .iter()
            .map(|a| agency_name(&web, a))
            .collect(),
        fieldwork: format!(
            "{} to {}",
            day(review.fieldwork_start),
            day(review.fieldwork_end)
        ),
        published_on: day(review.published_at.date()),
        published: answer.published,
        revision: review.revision,
        revisions: answer.revisions,
        note: review.note.clone(),
        other_revisions: (1..=answer.revisions)
            .map(|number| RevisionLink {
                number,
                href: format!("/reviews/{}?revision={number}", review.id),
                current: number == review.revision,
            })
            .collect(),
        has_recommendations: findings.iter().any(|f| !f.recommendations.is_empty()),
        findings,
    };
    Ok(render(&page))
}

/// The area and period of the lessons asked for: empty for the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LessonsQuery {
    #[serde(default)]
    area: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
}

/// The count of one judgement on one theme, and where its evidence is listed.
pub struct CountCell {
    pub count: u32,
    pub anchor: String,
}

/// One theme's row of the lessons table.
pub struct LessonLine {
    pub theme: String,
    /// Strengths, areas for improvement and priority actions, in that order.
    pub counts: Vec<CountCell>,
    pub total: u32,
    pub previous: u32,
    pub change: &'static str,
}

/// One theme's evidence under one judgement.
pub struct EvidenceGroup {
    pub anchor: String,
    pub heading: String,
    pub findings: Vec<EvidenceLine>,
}

/// One area of the lessons' select.
pub struct AreaChoice {
    pub code: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "lessons.html")]
struct LessonsPage {
    chrome: Chrome,
    area: String,
    areas: Vec<AreaChoice>,
    from: String,
    until: String,
    from_day: String,
    last_day: String,
    previous_from: String,
    reviews: usize,
    findings: usize,
    lines: Vec<LessonLine>,
    evidence: Vec<EvidenceGroup>,
    chart: String,
}

/// An area's collective lessons over a period, against the period before.
pub async fn lessons(
    State(web): State<Web>,
    visitor: Visitor,
    Query(query): Query<LessonsQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_LESSONS).await?;
    let answer = (|| {
        let from = parse_date("from", query.from.trim())?;
        let until = parse_date("until", query.until.trim())?;
        web.app.lessons(Some(query.area.trim()), from, until)
    })();
    let answer = visitor.conclude(&web, &caller, answer).await?;
    let store = web.app.store();
    let england = store.place_code("area", ENGLAND).ok();
    let regions: Vec<crate::domain::Place> = england
        .and_then(|code| store.child_places(code))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.level == PlaceLevel::Region)
        .collect();
    let chosen = answer.area.code;
    let mut areas: Vec<AreaChoice> = std::iter::once((ENGLAND.to_string(), "England".to_string()))
        .chain(regions.iter().map(|r| (r.code.to_string(), r.name.clone())))
        .map(|(code, name)| AreaChoice {
            selected: code == chosen.to_string(),
            code,
            name,
        })
        .collect();
    if !areas.iter().any(|a| a.selected) {
        // An area named by its code that is neither England nor a region stays chosen.
        areas.push(AreaChoice {
            code: chosen.to_string(),
            name: answer.area.name.clone(),
            selected: true,
        });
    }
    let lessons = &answer.lessons;
    let anchor = |theme: Theme, judgement: Judgement| {
        format!("evidence-{}-{}", theme.word(), judgement.word())
    };
    let cell = |theme: Theme, judgement: Judgement, count: u32| CountCell {
        count,
        anchor: anchor(theme, judgement),
    };
    let lines = lessons
        .themes
        .iter()
        .map(|lesson| LessonLine {
            theme: lesson.theme.label(),
            counts: Judgement::ALL
                .iter()
                .map(|judgement| cell(lesson.theme, *judgement, lesson.tally(*judgement).count))
                .collect(),
            total: lesson.total,
            previous: lesson.previous_total,
            change: change_label(lesson.change),
        })
        .collect();
    let evidence = lessons
        .themes
        .iter()
        .flat_map(|lesson| {
            Judgement::ALL.iter().filter_map(|judgement| {
                let tally = lesson.tally(*judgement);
                (tally.count > 0).then(|| EvidenceGroup {
                    anchor: anchor(lesson.theme, *judgement),
                    heading: format!("{}: {}", lesson.theme.label(), judgement.label()),
                    findings: tally
                        .evidence
                        .iter()
                        .map(|e| EvidenceLine::of(&web, e, None))
                        .collect(),
                })
            })
        })
        .collect();
    let with_findings: Vec<_> = lessons.themes.iter().filter(|l| l.total > 0).collect();
    let chart = if with_findings.is_empty() {
        String::new()
    } else {
        charts::bars::horizontal(&charts::bars::BarChart {
            id: "lessons".into(),
            title: format!("Findings by theme, {}", answer.area.name),
            measure: "Findings".into(),
            bars: with_findings
                .iter()
                .map(|l| charts::bars::Bar {
                    label: l.theme.label(),
                    value: Some(f64::from(l.total)),
                })
                .collect(),
            decimals: 0,
        })
    };
    let page = LessonsPage {
        chrome: Chrome::of(&visitor),
        area: answer.area.name.clone(),
        areas,
        from: iso_day(lessons.period.from),
        until: iso_day(lessons.period.until),
        from_day: day(lessons.period.from),
        last_day: day(lessons
            .period
            .until
            .previous_day()
            .unwrap_or(lessons.period.until)),
        previous_from: day(lessons.previous.from),
        reviews: lessons.reviews,
        findings: lessons.findings,
        lines,
        evidence,
        chart,
    };
    Ok(render(&page))
}

/// One ranked line of enquiry.
pub struct EnquiryLine {
    pub rank: usize,
    pub theme: String,
    pub score: String,
    pub reason: String,
    pub measure: Option<String>,
    pub evidence: Vec<EvidenceLine>,
}

/// A theme the place's own recent reviews cover.
pub struct CoveredLine {
    pub theme: String,
    pub evidence: Vec<EvidenceLine>,
}

#[derive(Template)]
#[template(path = "enquiries.html")]
struct EnquiriesPage {
    chrome: Chrome,
    code: String,
    name: String,
    neighbours: Vec<String>,
    region: Option<String>,
    lines: Vec<EnquiryLine>,
    covered: Vec<CoveredLine>,
}

/// A measure of the place against its neighbours as a sentence: a share as a percentage, a
/// rate to one decimal place.
fn measure_text(measure: &crate::domain::learning::ThemeMeasure) -> String {
    let figure = |value: f64| match measure.theme.family() {
        ThemeFamily::Category => format!("{:.1}%", value * 100.0),
        ThemeFamily::ClientGroup | ThemeFamily::Practice => format!("{value:.1}"),
    };
    format!(
        "{}: {} here, {} across its statistical neighbours",
        measure.measure,
        figure(measure.place),
        figure(measure.comparison)
    )
}

/// Ranked lines of enquiry for the next review of a place, each with its evidence, and the
/// themes its own recent reviews already cover.
pub async fn enquiries(
    State(web): State<Web>,
    visitor: Visitor,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_LINES_OF_ENQUIRY).await?;
    let answer = web.app.lines_of_enquiry(&caller, &code);
    let answer = visitor.conclude(&web, &caller, answer).await?;
    let enquiry = &answer.enquiry;
    Ok(render(&EnquiriesPage {
        chrome: Chrome::of(&visitor),
        code: answer.place.code.to_string(),
        name: answer.place.name.clone(),
        neighbours: answer.neighbours.iter().map(|p| p.name.clone()).collect(),
        region: answer.region.as_ref().map(|r| r.name.clone()),
        lines: enquiry
            .lines
            .iter()
            .map(|line| EnquiryLine {
                rank: line.rank,
                theme: line.theme.label(),
                score: format!("{:.1}", line.score),
                reason: line.reason.clone(),
                measure: line.measure.as_ref().map(measure_text),
                evidence: line
                    .evidence
                    .iter()
                    .map(|(relation, e)| EvidenceLine::of(&web, e, Some(*relation)))
                    .collect(),
            })
            .collect(),
        covered: enquiry
            .covered
            .iter()
            .map(|covered| CoveredLine {
                theme: covered.theme.label(),
                evidence: covered
                    .evidence
                    .iter()
                    .map(|e| EvidenceLine::of(&web, e, Some(Relation::Own)))
                    .collect(),
            })
            .collect(),
    }))
}
