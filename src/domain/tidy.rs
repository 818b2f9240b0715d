//! The tidy layout of a published table, as official statistics publications in England lay
//! out their CSV files (see docs/open-data.md): one line per place, client group and risk
//! category, with the geography columns first. The `marr export` client and a web download
//! both write a release's table through [`tidy_layout`], so the two files are alike. The
//! findings and actions of published reviews are laid out the same way, one line per
//! recommendation ([`findings_layout`]) and per action ([`actions_layout`]).

use time::{Date, OffsetDateTime};

use super::disclosure::Published;
use super::population::Rate;
use super::review::{Action, ActionKey, ActionStatus, Judgement, Review, ReviewKind, Theme};
use super::{ClientGroup, PlaceLevel, RiskCategory, Vocabulary};

/// The columns every row starts with, whatever the level.
pub const LEADING_COLUMNS: [&str; 9] = [
    "time_period",
    "time_identifier",
    "geographic_level",
    "country_code",
    "country_name",
    "region_code",
    "region_name",
    "new_la_code",
    "la_name",
];

/// What a published table's level is called in the tidy layout.
pub fn geographic_level(level: PlaceLevel) -> &'static str {
    match level {
        PlaceLevel::Country => "National",
        PlaceLevel::Region => "Regional",
        PlaceLevel::County => "Local authority",
        PlaceLevel::District => "Local authority district",
        PlaceLevel::PoliceForceArea => "Police force area",
        PlaceLevel::CommunitySafetyPartnership => "Community safety partnership",
        PlaceLevel::ClinicalCommissioningGroup => "Clinical commissioning group",
        PlaceLevel::SubIcbLocation => "Sub-ICB location",
        PlaceLevel::IntegratedCareBoard => "Integrated care board",
        // Never published; named for completeness.
        PlaceLevel::Ward => "Ward",
        PlaceLevel::Lsoa => "Lower layer super output area",
    }
}

/// A place as the layout names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedPlace {
    pub code: String,
    pub name: String,
    /// `None` for a level this build does not know.
    pub level: Option<PlaceLevel>,
}

/// One published count, with the rate published beside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TidyCount {
    pub count: Published,
    pub rate: Option<Rate>,
}

/// One place's row of a published table, with where it sits.
#[derive(Debug, Clone, PartialEq)]
pub struct TidyRow {
    pub place: NamedPlace,
    /// The place's ancestors, country first. Empty for a footprint area, which sits where the
    /// table's parent sits.
    pub ancestors: Vec<NamedPlace>,
    pub total: Option<TidyCount>,
    /// `None` for a client group this build does not know, written as `unknown`.
    pub by_client_group: Vec<(Option<ClientGroup>, TidyCount)>,
    pub by_category: Vec<(Option<RiskCategory>, TidyCount)>,
}

/// A release's table for one parent and level, in domain form.
#[derive(Debug, Clone, PartialEq)]
pub struct TidySource {
    /// When the release was taken as at: its time period.
    pub as_at: OffsetDateTime,
    /// The level of the table's rows.
    pub level: PlaceLevel,
    pub parent: Option<NamedPlace>,
    /// The parent's ancestors, country first.
    pub parent_ancestors: Vec<NamedPlace>,
    pub rows: Vec<TidyRow>,
    /// The parent's own row.
    pub total: Option<TidyRow>,
}

/// A table in the tidy layout: its header and its lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TidyTable {
    pub header: Vec<String>,
    pub lines: Vec<Vec<String>>,
}

/// A published count as the tables print it: the rounded value, or `c` where suppressed.
pub fn published(count: Option<Published>) -> String {
    match count {
        Some(Published::Suppressed) => "c".into(),
        Some(Published::Count(value)) => value.to_string(),
        None => String::new(),
    }
}

