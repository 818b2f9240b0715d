//! `marr export`: a comparative table as a CSV file in the tidy layout official statistics
//! publications in England use (see docs/open-data.md).

use std::path::Path;

use time::OffsetDateTime;

use super::{ClientError, Connection};
use crate::domain::disclosure::Published;
use crate::domain::population::{PopulationBand, Rate, band_of};
use crate::domain::tidy::{NamedPlace, TidyCount, TidyRow, TidySource, tidy_layout};
use crate::domain::{ClientGroup, PlaceLevel, RiskCategory, Vocabulary};
use crate::proto;

/// The layout's own names, kept here for the command's callers.
pub use crate::domain::tidy::{LEADING_COLUMNS, geographic_level};

/// A published count as the tables print it: the rounded value, or `c` where suppressed.
pub fn published(count: Option<&proto::PublishedCount>) -> String {
    crate::domain::tidy::published(count.map(published_from_proto))
}

fn published_from_proto(count: &proto::PublishedCount) -> Published {
    if count.suppressed {
        Published::Suppressed
    } else {
        Published::Count(count.value)
    }
}

/// A count as the server sent it, with its rate for a population of `band`.
fn count_from_proto(count: &proto::PublishedCount, band: PopulationBand) -> TidyCount {
    TidyCount {
        count: published_from_proto(count),
        rate: count.rate.as_ref().map(|rate| Rate {
            per_10000: rate.per_ten_thousand,
            band,
            population: rate.population,
            // A mid-year past u16 is no year a table was made for.
            year: u16::try_from(rate.year).unwrap_or(u16::MAX),
        }),
    }
}

fn named(place: &proto::Place) -> NamedPlace {
    NamedPlace {
        code: place.code.clone(),
        name: place.name.clone(),
        level: PlaceLevel::from_number(place.level),
    }
}

/// A place's ancestors, country first, as the directory gives them.
async fn ancestors_of(
    connection: &Connection,
    place: &proto::Place,
) -> Result<Vec<NamedPlace>, ClientError> {
    let answer = connection
        .directory()
        .get_place(proto::GetPlaceRequest {
            code: place.code.clone(),
        })
        .await?
        .into_inner();
    Ok(answer.ancestors.iter().map(named).collect())
}

/// One row of the server's table, in the layout's terms.
async fn row_from_proto(
    connection: &Connection,
    table: &proto::GetComparativeTableResponse,
    row: &proto::ComparativeRow,
) -> Result<Option<TidyRow>, ClientError> {
    let Some(place) = &row.place else {
        return Ok(None);
    };
    let by_client_group = table
        .client_groups
        .iter()
        .zip(&row.by_client_group)
        .map(|(number, count)| {
            let group = ClientGroup::from_number(*number);
            let band = group.map_or(PopulationBand::All, band_of);
            (group, count_from_proto(count, band))
        })
        .collect();
    let by_category = table
        .categories
        .iter()
        .zip(&row.by_category)
        .map(|(number, count)| {
            let category = RiskCategory::from_number(*number);
            (category, count_from_proto(count, PopulationBand::All))
        })
        .collect();
    Ok(Some(TidyRow {
        place: named(place),
        ancestors: ancestors_of(connection, place).await?,
        total: row
            .total
            .as_ref()
            .map(|c| count_from_proto(c, PopulationBand::All)),
        by_client_group,
        by_category,
    }))
}

