//! The tidy layout of a published table, as official statistics publications in England lay
//! out their CSV files (see docs/open-data.md): one line per place, client group and risk
//! category, with the geography columns first. The `marr export` client and a web download
//! both write a release's table through [`tidy_layout`], so the two files are alike.

use time::OffsetDateTime;

use super::disclosure::Published;
use super::population::Rate;
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
