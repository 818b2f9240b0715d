//! Pages for inspectors (and boards, where the policy admits them): a place across agencies,
//! its comparison with statistical neighbours, the risks under it, a subject's trail, and
//! snapshots. Each stands for one gRPC method and is admitted and audited as that method.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page::{Chrome, count, label, render, when};
use super::{PageError, Visitor, Web};
use crate::app::AppError;
use crate::app::inspection::{
    ChildComparison, NeighbourAnswer, PlaceViewAnswer, Trend, TrendPoint,
};
use crate::charts;
use crate::domain::inspection::{PlaceMeasure, ViewFilter};
use crate::domain::neighbours::ComparisonRole;
use crate::domain::population::Rate;
use crate::domain::{
    AgencyKind, ClientGroup, Invalid, Revision, RiskCategory, Severity, SubjectKey, Vocabulary,
};
use crate::store::StoreError;

const GET_PLACE_VIEW: &str = "/marr.v1.Inspection/GetPlaceView";
const COMPARE_PLACES: &str = "/marr.v1.Inspection/ComparePlaces";
const LIST_RISKS: &str = "/marr.v1.Inspection/ListRisks";
const FOLLOW_SUBJECT: &str = "/marr.v1.Inspection/FollowSubject";
const CREATE_SNAPSHOT: &str = "/marr.v1.Inspection/CreateSnapshot";
const GET_SNAPSHOT: &str = "/marr.v1.Inspection/GetSnapshot";
const GET_LINES_OF_ENQUIRY: &str = "/marr.v1.Inspection/GetLinesOfEnquiry";

/// Months the place page's trend covers, this one included.
const TREND_MONTHS: u32 = 12;

/// Risks listed on one page.
const RISKS_PER_PAGE: usize = 50;

/// The filter as a form sends it: coded words, empty for "any".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterQuery {
    #[serde(default)]
    pub client_group: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub min_severity: String,
}

fn word<V: Vocabulary>(field: &str, word: &str) -> Result<Option<V>, Invalid> {
    match word.trim() {
        "" => Ok(None),
        word => V::parse_word(word).map(Some).map_err(|unknown| {
            Invalid::one(
                field,
                format!("{} is not one of {}", unknown.word, unknown.expected),
            )
        }),
    }
}

impl FilterQuery {
    fn filter(&self) -> Result<ViewFilter, Invalid> {
        Ok(ViewFilter {
            client_groups: word::<ClientGroup>("client_group", &self.client_group)?
                .into_iter()
                .collect(),
            categories: word::<RiskCategory>("category", &self.category)?
                .into_iter()
                .collect(),
            min_severity: word("min_severity", &self.min_severity)?,
        })
    }

    /// The filter as a query string to carry into links, already encoded.
    fn query(&self) -> String {
        serde_urlencoded::to_string([
            ("client_group", self.client_group.as_str()),
            ("category", self.category.as_str()),
            ("min_severity", self.min_severity.as_str()),
        ])
        .unwrap_or_default()
    }
}

/// One choice in a select.
pub struct Choice {
    pub word: &'static str,
    pub label: String,
    pub selected: bool,
}

fn choices<V: Vocabulary>(chosen: &str) -> Vec<Choice> {
    V::ALL
        .iter()
        .map(|v| Choice {
            word: v.word(),
            label: label(*v),
            selected: v.word() == chosen,
        })
        .collect()
}

/// The selects of the filter form.
pub struct FilterForm {
    pub client_groups: Vec<Choice>,
    pub categories: Vec<Choice>,
    pub severities: Vec<Choice>,
}

impl FilterForm {
    fn of(query: &FilterQuery) -> Self {
        Self {
            client_groups: choices::<ClientGroup>(&query.client_group),
            categories: choices::<RiskCategory>(&query.category),
            severities: choices::<Severity>(&query.min_severity),
        }
    }
}