/// Fetches the comparative table of a release (0: the latest) and writes it to `out`;
/// answers the number of data rows. `time_period` is the release's, not today's.
pub async fn export(
    connection: &Connection,
    parent: &str,
    level: PlaceLevel,
    release: u64,
    out: &Path,
) -> Result<usize, ClientError> {
    let table = connection
        .open_data()
        .get_comparative_table(proto::GetComparativeTableRequest {
            parent_code: parent.into(),
            level: level.number(),
            // A release is published whole: a narrowed table beside it could be differenced.
            filter: None,
            release,
        })
        .await?
        .into_inner();
    let parent_answer = connection
        .directory()
        .get_place(proto::GetPlaceRequest {
            code: parent.into(),
        })
        .await?
        .into_inner();

    let as_at = table
        .release
        .as_ref()
        .and_then(|r| r.as_at)
        .and_then(|at| OffsetDateTime::from_unix_timestamp(at.seconds).ok())
        .ok_or_else(|| ClientError::Input {
            path: out.display().to_string(),
            reason: "the server's answer names no release".into(),
        })?;
    let mut rows = Vec::new();
    for row in &table.rows {
        rows.extend(row_from_proto(connection, &table, row).await?);
    }
    let total = match &table.total {
        Some(row) => row_from_proto(connection, &table, row).await?,
        None => None,
    };
    let source = TidySource {
        as_at,
        level,
        parent: parent_answer.place.as_ref().map(named),
        parent_ancestors: parent_answer.ancestors.iter().map(named).collect(),
        rows,
        total,
    };
    let tidy = tidy_layout(&source);

    let failed = |e: csv::Error| ClientError::Input {
        path: out.display().to_string(),
        reason: e.to_string(),
    };
    let mut writer = csv::Writer::from_path(out).map_err(failed)?;
    writer.write_record(&tidy.header).map_err(failed)?;
    for line in &tidy.lines {
        writer.write_record(line).map_err(failed)?;
    }
    writer.flush().map_err(|e| ClientError::Input {
        path: out.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(tidy.lines.len())
}

/// Which table `marr export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExportTable {
    /// The comparative table of a release (needs `--parent` and `--level`).
    #[default]
    Comparative,
    /// Published reviews' findings: one row per recommendation, or per finding without one.
    Findings,
    /// Published reviews' action plans: one row per action, as it stands.
    Actions,
}

fn write_table(out: &Path, table: &crate::domain::tidy::TidyTable) -> Result<usize, ClientError> {
    let failed = |reason: String| ClientError::Input {
        path: out.display().to_string(),
        reason,
    };
    let mut writer = csv::Writer::from_path(out).map_err(|e| failed(e.to_string()))?;
    writer
        .write_record(&table.header)
        .map_err(|e| failed(e.to_string()))?;
    for line in &table.lines {
        writer
            .write_record(line)
            .map_err(|e| failed(e.to_string()))?;
    }
    writer.flush().map_err(|e| failed(e.to_string()))?;
    Ok(table.lines.len())
}

fn time_from(at: Option<&prost_types::Timestamp>) -> OffsetDateTime {
    at.and_then(|t| crate::api::convert::time_from_proto(t).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A published review, as the server sent it, in the findings layout's terms.
fn review_source(review: &proto::Review) -> crate::domain::tidy::ReviewSource {
    use crate::domain::review::{Judgement, ReviewKind, Theme};
    use crate::domain::tidy::{FindingSource, RecommendationSource, ReviewSource};
    ReviewSource {
        id: review.id,
        revision: review.revision,
        kind: ReviewKind::from_number(review.kind),
        title: review.title.clone(),
        place: NamedPlace {
            code: review.place_code.clone(),
            name: review
                .place
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            level: review
                .place
                .as_ref()
                .and_then(|p| PlaceLevel::from_number(p.level)),
        },
        published_at: time_from(review.published_at.as_ref()),
        findings: review
            .findings
            .iter()
            .map(|finding| FindingSource {
                number: finding.number,
                theme: Theme::parse(&finding.theme).ok(),
                judgement: Judgement::from_number(finding.judgement),
                summary: finding.summary.clone(),
                recommendations: finding
                    .recommendations
                    .iter()
                    .map(|r| RecommendationSource {
                        number: r.number,
                        agency_id: r.agency_id.clone(),
                        text: r.text.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// An action of a published plan, as the server sent it, in the actions layout's terms.
fn action_source(
    action: &proto::Action,
    out: &Path,
) -> Result<crate::domain::tidy::ActionSource, ClientError> {
    use crate::domain::review::{ActionKey, ActionStatus, RecommendationRef};
    let at = action.recommendation.unwrap_or_default();
    let due =
        crate::domain::record::parse_iso_date(&action.due).ok_or_else(|| ClientError::Input {
            path: out.display().to_string(),
            reason: format!(
                "the server sent a due date that is not YYYY-MM-DD for review {} action {}.{}.{}",
                at.review_id, at.finding, at.recommendation, action.number
            ),
        })?;
    Ok(crate::domain::tidy::ActionSource {
        key: ActionKey {
            recommendation: RecommendationRef {
                review: at.review_id,
                finding: at.finding,
                recommendation: at.recommendation,
            },
            number: action.number,
        },
        revision: action.revision,
        agency_id: action.agency_id.clone(),
        description: action.description.clone(),
        owner: action.owner.clone(),
        due,
        status: ActionStatus::from_number(action.status),
        overdue: action.overdue,
        updated_at: time_from(action.updated_at.as_ref()),
    })
}

/// Writes published reviews' findings (of reviews within `area`, or all) to `out` from the
/// public calls only; answers the number of data rows.
pub async fn export_findings(
    connection: &Connection,
    area: Option<&str>,
    out: &Path,
) -> Result<usize, ClientError> {
    let query = super::reviews::ReviewQuery {
        place: area.map(str::to_string),
        ..Default::default()
    };
    // Published reviews only, whoever asks: an export is open data.
    let reviews = super::reviews::list(connection, &query).await?;
    let sources: Vec<_> = reviews
        .iter()
        .filter(|r| r.published)
        .map(review_source)
        .collect();
    write_table(out, &crate::domain::tidy::findings_layout(&sources))
}

/// Writes published reviews' action plans (of reviews within `area`, or all) to `out` from the
/// public calls only; answers the number of data rows.
pub async fn export_actions(
    connection: &Connection,
    area: Option<&str>,
    out: &Path,
) -> Result<usize, ClientError> {
    let actions = super::reviews::list_actions(
        connection,
        proto::ListActionsRequest {
            place_code: area.unwrap_or_default().to_string(),
            ..Default::default()
        },
    )
    .await?;
    let sources = actions
        .iter()
        .map(|a| action_source(a, out))
        .collect::<Result<Vec<_>, _>>()?;
    write_table(out, &crate::domain::tidy::actions_layout(&sources))
}
