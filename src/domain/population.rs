//! Population denominators from the ONS mid-year estimates, and rates per 10,000.
//!
//! Inspectors and the public compare places by rate, not by count: 300 children in need means
//! one thing in a district of 20,000 children and another in one of 80,000. Each client group
//! is set against the population band it is drawn from ([`band_of`]). Where no population is
//! known for a place (a ward, an ICB, a code the tables do not list) there is no rate, rather
//! than a wrong one.
//!
//! The tables are read by their header names (`area_code`, `year`, `population_0_17`,
//! `population_18_plus`, `population_65_plus`, `population_all`), so extra columns and their
//! order do not matter. Codes are stored as the tables give them: a predecessor code stays
//! itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lookup::{LookupTable, Skipped, TableLayout};
use super::record::PlaceCode;
use super::vocabulary::ClientGroup;

/// The earliest and latest mid-year a table may give; anything outside is a misread column.
const YEARS: std::ops::RangeInclusive<u16> = 1971..=2100;

/// Rates are per this many people.
pub const RATE_BASE: f64 = 10_000.0;

/// The ages a population count covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PopulationBand {
    /// Aged 0 to 17.
    Children,
    /// Aged 18 and over.
    Adults,
    /// Aged 65 and over (a part of the adults).
    OlderAdults,
    /// Everyone.
    All,
}

impl PopulationBand {
    /// The band as the tables and reports name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Children => "aged 0 to 17",
            Self::Adults => "aged 18 and over",
            Self::OlderAdults => "aged 65 and over",
            Self::All => "all ages",
        }
    }
}

/// The population band a client group's rate is per 10,000 of.
///
/// The children's groups (children in need, protection plans, looked-after children, youth
/// justice) are defined by the Children Act 1989 and the youth justice system for under-18s,
/// so they are set against children aged 0 to 17, as the Department for Education publishes
/// its rates. Adults at risk (Care Act 2014 s42) are adults, and care leavers are supported
/// from 18 (to 25), so both use the population aged 18 and over; older adults use 65 and
/// over, the age adult social care statistics use for older people.
pub fn band_of(group: ClientGroup) -> PopulationBand {
    match group {
        ClientGroup::ChildrenInNeed
        | ClientGroup::ChildProtectionPlan
        | ClientGroup::LookedAfterChild
        | ClientGroup::YouthJustice => PopulationBand::Children,
        ClientGroup::AdultAtRisk | ClientGroup::CareLeaver => PopulationBand::Adults,
        ClientGroup::OlderAdult => PopulationBand::OlderAdults,
    }
}

/// A place's population in one mid-year, by band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopulationCounts {
    pub aged_0_17: u64,
    pub aged_18_plus: u64,
    pub aged_65_plus: u64,
    pub all: u64,
}

impl PopulationCounts {
    /// The count for one band.
    pub fn of(&self, band: PopulationBand) -> u64 {
        match band {
            PopulationBand::Children => self.aged_0_17,
            PopulationBand::Adults => self.aged_18_plus,
            PopulationBand::OlderAdults => self.aged_65_plus,
            PopulationBand::All => self.all,
        }
    }
}

/// One place's population in one mid-year, as imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopulationFigure {
    pub place: PlaceCode,
    /// The mid-year (30 June) the estimate is for.
    pub year: u16,
    pub counts: PopulationCounts,
}

/// Count × 10,000 ÷ population; `None` when there is no one to divide by.
pub fn rate_per_10000(count: u64, population: u64) -> Option<f64> {
    (population > 0).then(|| count as f64 * RATE_BASE / population as f64)
}

/// A count set against the population it is drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Per 10,000 people of the band.
    pub per_10000: f64,
    pub band: PopulationBand,
    /// The population divided by.
    pub population: u64,
    /// The mid-year of that population.
    pub year: u16,
}

/// Every imported population, by place and year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denominators {
    by_place: BTreeMap<PlaceCode, BTreeMap<u16, PopulationCounts>>,
}

impl Denominators {
    /// Adds a figure, replacing any for the same place and year.
    pub fn insert(&mut self, figure: PopulationFigure) {
        self.by_place
            .entry(figure.place)
            .or_default()
            .insert(figure.year, figure.counts);
    }