/// One line of a breakdown table.
pub struct Line {
    pub label: String,
    /// The count, for its bar.
    pub value: u64,
    pub count: String,
    /// Rate per 10,000, or empty where no population is known.
    pub rate: String,
}

fn lines<V: Vocabulary + Ord>(counts: &BTreeMap<V, u64>) -> Vec<Line> {
    counts
        .iter()
        .map(|(value, n)| Line {
            label: label(*value),
            value: *n,
            count: count(*n),
            rate: String::new(),
        })
        .collect()
}

fn rate_text(rate: Option<&Rate>) -> String {
    rate.map_or_else(String::new, |r| format!("{:.1}", r.per_10000))
}

/// A child place with its count.
pub struct ChildLine {
    pub code: String,
    pub name: String,
    pub count: String,
}

#[derive(Template)]
#[template(path = "place.html")]
struct PlacePage {
    chrome: Chrome,
    code: String,
    name: String,
    level: String,
    replaced: Option<String>,
    consistent_at: u64,
    filter: FilterForm,
    filter_query: String,
    total: String,
    high_or_worse: String,
    critical: String,
    converging: String,
    converging_kinds: String,
    by_client_group: Vec<Line>,
    by_category: Vec<Line>,
    by_severity: Vec<Line>,
    by_agency_kind: Vec<Line>,
    by_agency: Vec<Line>,
    children: Vec<ChildLine>,
    /// Places within that hold no active risks, left out of the table.
    quiet_children: usize,
    may_list_risks: bool,
    /// The visitor's role may open the place's lines of enquiry.
    may_see_enquiries: bool,
    csrf: String,
    /// Charts, drawn by the server; each has its table beside it.
    client_group_chart: String,
    severity_chart: String,
    category_chart: String,
    kind_chart: String,
    trend_chart: String,
    /// The child places shaded by their totals; empty without boundaries.
    map: String,
    /// The trend's month ends are being worked out: the page says so.
    trend_computing: bool,
    trend: Vec<TrendLine>,
}

/// One month of the trend, as its table shows it.
pub struct TrendLine {
    pub month: String,
    pub total: String,
}