/// Lays a release's table out in the tidy layout.
pub fn tidy_layout(source: &TidySource) -> TidyTable {
    let as_at = source.as_at;
    let month = as_at.month().to_string();
    let level = source.level;
    // Each footprint level in play gets code and name columns: the rows' level when they are
    // footprint areas, and the parent's when the parent is one (its rows all lie in it, and
    // its own row is the total).
    let parent_level = source.parent.as_ref().and_then(|p| p.level);
    let mut area_levels: Vec<PlaceLevel> = [Some(level), parent_level]
        .into_iter()
        .flatten()
        .filter(|l| l.is_footprint())
        .collect();
    area_levels.dedup();
    let mut header: Vec<String> = LEADING_COLUMNS.iter().map(|c| c.to_string()).collect();
    for area in &area_levels {
        header.extend([format!("{area}_code"), format!("{area}_name")]);
    }
    header.extend(
        [
            "client_group",
            "risk_category",
            "active_risk_records",
            // Client-group rows only, where the count is shown and the population known.
            "rate_per_10000",
            "population",
            "population_year",
        ]
        .map(String::from),
    );
    let mut parent_chain = source.parent_ancestors.clone();
    parent_chain.extend(source.parent.clone());

    let mut lines = Vec::new();
    // The table's rows are at the level asked for (a unitary district is a local authority in
    // an upper-tier table); the parent's row is at its own level.
    let rows = source
        .rows
        .iter()
        .map(|row| (row, Some(level)))
        .chain(source.total.iter().map(|row| (row, None)));
    for (row, at) in rows {
        let place = &row.place;
        let row_level = at.or(place.level).unwrap_or(level);
        let mut chain = if row.ancestors.is_empty() {
            parent_chain.clone()
        } else {
            row.ancestors.clone()
        };
        chain.push(place.clone());
        let in_chain = |level: PlaceLevel| {
            chain
                .iter()
                .find(|p| p.level == Some(level))
                .map(|p| (p.code.clone(), p.name.clone()))
                .unwrap_or_default()
        };
        let (country, region) = (in_chain(PlaceLevel::Country), in_chain(PlaceLevel::Region));
        // The local authority is the upper-tier one where there is a county, else the district.
        let la = match place.level {
            Some(PlaceLevel::County | PlaceLevel::District) => {
                (place.code.clone(), place.name.clone())
            }
            _ => Default::default(),
        };
        let mut leading = vec![
            as_at.year().to_string(),
            month.clone(),
            geographic_level(row_level).to_string(),
            country.0,
            country.1,
            region.0,
            region.1,
            la.0,
            la.1,
        ];
        for &area in &area_levels {
            let (code, name) = if row_level == area {
                (place.code.clone(), place.name.clone())
            } else {
                match &source.parent {
                    Some(p) if parent_level == Some(area) => (p.code.clone(), p.name.clone()),
                    _ => Default::default(),
                }
            };
            leading.extend([code, name]);
        }
        let mut line = |group: &str, category: &str, count: Option<&TidyCount>| {
            let mut line = leading.clone();
            line.extend([
                group.to_string(),
                category.to_string(),
                published(count.map(|c| c.count)),
            ]);
            // Empty where no rate is published: the tidy layout's way of saying "not given".
            line.extend(match count.and_then(|c| c.rate) {
                Some(rate) => [
                    format!("{:.1}", rate.per_10000),
                    rate.population.to_string(),
                    rate.year.to_string(),
                ],
                None => Default::default(),
            });
            lines.push(line);
        };
        line("Total", "Total", row.total.as_ref());
        for (group, count) in &row.by_client_group {
            line(group.map_or("unknown", |g| g.word()), "Total", Some(count));
        }
        for (category, count) in &row.by_category {
            line(
                "Total",
                category.map_or("unknown", |c| c.word()),
                Some(count),
            );
        }
    }
    TidyTable { header, lines }
}

/// The columns of the findings table: one line per recommendation, or per finding that has
/// none, of every published review.
pub const FINDINGS_COLUMNS: [&str; 15] = [
    "review_id",
    "review_revision",
    "review_kind",
    "title",
    "place_code",
    "place_name",
    "published_at",
    "finding",
    "theme",
    "theme_family",
    "judgement",
    "summary",
    "recommendation",
    "accountable_agency_id",
    "recommendation_text",
];

/// The columns of the actions table: one line per action of a published review's plan, as
/// it stands.
pub const ACTIONS_COLUMNS: [&str; 12] = [
    "review_id",
    "finding",
    "recommendation",
    "action",
    "revision",
    "agency_id",
    "description",
    "owner",
    "due",
    "status",
    "overdue",
    "updated_at",
];

/// One recommendation of a published finding, in the layout's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecommendationSource {
    pub number: u32,
    pub agency_id: String,
    pub text: String,
}