    /// The latest year's population known for a place.
    pub fn latest(&self, place: PlaceCode) -> Option<(u16, PopulationCounts)> {
        let (year, counts) = self.by_place.get(&place)?.last_key_value()?;
        Some((*year, *counts))
    }

    /// The population of a place in one year.
    pub fn in_year(&self, place: PlaceCode, year: u16) -> Option<PopulationCounts> {
        self.by_place.get(&place)?.get(&year).copied()
    }

    /// How many (place, year) figures are held.
    pub fn len(&self) -> usize {
        self.by_place.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_place.is_empty()
    }

    /// Every figure, by place then year.
    pub fn figures(&self) -> impl Iterator<Item = PopulationFigure> + '_ {
        self.by_place.iter().flat_map(|(place, years)| {
            years.iter().map(|(year, counts)| PopulationFigure {
                place: *place,
                year: *year,
                counts: *counts,
            })
        })
    }

    /// A client group's count at a place as a rate per 10,000 of its band, in the latest year
    /// known for the place; `None` when the place has no population (or none in that band).
    pub fn rate(&self, place: PlaceCode, group: ClientGroup, count: u64) -> Option<Rate> {
        let (year, counts) = self.latest(place)?;
        let band = band_of(group);
        let population = counts.of(band);
        Some(Rate {
            per_10000: rate_per_10000(count, population)?,
            band,
            population,
            year,
        })
    }

    /// The rate of each client group's count at a place, for the groups that have one.
    pub fn rates(
        &self,
        place: PlaceCode,
        counts: &BTreeMap<ClientGroup, u64>,
    ) -> BTreeMap<ClientGroup, Rate> {
        counts
            .iter()
            .filter_map(|(group, count)| Some((*group, self.rate(place, *group, *count)?)))
            .collect()
    }
}

/// A population table that cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PopulationError {
    #[error("table `{table}` has no header row")]
    NoHeader { table: String },
    #[error(
        "table `{table}` is not a population table: it lacks the column(s) {missing} (expected the ONS mid-year estimate columns area_code, year, population_0_17, population_18_plus, population_65_plus, population_all); found: {header}"
    )]
    UnrecognisedLayout {
        table: String,
        missing: String,
        header: String,
    },
    #[error("no table was sent")]
    NoTables,
}

/// What a population import read, for the person who ran it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopulationReport {
    pub rows_read: u64,
    /// (place, year) figures stored; a figure already held for the same place and year is
    /// replaced.
    pub figures: u64,
    /// Distinct places with a figure in this import.
    pub places: u64,
    /// The years this import gave figures for.
    pub years: Vec<u16>,
    pub skipped: BTreeMap<String, Skipped>,
    pub layouts: Vec<TableLayout>,
}

impl PopulationReport {
    pub fn rows_skipped(&self) -> u64 {
        super::lookup::rows_skipped(&self.skipped)
    }

    fn skip(&mut self, reason: String, table: &str, line: u64) {
        super::lookup::skip_row(&mut self.skipped, reason, table, line);
    }
}

/// The figures an import stores, and its report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PopulationPlan {
    pub figures: Vec<PopulationFigure>,
    pub report: PopulationReport,
}

/// The columns a population table must have, in the order a row is read.
const COLUMNS: [&str; 6] = [
    "area_code",
    "year",
    "population_0_17",
    "population_18_plus",
    "population_65_plus",
    "population_all",
];

fn header_name(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .to_ascii_lowercase()
}

/// Where each of [`COLUMNS`] sits in a table.
fn layout_of(table: &LookupTable) -> Result<([usize; 6], TableLayout), PopulationError> {
    if table.header.is_empty() {
        return Err(PopulationError::NoHeader {
            table: table.name.clone(),
        });
    }
    let names: Vec<String> = table.header.iter().map(|h| header_name(h)).collect();
    let mut positions = [0usize; 6];
    let mut missing = Vec::new();
    for (slot, column) in COLUMNS.iter().enumerate() {
        match names.iter().position(|name| name == column) {
            Some(index) => positions[slot] = index,
            None => missing.push(*column),
        }
    }
    if !missing.is_empty() {
        return Err(PopulationError::UnrecognisedLayout {
            table: table.name.clone(),
            missing: missing.join(", "),
            header: table.header.join(","),
        });
    }
    let layout = TableLayout::of_columns(table, &positions);
    Ok((positions, layout))
}