/// A stored shape as the map draws it: rings of (longitude, latitude) degrees.
pub fn map_shape(shape: &crate::domain::boundaries::Shape) -> Vec<charts::map::Polygon> {
    shape
        .polygons
        .iter()
        .map(|polygon| {
            polygon
                .rings
                .iter()
                .map(|ring| {
                    ring.points
                        .iter()
                        .map(|p| (p.lon_degrees(), p.lat_degrees()))
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The place's child places shaded by their totals, where the register holds their
/// boundaries; empty when none has one (wards, LSOAs).
fn child_map(
    name: &str,
    children: &[(crate::domain::PlaceCode, u64, String)],
    shapes: &[Option<crate::domain::boundaries::Shape>],
) -> String {
    let areas: Vec<charts::map::Area> = children
        .iter()
        .zip(shapes)
        .filter_map(|((code, total, child_name), shape)| {
            shape.as_ref().map(|shape| charts::map::Area {
                code: code.to_string(),
                name: child_name.clone(),
                shape: map_shape(shape),
                value: Some(*total as f64),
                context: false,
            })
        })
        .collect();
    if areas.is_empty() {
        return String::new();
    }
    charts::map::choropleth(&charts::map::Choropleth {
        id: "child-map".into(),
        title: format!("Active risks in each place within {name}"),
        measure: "Active risks".into(),
        areas,
        highlight: None,
        decimals: 0,
    })
}

/// A breakdown drawn as bars, with the same lines its table shows.
fn bar_chart(id: &str, title: &str, lines: &[Line]) -> String {
    charts::bars::horizontal(&charts::bars::BarChart {
        id: id.into(),
        title: title.into(),
        measure: "Active risks".into(),
        bars: lines
            .iter()
            .map(|line| charts::bars::Bar {
                label: line.label.clone(),
                value: Some(line.value as f64),
            })
            .collect(),
        decimals: 0,
    })
}

impl PlacePage {
    fn of(
        visitor: &Visitor,
        answer: PlaceViewAnswer,
        trend: &Trend,
        shapes: &[Option<crate::domain::boundaries::Shape>],
        query: &FilterQuery,
    ) -> Self {
        let view = &answer.view;
        let place = answer.names.places.first().cloned().flatten();
        let by_client_group = view
            .by_client_group
            .iter()
            .map(|(group, n)| Line {
                label: label(*group),
                value: *n,
                count: count(*n),
                rate: rate_text(answer.rates.get(group)),
            })
            .collect();
        let by_agency = view
            .by_agency
            .iter()
            .map(|(id, n)| Line {
                label: answer
                    .names
                    .agencies
                    .get(id)
                    .map_or_else(|| id.to_string(), |(_, name)| name.clone()),
                value: *n,
                count: count(*n),
                rate: String::new(),
            })
            .collect();
        // Places holding risks, most first; the rest are counted, not listed.
        let mut holding: Vec<(usize, &(crate::domain::PlaceCode, u64))> = view
            .children
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .collect();
        holding.sort_by_key(|(_, (_, n))| std::cmp::Reverse(*n));
        let quiet_children = view.children.len() - holding.len();
        let children = holding
            .into_iter()
            .map(|(i, (code, n))| ChildLine {
                code: code.to_string(),
                name: answer
                    .names
                    .places
                    .get(i + 1)
                    .cloned()
                    .flatten()
                    .map_or_else(|| code.to_string(), |p| p.name),
                count: count(*n),
            })
            .collect();
        let by_category = lines(&view.by_category);
        let by_severity = lines(&view.by_severity);
        let by_agency_kind = lines::<AgencyKind>(&view.by_agency_kind);
        let by_client_group: Vec<Line> = by_client_group;
        let named_children: Vec<(crate::domain::PlaceCode, u64, String)> = view
            .children
            .iter()
            .enumerate()
            .map(|(i, (code, n))| {
                let name = answer
                    .names
                    .places
                    .get(i + 1)
                    .cloned()
                    .flatten()
                    .map_or_else(|| code.to_string(), |p| p.name);
                (*code, *n, name)
            })
            .collect();
        let place_name = place
            .as_ref()
            .map_or_else(|| view.place.to_string(), |p| p.name.clone());
        let (trend, trend_computing): (&[TrendPoint], bool) = match trend {
            Trend::Ready(points) => (points, false),
            Trend::Computing => (&[], true),
        };
        Self {
            trend_computing,
            map: child_map(&place_name, &named_children, shapes),
            client_group_chart: bar_chart(
                "by-client-group",
                "Active risks by client group",
                &by_client_group,
            ),
            severity_chart: bar_chart("by-severity", "Active risks by severity", &by_severity),
            category_chart: bar_chart("by-category", "Active risks by category", &by_category),
            kind_chart: bar_chart(
                "by-agency-kind",
                "Active risks by kind of agency",
                &by_agency_kind,
            ),
            trend_chart: if trend.is_empty() {
                String::new()
            } else {
                charts::trend::line(&charts::trend::TrendChart {
                    id: "trend".into(),
                    title: "Active risks at the end of each month".into(),
                    measure: "Active risks".into(),
                    points: trend
                        .iter()
                        .map(|p| charts::trend::TrendPoint {
                            label: p.month.clone(),
                            value: p.total as f64,
                        })
                        .collect(),
                    decimals: 0,
                })
            },
            trend: trend
                .iter()
                .map(|p| TrendLine {
                    month: p.month.clone(),
                    total: count(p.total),
                })
                .collect(),
            quiet_children,
            chrome: Chrome::of(visitor),
            code: view.place.to_string(),
            name: place
                .as_ref()
                .map_or_else(|| view.place.to_string(), |p| p.name.clone()),
            level: place.as_ref().map(|p| label(p.level)).unwrap_or_default(),
            replaced: (answer.asked != view.place).then(|| answer.asked.to_string()),
            consistent_at: view.consistent_at,
            filter: FilterForm::of(query),
            filter_query: query.query(),
            total: count(view.total),
            high_or_worse: count(view.high_or_worse()),
            critical: count(view.critical()),
            converging: count(view.subjects_at_two_or_more_agencies),
            converging_kinds: count(view.subjects_at_two_or_more_agency_kinds),
            by_client_group,
            by_category,
            by_severity,
            by_agency_kind,
            by_agency,
            children,
            may_list_risks: crate::auth::policy::rule_for(LIST_RISKS)
                .is_some_and(|rule| rule.admits(visitor.role())),
            may_see_enquiries: crate::auth::policy::rule_for(GET_LINES_OF_ENQUIRY)
                .is_some_and(|rule| rule.admits(visitor.role())),
            csrf: visitor
                .session
                .as_ref()
                .map(|s| s.csrf.clone())
                .unwrap_or_default(),
        }
    }
}

/// A place across every agency: headline figures, breakdowns, its child places.
pub async fn place(
    State(web): State<Web>,
    visitor: Visitor,
    Path(code): Path<String>,
    Query(query): Query<FilterQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_PLACE_VIEW).await?;
    let answer = async {
        let filter = query.filter()?;
        let answer = web
            .app
            .place_view(&caller, &code, filter.clone(), None)
            .await?;
        let code = answer.view.place.to_string();
        let trend = web
            .app
            .place_trend(&caller, &code, &filter, TREND_MONTHS)
            .await?;
        let children = answer.view.children.iter().map(|(c, _)| *c).collect();
        let shapes = web.app.shapes(children).await?;
        Ok((answer, trend, shapes))
    };
    let (answer, trend, shapes) = visitor.conclude(&web, &caller, answer.await).await?;
    Ok(render(&PlacePage::of(
        &visitor, answer, &trend, &shapes, &query,
    )))
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompareQuery {
    #[serde(default)]
    rate_of: String,
    #[serde(flatten)]
    filter: FilterQuery,
}

/// One row of a comparison.
pub struct ComparedLine {
    pub code: String,
    pub name: String,
    pub role: &'static str,
    pub closeness: String,
    pub total: String,
    pub rate_count: String,
    pub rate: String,
    pub is_place: bool,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    chrome: Chrome,
    code: String,
    name: String,
    rate_of: String,
    groups: Vec<Choice>,
    children: Vec<ComparedLine>,
    neighbours: Result<Vec<ComparedLine>, String>,
    standing: Option<String>,
    left_out: u32,
    consistent_at: u64,
}

/// A row of a comparison: the place, its count of all risks, and the count and rate of the
/// chosen client group.
fn compared_line(
    place: Option<&crate::domain::Place>,
    view: &crate::domain::inspection::PlaceView,
    rates: &BTreeMap<ClientGroup, Rate>,
    rate_of: ClientGroup,
    role: &'static str,
    closeness: String,
) -> ComparedLine {
    ComparedLine {
        code: view.place.to_string(),
        name: place.map_or_else(|| view.place.to_string(), |p| p.name.clone()),
        role,
        closeness,
        total: count(view.total),
        rate_count: count(view.by_client_group.get(&rate_of).copied().unwrap_or(0)),
        rate: rate_text(rates.get(&rate_of)),
        is_place: role == "This place",
    }
}

impl ComparePage {
    fn of(
        visitor: &Visitor,
        code: &str,
        rate_of: ClientGroup,
        children: &ChildComparison,
        neighbours: Result<NeighbourAnswer, String>,
    ) -> Self {
        let child_lines = children
            .rows
            .iter()
            .map(|row| {
                compared_line(
                    row.place.as_ref(),
                    &row.view,
                    &row.rates,
                    rate_of,
                    "",
                    String::new(),
                )
            })
            .collect();
        let (standing, left_out, neighbour_lines) = match &neighbours {
            Ok(answer) => {
                let comparison = &answer.comparison;
                let lines: Vec<ComparedLine> = comparison
                    .rows
                    .iter()
                    .zip(&answer.places)
                    .map(|(row, place)| {
                        let (role, closeness) = match row.role {
                            ComparisonRole::Place => ("This place", String::new()),
                            ComparisonRole::Neighbour(band) => {
                                ("Statistical neighbour", band.label().to_string())
                            }
                            ComparisonRole::Region => ("Region", String::new()),
                            ComparisonRole::England => ("England", String::new()),
                        };
                        compared_line(
                            place.as_ref(),
                            &row.view,
                            &row.rates,
                            rate_of,
                            role,
                            closeness,
                        )
                    })
                    .collect();
                let standing = comparison.standing.map(|s| {
                    format!(
                        "Ranked {} of {} by rate (1 is highest), in quartile {}",
                        s.rank, s.of, s.quartile
                    )
                });
                (
                    standing,
                    comparison.neighbours_left_out_for_scope,
                    Ok(lines),
                )
            }
            Err(reason) => (None, 0, Err(reason.clone())),
        };
        Self {
            chrome: Chrome::of(visitor),
            code: code.to_string(),
            name: children
                .parent
                .as_ref()
                .map_or_else(|| code.to_string(), |p| p.name.clone()),
            rate_of: label(rate_of),
            groups: choices::<ClientGroup>(rate_of.word()),
            children: child_lines,
            neighbours: neighbour_lines,
            standing,
            left_out,
            consistent_at: children.consistent_at,
        }
    }
}

/// A place's child places side by side, and the place beside its statistical neighbours,
/// its region and England, as rates where population is known.
pub async fn compare(
    State(web): State<Web>,
    visitor: Visitor,
    Path(code): Path<String>,
    Query(query): Query<CompareQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, COMPARE_PLACES).await?;
    let answer = (|| {
        let filter = query.filter.filter()?;
        let rate_of = word::<ClientGroup>("rate_of", &query.rate_of)?
            .unwrap_or(ClientGroup::ChildProtectionPlan);
        let children =
            web.app
                .compare_children(&caller, &code, &filter, PlaceMeasure::TotalActive)?;
        // Only upper-tier authorities have statistical neighbours; elsewhere the page says so.
        let neighbours = match web
            .app
            .compare_with_neighbours(&caller, &code, &filter, rate_of)
        {
            Ok(answer) => Ok(answer),
            Err(AppError::Invalid(invalid) | AppError::Store(StoreError::Invalid(invalid))) => {
                Err(invalid.to_string())
            }
            Err(other) => return Err(other),
        };
        Ok((rate_of, children, neighbours))
    })();
    let (rate_of, children, neighbours) = visitor.conclude(&web, &caller, answer).await?;
    let page = ComparePage::of(&visitor, &code, rate_of, &children, neighbours);
    Ok(render(&page))
}

#[derive(Debug, Clone, Deserialize)]
pub struct RisksQuery {
    #[serde(default)]
    before: Option<u64>,
    #[serde(flatten)]
    filter: FilterQuery,
}

/// One risk record as listed.
pub struct RiskLine {
    pub agency: String,
    pub local_id: String,
    pub subject: String,
    pub client_group: String,
    pub category: String,
    pub severity: String,
    pub status: String,
    pub place: String,
    pub updated: String,
    pub sequence: u64,
}

impl RiskLine {
    fn of(revision: &Revision) -> Self {
        let record = &revision.record;
        Self {
            agency: record.key.agency.to_string(),
            local_id: record.key.local_ref.to_string(),
            subject: record.subject.map(|s| s.to_string()).unwrap_or_default(),
            client_group: label(record.client_group),
            category: label(record.category),
            severity: label(record.severity),
            status: label(record.status),
            place: record.place.to_string(),
            updated: when(record.source_updated_at),
            sequence: revision.sequence,
        }
    }
}

#[derive(Template)]
#[template(path = "risks.html")]
struct RisksPage {
    chrome: Chrome,
    code: String,
    filter: FilterForm,
    risks: Vec<RiskLine>,
    next: Option<String>,
    consistent_at: u64,
}

/// The risks under a place, newest first, a page at a time; each page read is recorded.
pub async fn risks(
    State(web): State<Web>,
    visitor: Visitor,
    Path(code): Path<String>,
    Query(query): Query<RisksQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, LIST_RISKS).await?;
    let page = async {
        let filter = query.filter.filter()?;
        web.app
            .list_risks(&caller, &code, filter, RISKS_PER_PAGE, query.before, None)
            .await
    };
    let page = visitor.conclude(&web, &caller, page.await).await?;
    let filter_query = query.filter.query();
    Ok(render(&RisksPage {
        chrome: Chrome::of(&visitor),
        code: code.clone(),
        filter: FilterForm::of(&query.filter),
        risks: page.revisions.iter().map(RiskLine::of).collect(),
        next: page
            .next
            .map(|before| format!("/places/{code}/risks?{filter_query}&before={before}")),
        consistent_at: page.consistent_at,
    }))
}

#[derive(Template)]
#[template(path = "subject.html")]
struct SubjectPage {
    chrome: Chrome,
    subject: String,
    purpose: String,
    trail: Option<Vec<TrailLine>>,
    consistent_at: u64,
}

/// One revision on a subject's trail.
pub struct TrailLine {
    pub agency: String,
    pub agency_kind: String,
    pub place: String,
    pub client_group: String,
    pub category: String,
    pub severity: String,
    pub status: String,
    pub updated: String,
}

/// The form that asks which subject to follow, and why.
pub async fn subject_form(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    // Showing the form reads nothing, but only those who may follow a subject are offered it.
    let rule = crate::auth::policy::rule_for(FOLLOW_SUBJECT);
    if !rule.is_some_and(|rule| rule.admits(visitor.role())) {
        visitor.admit(&web, FOLLOW_SUBJECT).await?;
    }
    Ok(render(&SubjectPage {
        chrome: Chrome::of(&visitor),
        subject: String::new(),
        purpose: String::new(),
        trail: None,
        consistent_at: 0,
    }))
}

#[derive(Deserialize)]
pub struct TrailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject_key: String,
    #[serde(default)]
    purpose: String,
}

/// A subject's trail across agencies within the inspector's places. Posted, so the subject
/// key stays out of addresses and histories; the purpose is kept in the audit event.
pub async fn trail(
    State(web): State<Web>,
    visitor: Visitor,
    Form(form): Form<TrailForm>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, FOLLOW_SUBJECT).await?;
    if let Err(refused) = visitor.check_form(&form.csrf) {
        let denied = crate::auth::Denied::PermissionDenied(
            "the form has expired or did not come from this service".into(),
        );
        let _ = web.app.conclude::<()>(&caller, Err(denied.into())).await;
        return Err(refused);
    }
    let trail = async {
        let subject = SubjectKey::parse(&form.subject_key)
            .map_err(|reason| Invalid::one("subject_key", reason))?;
        web.app
            .follow_subject(&caller, subject, &form.purpose, None)
            .await
    };
    let trail = visitor.conclude(&web, &caller, trail.await).await?;
    let lines = trail
        .entries
        .iter()
        .map(|entry| {
            let record = &entry.revision.record;
            TrailLine {
                agency: entry
                    .agency
                    .as_ref()
                    .map_or_else(|| record.key.agency.to_string(), |a| a.name.clone()),
                agency_kind: entry
                    .agency
                    .as_ref()
                    .map(|a| label(a.kind))
                    .unwrap_or_default(),
                place: entry
                    .place
                    .as_ref()
                    .map_or_else(|| record.place.to_string(), |p| p.name.clone()),
                client_group: label(record.client_group),
                category: label(record.category),
                severity: label(record.severity),
                status: label(record.status),
                updated: when(record.source_updated_at),
            }
        })
        .collect();
    Ok(render(&SubjectPage {
        chrome: Chrome::of(&visitor),
        subject: form.subject_key.trim().to_string(),
        purpose: form.purpose.trim().to_string(),
        trail: Some(lines),
        consistent_at: trail.consistent_at,
    }))
}

#[derive(Deserialize)]
pub struct SnapshotForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    place_code: String,
    #[serde(default)]
    label: String,
    #[serde(flatten)]
    filter: FilterQuery,
}