/// One finding of a published review; `None` for a theme or judgement this build does not
/// know, written as `unknown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingSource {
    pub number: u32,
    pub theme: Option<Theme>,
    pub judgement: Option<Judgement>,
    pub summary: String,
    pub recommendations: Vec<RecommendationSource>,
}

/// A published review as the findings table reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewSource {
    pub id: u64,
    pub revision: u32,
    pub kind: Option<ReviewKind>,
    pub title: String,
    pub place: NamedPlace,
    pub published_at: OffsetDateTime,
    pub findings: Vec<FindingSource>,
}

impl ReviewSource {
    /// A stored review revision, its place named as the directory names it.
    pub fn of(review: &Review, place_name: &str) -> Self {
        Self {
            id: review.id,
            revision: review.revision,
            kind: Some(review.kind),
            title: review.title.clone(),
            place: NamedPlace {
                code: review.place.to_string(),
                name: place_name.to_string(),
                level: None,
            },
            published_at: review.published_at,
            findings: review
                .findings
                .iter()
                .zip(1..)
                .map(|(finding, number)| FindingSource {
                    number,
                    theme: Some(finding.theme),
                    judgement: Some(finding.judgement),
                    summary: finding.summary.clone(),
                    recommendations: finding
                        .recommendations
                        .iter()
                        .zip(1..)
                        .map(|(r, number)| RecommendationSource {
                            number,
                            agency_id: r.agency.to_string(),
                            text: r.text.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One action as the actions table reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSource {
    pub key: ActionKey,
    pub revision: u32,
    pub agency_id: String,
    pub description: String,
    pub owner: String,
    pub due: Date,
    /// `None` for a status this build does not know, written as `unknown`.
    pub status: Option<ActionStatus>,
    /// Past its due date and not done, when the table was read.
    pub overdue: bool,
    pub updated_at: OffsetDateTime,
}

impl ActionSource {
    /// A stored action revision, with whether it is overdue now.
    pub fn of(action: &Action, overdue: bool) -> Self {
        Self {
            key: action.key,
            revision: action.revision,
            agency_id: action.agency.to_string(),
            description: action.description.clone(),
            owner: action.owner.clone(),
            due: action.due,
            status: Some(action.status),
            overdue,
            updated_at: action.updated_at,
        }
    }
}

/// Published reviews' findings and recommendations, in review, finding and recommendation
/// order: one line per recommendation, and one (its recommendation columns empty) per finding
/// that has none.
pub fn findings_layout(reviews: &[ReviewSource]) -> TidyTable {
    let mut reviews: Vec<&ReviewSource> = reviews.iter().collect();
    reviews.sort_by_key(|r| r.id);
    let mut lines = Vec::new();
    for review in reviews {
        for finding in &review.findings {
            let leading = vec![
                review.id.to_string(),
                review.revision.to_string(),
                review.kind.map_or("unknown", |k| k.word()).to_string(),
                review.title.clone(),
                review.place.code.clone(),
                review.place.name.clone(),
                super::record::rfc3339(review.published_at),
                finding.number.to_string(),
                finding.theme.map_or("unknown", |t| t.word()).to_string(),
                finding
                    .theme
                    .map_or("unknown", |t| t.family().word())
                    .to_string(),
                finding
                    .judgement
                    .map_or("unknown", |j| j.word())
                    .to_string(),
                finding.summary.clone(),
            ];
            if finding.recommendations.is_empty() {
                let mut line = leading.clone();
                line.extend([String::new(), String::new(), String::new()]);
                lines.push(line);
            }
            for recommendation in &finding.recommendations {
                let mut line = leading.clone();
                line.extend([
                    recommendation.number.to_string(),
                    recommendation.agency_id.clone(),
                    recommendation.text.clone(),
                ]);
                lines.push(line);
            }
        }
    }
    TidyTable {
        header: FINDINGS_COLUMNS.iter().map(|c| c.to_string()).collect(),
        lines,
    }
}

/// Published action plans, one line per action in review, finding, recommendation and action
/// order.
pub fn actions_layout(actions: &[ActionSource]) -> TidyTable {
    let mut actions: Vec<&ActionSource> = actions.iter().collect();
    actions.sort_by_key(|a| a.key);
    let lines = actions
        .into_iter()
        .map(|action| {
            vec![
                action.key.recommendation.review.to_string(),
                action.key.recommendation.finding.to_string(),
                action.key.recommendation.recommendation.to_string(),
                action.key.number.to_string(),
                action.revision.to_string(),
                action.agency_id.clone(),
                action.description.clone(),
                action.owner.clone(),
                super::record::iso_date(action.due),
                action.status.map_or("unknown", |s| s.word()).to_string(),
                action.overdue.to_string(),
                super::record::rfc3339(action.updated_at),
            ]
        })
        .collect();
    TidyTable {
        header: ACTIONS_COLUMNS.iter().map(|c| c.to_string()).collect(),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::review::RecommendationRef;
    use time::macros::{date, datetime};

    fn finding(number: u32, theme: &str, recommendations: &[&str]) -> FindingSource {
        FindingSource {
            number,
            theme: Theme::parse(theme).ok(),
            judgement: Some(Judgement::AreaForImprovement),
            summary: format!("Finding {number}"),
            recommendations: recommendations
                .iter()
                .zip(1..)
                .map(|(agency, number)| RecommendationSource {
                    number,
                    agency_id: agency.to_string(),
                    text: format!("Recommendation {number}"),
                })
                .collect(),
        }
    }

    #[test]
    fn findings_lay_out_one_line_per_recommendation_and_one_per_finding_without() {
        let review = |id: u64| ReviewSource {
            id,
            revision: 2,
            kind: Some(ReviewKind::SafeguardingPracticeReview),
            title: "A review".into(),
            place: NamedPlace {
                code: "E08000023".into(),
                name: "South Tyneside".into(),
                level: None,
            },
            published_at: datetime!(2026-05-01 9:00 UTC),
            findings: vec![
                finding(1, "neglect", &["RTD", "E23000007"]),
                finding(2, "no_such_theme", &[]),
            ],
        };
        // Reviews come out in id order whatever order they were read in.
        let table = findings_layout(&[review(7), review(3)]);
        assert_eq!(table.header, FINDINGS_COLUMNS.map(String::from).to_vec());
        assert_eq!(table.lines.len(), 6);
        assert_eq!(
            table.lines[0],
            [
                "3",
                "2",
                "safeguarding_practice_review",
                "A review",
                "E08000023",
                "South Tyneside",
                "2026-05-01T09:00:00Z",
                "1",
                "neglect",
                "category",
                "area_for_improvement",
                "Finding 1",
                "1",
                "RTD",
                "Recommendation 1",
            ]
            .map(String::from)
            .to_vec()
        );
        assert_eq!(table.lines[1][13], "E23000007");
        // A theme this build does not know is written `unknown`; no recommendation, empty cells.
        assert_eq!(&table.lines[2][8..10], ["unknown", "unknown"]);
        assert_eq!(&table.lines[2][12..], ["", "", ""]);
        assert_eq!(table.lines[3][0], "7");
    }

    #[test]
    fn actions_lay_out_in_key_order_with_their_due_date_and_overdue_flag() {
        let action = |review: u64, number: u32, overdue: bool| ActionSource {
            key: ActionKey {
                recommendation: RecommendationRef {
                    review,
                    finding: 2,
                    recommendation: 1,
                },
                number,
            },
            revision: 1,
            agency_id: "E23000007".into(),
            description: "Daily notification".into(),
            owner: "Head of Public Protection".into(),
            due: date!(2026 - 06 - 30),
            status: Some(ActionStatus::InProgress),
            overdue,
            updated_at: datetime!(2026-06-01 10:00 UTC),
        };
        let table = actions_layout(&[action(2, 1, false), action(1, 2, true), action(1, 1, true)]);
        assert_eq!(table.header, ACTIONS_COLUMNS.map(String::from).to_vec());
        let keys: Vec<(&str, &str)> = table
            .lines
            .iter()
            .map(|l| (l[0].as_str(), l[3].as_str()))
            .collect();
        assert_eq!(keys, [("1", "1"), ("1", "2"), ("2", "1")]);
        assert_eq!(
            &table.lines[0][8..],
            ["2026-06-30", "in_progress", "true", "2026-06-01T10:00:00Z"]
        );
    }
}
