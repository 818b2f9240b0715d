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