/// Freezes a place's view under a label, then shows it.
pub async fn create_snapshot(
    State(web): State<Web>,
    visitor: Visitor,
    Form(form): Form<SnapshotForm>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, CREATE_SNAPSHOT).await?;
    visitor.check_form(&form.csrf)?;
    let snapshot = async {
        let filter = form.filter.filter()?;
        web.app
            .create_snapshot(&caller, &form.place_code, filter, &form.label)
            .await
    };
    let snapshot = visitor.conclude(&web, &caller, snapshot.await).await?;
    Ok(Redirect::to(&format!("/snapshots/{}", snapshot.id)).into_response())
}

/// One snapshot as listed.
pub struct SnapshotLine {
    pub id: u64,
    pub label: String,
    pub place: String,
    pub created_at: String,
    pub total: String,
}

#[derive(Template)]
#[template(path = "snapshots.html")]
struct SnapshotsPage {
    chrome: Chrome,
    snapshots: Vec<SnapshotLine>,
}

/// Snapshots read for the list, newest first.
const SNAPSHOTS_LISTED: usize = 500;

/// The snapshots of places in the inspector's places, newest first.
pub async fn snapshots(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_SNAPSHOT).await?;
    let snapshots = web.app.snapshots(&caller, SNAPSHOTS_LISTED);
    let snapshots = visitor.conclude(&web, &caller, snapshots).await?;
    Ok(render(&SnapshotsPage {
        chrome: Chrome::of(&visitor),
        snapshots: snapshots
            .iter()
            .map(|snapshot| SnapshotLine {
                id: snapshot.id,
                label: snapshot.label.clone(),
                place: snapshot
                    .names
                    .places
                    .first()
                    .cloned()
                    .flatten()
                    .map_or_else(|| snapshot.view.place.to_string(), |p| p.name),
                created_at: when(snapshot.created_at),
                total: count(snapshot.view.total),
            })
            .collect(),
    }))
}