/// Reads one row, or says why it cannot be used. Reasons name the column, never the value:
/// a shifted column can put anything there.
fn read_row(positions: &[usize; 6], cells: &[String]) -> Result<PopulationFigure, String> {
    let cell = |slot: usize| cells.get(positions[slot]).map_or("", |c| c.trim());
    let place = PlaceCode::parse(cell(0)).map_err(|reason| format!("area_code {reason}"))?;
    let year = cell(1)
        .parse::<u16>()
        .ok()
        .filter(|year| YEARS.contains(year))
        .ok_or_else(|| {
            format!(
                "year is not a mid-year between {} and {}",
                YEARS.start(),
                YEARS.end()
            )
        })?;
    let count = |slot: usize| {
        cell(slot)
            .parse::<u64>()
            .map_err(|_| format!("{} is not a whole number of people", COLUMNS[slot]))
    };
    let counts = PopulationCounts {
        aged_0_17: count(2)?,
        aged_18_plus: count(3)?,
        aged_65_plus: count(4)?,
        all: count(5)?,
    };
    // A row whose bands disagree has columns in the wrong place or a typing slip; either way
    // its rates would be wrong.
    if counts.aged_0_17.checked_add(counts.aged_18_plus) != Some(counts.all)
        || counts.aged_65_plus > counts.aged_18_plus
    {
        return Err(
            "the bands do not add up (0 to 17 plus 18 and over must equal all ages, 65 and over must be within 18 and over)"
                .to_string(),
        );
    }
    Ok(PopulationFigure {
        place,
        year,
        counts,
    })
}

