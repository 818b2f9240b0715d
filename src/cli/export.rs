//! `marr export`: a comparative table as a CSV file in the tidy layout official statistics
//! publications in England use (see docs/open-data.md).

use std::path::Path;

use time::OffsetDateTime;

use super::{ClientError, Connection};
use crate::domain::{ClientGroup, PlaceLevel, RiskCategory, Vocabulary};
use crate::proto;

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

/// A published count as the tables print it: the rounded value, or `c` where suppressed.
pub fn published(count: Option<&proto::PublishedCount>) -> String {
    match count {
        Some(c) if c.suppressed => "c".into(),
        Some(c) => c.value.to_string(),
        None => String::new(),
    }
}

/// Where a row sits: its country, region and local authority, from its ancestors.
struct Geography {
    country: (String, String),
    region: (String, String),
    la: (String, String),
}

async fn geography_of(
    connection: &Connection,
    place: &proto::Place,
    fallback: &[proto::Place],
) -> Result<Geography, ClientError> {
    let answer = connection
        .directory()
        .get_place(proto::GetPlaceRequest {
            code: place.code.clone(),
        })
        .await?
        .into_inner();
    let mut chain = answer.ancestors;
    if chain.is_empty() {
        // A footprint area has no parent: it sits where the table's parent sits.
        chain = fallback.to_vec();
    }
    chain.push(place.clone());
    let at = |level: PlaceLevel| {
        chain
            .iter()
            .find(|p| p.level == level.number())
            .map(|p| (p.code.clone(), p.name.clone()))
            .unwrap_or_default()
    };
    // The local authority is the upper-tier one where there is a county, else the district.
    let la = match PlaceLevel::from_number(place.level) {
        Some(PlaceLevel::County | PlaceLevel::District) => (place.code.clone(), place.name.clone()),
        _ => Default::default(),
    };
    Ok(Geography {
        country: at(PlaceLevel::Country),
        region: at(PlaceLevel::Region),
        la,
    })
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
    let parent_place = parent_answer.place.clone();
    let mut parent_chain = parent_answer.ancestors;
    parent_chain.extend(parent_answer.place);

    let as_at = table
        .release
        .as_ref()
        .and_then(|r| r.as_at)
        .and_then(|at| OffsetDateTime::from_unix_timestamp(at.seconds).ok())
        .ok_or_else(|| ClientError::Input {
            path: out.display().to_string(),
            reason: "the server's answer names no release".into(),
        })?;
    let month = as_at.month().to_string();
    let failed = |e: csv::Error| ClientError::Input {
        path: out.display().to_string(),
        reason: e.to_string(),
    };
    let mut writer = csv::Writer::from_path(out).map_err(failed)?;
    // Each footprint level in play gets code and name columns: the rows' level when they are
    // footprint areas, and the parent's when the parent is one (its rows all lie in it, and
    // its own row is the total).
    let parent_level = parent_place
        .as_ref()
        .and_then(|p| PlaceLevel::from_number(p.level));
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
    writer.write_record(&header).map_err(failed)?;

    let mut written = 0;
    // The table's rows are at the level asked for (a unitary district is a local authority in
    // an upper-tier table); the parent's row is at its own level.
    let rows = table
        .rows
        .iter()
        .map(|row| (row, Some(level)))
        .chain(table.total.iter().map(|row| (row, None)));
    for (row, at) in rows {
        let Some(place) = &row.place else { continue };
        let row_level = at
            .or_else(|| PlaceLevel::from_number(place.level))
            .unwrap_or(level);
        let geography = geography_of(connection, place, &parent_chain).await?;
        let mut leading = vec![
            as_at.year().to_string(),
            month.clone(),
            geographic_level(row_level).to_string(),
            geography.country.0,
            geography.country.1,
            geography.region.0,
            geography.region.1,
            geography.la.0,
            geography.la.1,
        ];
        for &area in &area_levels {
            let (code, name) = if row_level == area {
                (place.code.clone(), place.name.clone())
            } else {
                match &parent_place {
                    Some(p) if parent_level == Some(area) => (p.code.clone(), p.name.clone()),
                    _ => Default::default(),
                }
            };
            leading.extend([code, name]);
        }
        let mut line = |group: &str, category: &str, count: Option<&proto::PublishedCount>| {
            let mut record = leading.clone();
            record.extend([group.to_string(), category.to_string(), published(count)]);
            // Empty where no rate is published: the tidy layout's way of saying "not given".
            let rate = count.and_then(|c| c.rate.as_ref());
            record.extend(match rate {
                Some(rate) => [
                    format!("{:.1}", rate.per_ten_thousand),
                    rate.population.to_string(),
                    rate.year.to_string(),
                ],
                None => Default::default(),
            });
            writer.write_record(&record)
        };
        line("Total", "Total", row.total.as_ref()).map_err(failed)?;
        for (number, count) in table.client_groups.iter().zip(&row.by_client_group) {
            let word = ClientGroup::from_number(*number).map_or("unknown", |g| g.word());
            line(word, "Total", Some(count)).map_err(failed)?;
        }
        for (number, count) in table.categories.iter().zip(&row.by_category) {
            let word = RiskCategory::from_number(*number).map_or("unknown", |c| c.word());
            line("Total", word, Some(count)).map_err(failed)?;
        }
        written += 1 + row.by_client_group.len() + row.by_category.len();
    }
    writer.flush().map_err(|e| ClientError::Input {
        path: out.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(written)
}