#[derive(Template)]
#[template(path = "snapshot.html")]
struct SnapshotPage {
    chrome: Chrome,
    id: u64,
    label: String,
    created_at: String,
    place: String,
    code: String,
    total: String,
    by_client_group: Vec<Line>,
    by_category: Vec<Line>,
    by_severity: Vec<Line>,
    consistent_at: u64,
}

/// A frozen view, as it was made.
pub async fn snapshot(
    State(web): State<Web>,
    visitor: Visitor,
    Path(id): Path<u64>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_SNAPSHOT).await?;
    let snapshot = web.app.snapshot(&caller, id);
    let snapshot = visitor.conclude(&web, &caller, snapshot).await?;
    let view = &snapshot.view;
    Ok(render(&SnapshotPage {
        chrome: Chrome::of(&visitor),
        id: snapshot.id,
        label: snapshot.label.clone(),
        created_at: when(snapshot.created_at),
        place: snapshot
            .names
            .places
            .first()
            .cloned()
            .flatten()
            .map_or_else(|| view.place.to_string(), |p| p.name),
        code: view.place.to_string(),
        total: count(view.total),
        by_client_group: lines(&view.by_client_group),
        by_category: lines(&view.by_category),
        by_severity: lines(&view.by_severity),
        consistent_at: view.consistent_at,
    }))
}