/// Reads population tables into figures. A table without the required columns is an error
/// and nothing is imported; a row with a bad code or number is skipped and reported.
pub fn plan_population(tables: &[LookupTable]) -> Result<PopulationPlan, PopulationError> {
    if tables.is_empty() {
        return Err(PopulationError::NoTables);
    }
    let layouts = tables
        .iter()
        .map(layout_of)
        .collect::<Result<Vec<_>, _>>()?;
    let mut plan = PopulationPlan::default();
    let mut read: BTreeMap<(PlaceCode, u16), (String, u64)> = BTreeMap::new();
    for (table, (positions, layout)) in tables.iter().zip(layouts) {
        plan.report.layouts.push(layout);
        for row in &table.rows {
            plan.report.rows_read += 1;
            match read_row(&positions, &row.cells) {
                Err(reason) => plan.report.skip(reason, &table.name, row.line),
                Ok(figure) => {
                    if let Some((first_table, first_line)) = read.get(&(figure.place, figure.year))
                    {
                        let reason = format!(
                            "repeats a place and year first given at {first_table}:{first_line}"
                        );
                        plan.report.skip(reason, &table.name, row.line);
                        continue;
                    }
                    read.insert((figure.place, figure.year), (table.name.clone(), row.line));
                    plan.figures.push(figure);
                }
            }
        }
    }
    plan.report.figures = plan.figures.len() as u64;
    let mut places: Vec<PlaceCode> = plan.figures.iter().map(|f| f.place).collect();
    places.sort();
    places.dedup();
    plan.report.places = places.len() as u64;
    let mut years: Vec<u16> = plan.figures.iter().map(|f| f.year).collect();
    years.sort();
    years.dedup();
    plan.report.years = years;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lookup::LookupRow;
    use crate::domain::vocabulary::Vocabulary;

    fn table(header: &str, rows: &[&str]) -> LookupTable {
        LookupTable {
            name: "population.csv".into(),
            header: header.split(',').map(str::to_string).collect(),
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, row)| LookupRow {
                    line: i as u64 + 2,
                    cells: row.split(',').map(str::to_string).collect(),
                })
                .collect(),
        }
    }

    const HEADER: &str = "area_code,area_name,year,population_0_17,population_18_plus,population_65_plus,population_all";

    #[test]
    fn every_client_group_has_a_band_and_the_children_s_groups_use_0_to_17() {
        for group in ClientGroup::ALL {
            let band = band_of(*group);
            assert_ne!(band, PopulationBand::All, "{}", group.word());
        }
        assert_eq!(
            band_of(ClientGroup::ChildrenInNeed),
            PopulationBand::Children
        );
        assert_eq!(band_of(ClientGroup::CareLeaver), PopulationBand::Adults);
        assert_eq!(
            band_of(ClientGroup::OlderAdult),
            PopulationBand::OlderAdults
        );
    }

    #[test]
    fn a_rate_is_per_10000_of_the_latest_year_and_absent_without_a_population() {
        let plan = plan_population(&[table(
            HEADER,
            &[
                "E08000021,Newcastle,2023,50000,250000,40000,300000",
                "E08000021,Newcastle,2024,52000,251000,41000,303000",
                "E08000037,Gateshead,2024,0,10,5,10",
            ],
        )])
        .expect("plan");
        let mut denominators = Denominators::default();
        for figure in plan.figures {
            denominators.insert(figure);
        }
        let newcastle = PlaceCode::parse("E08000021").expect("code");
        let rate = denominators
            .rate(newcastle, ClientGroup::ChildrenInNeed, 260)
            .expect("rate");
        assert_eq!(rate.year, 2024);
        assert_eq!(rate.population, 52_000);
        assert!((rate.per_10000 - 50.0).abs() < 1e-9);
        let older = denominators
            .rate(newcastle, ClientGroup::OlderAdult, 41)
            .expect("rate");
        assert!((older.per_10000 - 10.0).abs() < 1e-9);
        // No place, or no one in the band: no rate, never a division by zero.
        let ward = PlaceCode::parse("E05011451").expect("code");
        assert_eq!(
            denominators.rate(ward, ClientGroup::ChildrenInNeed, 3),
            None
        );
        let gateshead = PlaceCode::parse("E08000037").expect("code");
        assert_eq!(
            denominators.rate(gateshead, ClientGroup::ChildrenInNeed, 3),
            None
        );
        assert_eq!(rate_per_10000(5, 0), None);
    }

    #[test]
    fn bad_rows_are_skipped_by_reason_and_the_rest_are_read() {
        let plan = plan_population(&[table(
            HEADER,
            &[
                "E08000021,Newcastle,2024,52000,251000,41000,303000",
                "NEWCASTLE,Newcastle,2024,52000,251000,41000,303000",
                "E08000037,Gateshead,twenty,1,2,1,3",
                "E08000037,Gateshead,2024,1,2,1,4",
                "E08000037,Gateshead,2024,1,x,1,3",
                "E08000021,Newcastle,2024,52000,251000,41000,303000",
            ],
        )])
        .expect("plan");
        assert_eq!(plan.report.rows_read, 6);
        assert_eq!(plan.report.figures, 1);
        assert_eq!(plan.report.rows_skipped(), 5);
        assert_eq!(plan.report.skipped.len(), 5, "{:?}", plan.report.skipped);
        let code = plan
            .report
            .skipped
            .iter()
            .find(|(reason, _)| reason.starts_with("area_code"))
            .expect("a bad code is reported");
        assert_eq!(code.1.examples, vec!["population.csv:3".to_string()]);
        assert_eq!(
            plan.report.layouts[0].ignored,
            vec!["area_name".to_string()]
        );
    }

    #[test]
    fn a_table_without_the_population_columns_is_refused_naming_what_is_missing() {
        let error = plan_population(&[table("WD19CD,WD19NM,LAD19CD", &["E05011451,x,E08000021"])])
            .expect_err("not a population table");
        let message = error.to_string();
        assert!(message.contains("area_code"), "{message}");
        assert!(message.contains("population_0_17"), "{message}");
        assert!(
            plan_population(&[table("", &[])]).is_err(),
            "a table without a header"
        );
    }
}
