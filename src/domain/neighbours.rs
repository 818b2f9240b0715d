//! Children's services statistical neighbours, as the Department for Education publishes them,
//! and where a place stands among them.
//!
//! For each English upper-tier authority the DfE names the ten authorities most like it,
//! closest first, each with a closeness band. Inspectors and councils benchmark a council
//! against those ten rather than against whoever happens to share its region.
//!
//! The table keys authorities by the DfE's three-digit numbers, not GSS codes; each is resolved
//! through the DfE aliases the places import keeps ([`Geography::by_alias`]), so a recoded
//! authority (Barnsley, Sheffield) is named by its code today. A row is read by its header
//! names (`old_la_code`, `SN_1`…`SN_10`, `SN_1P`…`SN_10P`); other columns are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::geography::{AliasScheme, Geography};
use super::inspection::PlaceView;
use super::lookup::{LookupTable, Skipped, TableLayout};
use super::population::Rate;
use super::record::PlaceCode;
use super::vocabulary::ClientGroup;

/// How many neighbours the DfE names for each authority.
pub const NEIGHBOURS_PER_AUTHORITY: usize = 10;

/// How close a neighbour is, as the DfE bands its distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Closeness {
    ExtremelyClose,
    VeryClose,
    Close,
    SomewhatClose,
    NotClose,
}

impl Closeness {
    /// Every band, closest first.
    pub const ALL: [Closeness; 5] = [
        Self::ExtremelyClose,
        Self::VeryClose,
        Self::Close,
        Self::SomewhatClose,
        Self::NotClose,
    ];

    /// The band as the DfE spells it.
    pub fn label(self) -> &'static str {
        match self {
            Self::ExtremelyClose => "Extremely close",
            Self::VeryClose => "Very close",
            Self::Close => "Close",
            Self::SomewhatClose => "Somewhat close",
            Self::NotClose => "Not close",
        }
    }

    /// Reads a band as published: surrounding spaces (the 2025 file writes "Close ") and
    /// capitals (the 2021 file writes "Not Close") do not matter.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|band| band.label().eq_ignore_ascii_case(text))
    }
}

/// One of an authority's neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    pub place: PlaceCode,
    pub closeness: Closeness,
}

/// An authority and its neighbours, closest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourSet {
    pub authority: PlaceCode,
    pub neighbours: Vec<Neighbour>,
}

/// Every imported authority's neighbours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatisticalNeighbours {
    by_authority: BTreeMap<PlaceCode, Vec<Neighbour>>,
}

impl StatisticalNeighbours {
    /// Adds an authority's set, replacing any it had.
    pub fn insert(&mut self, set: NeighbourSet) {
        self.by_authority.insert(set.authority, set.neighbours);
    }

    /// An authority's neighbours, closest first; `None` when none were imported for it.
    pub fn of(&self, authority: PlaceCode) -> Option<&[Neighbour]> {
        self.by_authority.get(&authority).map(Vec::as_slice)
    }

    /// How many authorities have neighbours.
    pub fn len(&self) -> usize {
        self.by_authority.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_authority.is_empty()
    }

    /// Every set, by authority.
    pub fn sets(&self) -> impl Iterator<Item = NeighbourSet> + '_ {
        self.by_authority
            .iter()
            .map(|(authority, neighbours)| NeighbourSet {
                authority: *authority,
                neighbours: neighbours.clone(),
            })
    }
}

/// A neighbours table that cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeighboursError {
    #[error("table `{table}` has no header row")]
    NoHeader { table: String },
    #[error(
        "table `{table}` is not a statistical neighbours table: it lacks the column(s) {missing} (expected the DfE columns old_la_code, SN_1…SN_10 and SN_1P…SN_10P); found: {header}"
    )]
    UnrecognisedLayout {
        table: String,
        missing: String,
        header: String,
    },
    #[error("no table was sent")]
    NoTables,
}

/// What a neighbours import read, for the person who ran it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeighboursReport {
    pub rows_read: u64,
    /// Authorities whose neighbours were stored (replacing any held for them).
    pub authorities: u64,
    pub skipped: BTreeMap<String, Skipped>,
    pub layouts: Vec<TableLayout>,
}

impl NeighboursReport {
    pub fn rows_skipped(&self) -> u64 {
        super::lookup::rows_skipped(&self.skipped)
    }

    fn skip(&mut self, reason: String, table: &str, line: u64) {
        super::lookup::skip_row(&mut self.skipped, reason, table, line);
    }
}

/// The sets an import stores, and its report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeighboursPlan {
    pub sets: Vec<NeighbourSet>,
    pub report: NeighboursReport,
}

/// The column names a table must have, as published: the authority, then each neighbour
/// followed by its band. Headers match whatever their case.
fn columns() -> Vec<String> {
    let mut names = vec!["old_la_code".to_string()];
    for n in 1..=NEIGHBOURS_PER_AUTHORITY {
        names.push(format!("SN_{n}"));
        names.push(format!("SN_{n}P"));
    }
    names
}

fn header_name(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .to_ascii_lowercase()
}

/// Where each of [`columns`] sits in a table.
fn layout_of(table: &LookupTable) -> Result<(Vec<usize>, TableLayout), NeighboursError> {
    if table.header.is_empty() {
        return Err(NeighboursError::NoHeader {
            table: table.name.clone(),
        });
    }
    let names: Vec<String> = table.header.iter().map(|h| header_name(h)).collect();
    let mut positions = Vec::new();
    let mut missing = Vec::new();
    for column in columns() {
        match names
            .iter()
            .position(|name| *name == column.to_ascii_lowercase())
        {
            Some(index) => positions.push(index),
            None => missing.push(column),
        }
    }
    if !missing.is_empty() {
        return Err(NeighboursError::UnrecognisedLayout {
            table: table.name.clone(),
            missing: missing.join(", "),
            header: table.header.join(","),
        });
    }
    let layout = TableLayout::of_columns(table, &positions);
    Ok((positions, layout))
}

/// Reads one row, or says why it cannot be used. Reasons name the column, not the value, so
/// rows skipped for the same cause are counted together.
fn read_row(
    positions: &[usize],
    cells: &[String],
    geography: &Geography,
) -> Result<NeighbourSet, String> {
    let cell = |slot: usize| cells.get(positions[slot]).map_or("", |c| c.trim());
    let authority = geography
        .by_alias(AliasScheme::Dfe, cell(0))
        .ok_or("old_la_code is not a DfE local authority number of the imported geography")?;
    let mut neighbours = Vec::with_capacity(NEIGHBOURS_PER_AUTHORITY);
    for n in 0..NEIGHBOURS_PER_AUTHORITY {
        let place = geography
            .by_alias(AliasScheme::Dfe, cell(1 + 2 * n))
            .ok_or("a neighbour (SN_1…SN_10) is not a DfE local authority number of the imported geography")?;
        let closeness = Closeness::parse(cell(2 + 2 * n)).ok_or(
            "a band (SN_1P…SN_10P) is not one of Extremely close, Very close, Close, Somewhat close, Not close",
        )?;
        if place == authority {
            return Err("an authority is named as its own neighbour".to_string());
        }
        neighbours.push(Neighbour { place, closeness });
    }
    Ok(NeighbourSet {
        authority,
        neighbours,
    })
}

/// Reads DfE statistical neighbours tables, resolving every DfE number through `geography`.
/// A table without the required columns is an error and nothing is imported; a row whose
/// authority or any neighbour the geography does not know is skipped and reported.
pub fn plan_neighbours(
    tables: &[LookupTable],
    geography: &Geography,
) -> Result<NeighboursPlan, NeighboursError> {
    if tables.is_empty() {
        return Err(NeighboursError::NoTables);
    }
    let layouts = tables
        .iter()
        .map(layout_of)
        .collect::<Result<Vec<_>, _>>()?;
    let mut plan = NeighboursPlan::default();
    let mut read: BTreeMap<PlaceCode, (String, u64)> = BTreeMap::new();
    for (table, (positions, layout)) in tables.iter().zip(layouts) {
        plan.report.layouts.push(layout);
        for row in &table.rows {
            plan.report.rows_read += 1;
            match read_row(&positions, &row.cells, geography) {
                Err(reason) => plan.report.skip(reason, &table.name, row.line),
                Ok(set) => {
                    if let Some((first_table, first_line)) = read.get(&set.authority) {
                        let reason = format!(
                            "repeats an authority first given at {first_table}:{first_line}"
                        );
                        plan.report.skip(reason, &table.name, row.line);
                        continue;
                    }
                    read.insert(set.authority, (table.name.clone(), row.line));
                    plan.sets.push(set);
                }
            }
        }
    }
    plan.report.authorities = plan.sets.len() as u64;
    Ok(plan)
}

/// Where a place stands among itself and its neighbours by one rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// 1 is the highest rate. Places with equal rates share the better rank (1, 2, 2, 4).
    pub rank: u32,
    /// How many places had a rate (the place included).
    pub of: u32,
    /// 1 is the highest quarter, 4 the lowest.
    pub quartile: u32,
}

/// The standing of a place whose rate is `place` among `others` (its neighbours' rates, those
/// without a rate left out by the caller); `None` when the place has no rate.
///
/// The rank is one more than the number of places with a strictly higher rate, so ties share
/// the better rank. The quartile is ⌊4 × (rank − 1) ÷ of⌋ + 1, the quarter of the field that
/// the places ranked above it fill: of 11 places, ranks 1–3 are the first quartile, 4–6 the
/// second, 7–9 the third and 10–11 the fourth; a place alone, or ranked first, is first.
pub fn standing(place: Option<f64>, others: &[f64]) -> Option<Standing> {
    let rate = place?;
    let higher = others.iter().filter(|other| **other > rate).count() as u32;
    let rank = higher + 1;
    let of = others.len() as u32 + 1;
    let quartile = (4 * (rank - 1) / of + 1).clamp(1, 4);
    Some(Standing { rank, of, quartile })
}

/// The part a row plays in a comparison against neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonRole {
    /// The authority being compared.
    Place,
    /// One of its neighbours, with the DfE's band.
    Neighbour(Closeness),
    /// The authority's region.
    Region,
    /// England.
    England,
}

/// One row of a comparison: a place's counts and rates.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    pub role: ComparisonRole,
    pub view: PlaceView,
    pub rates: BTreeMap<ClientGroup, Rate>,
}

/// An authority set against its statistical neighbours, its region and England.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighbourComparison {
    /// The place, its neighbours in the DfE's order, its region, then England; places the
    /// caller may not see are left out.
    pub rows: Vec<ComparisonRow>,
    /// The place's standing among the place and neighbour rows shown, by `rate_of`.
    pub standing: Option<Standing>,
    /// The client group whose rate ranks the places.
    pub rate_of: ClientGroup,
    /// Neighbours left out because the caller may not see them.
    pub neighbours_left_out_for_scope: u32,
    pub consistent_at: u64,
}

impl NeighbourComparison {
    /// Ranks the place and neighbour rows by `rate_of` (rows without that rate left out).
    pub fn standing_of(rows: &[ComparisonRow], rate_of: ClientGroup) -> Option<Standing> {
        let rate = |row: &ComparisonRow| row.rates.get(&rate_of).map(|r| r.per_10000);
        let place = rows
            .iter()
            .find(|row| row.role == ComparisonRole::Place)
            .and_then(rate);
        let others: Vec<f64> = rows
            .iter()
            .filter(|row| matches!(row.role, ComparisonRole::Neighbour(_)))
            .filter_map(rate)
            .collect();
        standing(place, &others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::geography::{Alias, Place};
    use crate::domain::lookup::LookupRow;
    use crate::domain::vocabulary::PlaceLevel;

    fn header() -> String {
        let mut names = vec!["\u{feff}old_la_code".to_string(), "la_name".to_string()];
        for n in 1..=10 {
            names.push(format!("SN_{n}"));
            names.push(format!("SN_{n}P"));
        }
        names.join(",")
    }

    fn table(header: &str, rows: &[String]) -> LookupTable {
        LookupTable {
            name: "neighbours.csv".into(),
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

    /// Twelve districts with DfE numbers 300 to 311.
    fn geography() -> Geography {
        let mut geography = Geography::default();
        for n in 0..12u32 {
            let code = PlaceCode::parse(&format!("E090000{:02}", n + 1)).expect("code");
            geography.insert_place(Place {
                code,
                name: format!("Borough {n}"),
                level: PlaceLevel::District,
                parent: None,
            });
            geography.insert_alias(Alias {
                scheme: AliasScheme::Dfe,
                alias: format!("{}", 300 + n),
                place: code,
            });
        }
        geography
    }

    fn row(authority: u32, neighbours: &[u32], band: &str) -> String {
        let mut cells = vec![authority.to_string(), "name".to_string()];
        for n in neighbours {
            cells.push(n.to_string());
            cells.push(band.to_string());
        }
        cells.join(",")
    }

    fn code(n: u32) -> PlaceCode {
        PlaceCode::parse(&format!("E090000{:02}", n - 299)).expect("code")
    }

    #[test]
    fn bands_read_as_published_with_spaces_and_either_case() {
        assert_eq!(Closeness::parse("Close "), Some(Closeness::Close));
        assert_eq!(Closeness::parse("Not Close"), Some(Closeness::NotClose));
        assert_eq!(
            Closeness::parse("Extremely close"),
            Some(Closeness::ExtremelyClose)
        );
        assert_eq!(Closeness::parse("Near"), None);
    }

    #[test]
    fn a_row_resolves_every_dfe_number_and_unknown_numbers_skip_the_row() {
        let known: Vec<u32> = (301..=310).collect();
        let mut unknown = known.clone();
        unknown[4] = 999;
        let plan = plan_neighbours(
            &[table(
                &header(),
                &[
                    row(300, &known, "Close "),
                    row(311, &unknown, "Close "),
                    row(998, &known, "Close "),
                    row(300, &known, "Close "),
                ],
            )],
            &geography(),
        )
        .expect("plan");
        assert_eq!(plan.report.rows_read, 4);
        assert_eq!(plan.report.authorities, 1);
        assert_eq!(plan.report.rows_skipped(), 3);
        let set = &plan.sets[0];
        assert_eq!(set.authority, code(300));
        let places: Vec<PlaceCode> = set.neighbours.iter().map(|n| n.place).collect();
        assert_eq!(places, known.iter().map(|n| code(*n)).collect::<Vec<_>>());
        assert!(
            set.neighbours
                .iter()
                .all(|n| n.closeness == Closeness::Close)
        );
        let neighbour = plan
            .report
            .skipped
            .iter()
            .find(|(reason, _)| reason.starts_with("a neighbour"))
            .expect("an unknown neighbour is reported");
        assert_eq!(neighbour.1.examples, vec!["neighbours.csv:3".to_string()]);
        assert!(
            plan.report
                .skipped
                .keys()
                .any(|reason| reason.starts_with("old_la_code")),
            "{:?}",
            plan.report.skipped
        );
        assert_eq!(plan.report.layouts[0].ignored, vec!["la_name".to_string()]);
        // The byte-order mark before the first header is not part of its name.
        assert_eq!(plan.report.layouts[0].recognised[0], "old_la_code");
    }

    #[test]
    fn a_table_without_the_dfe_columns_is_refused_naming_what_is_missing() {
        let error = plan_neighbours(
            &[table("LA num,LA Name,SN1,SNP", &["201,x,207,Close".into()])],
            &geography(),
        )
        .expect_err("not the 2025 layout");
        let message = error.to_string();
        assert!(message.contains("old_la_code"), "{message}");
        assert!(message.contains("SN_10P"), "{message}");
        assert!(plan_neighbours(&[], &geography()).is_err());
    }

    #[test]
    fn the_standing_ranks_highest_first_and_quarters_eleven_places() {
        // The place and ten neighbours with rates 10, 20, … 110.
        let rates: Vec<f64> = (1..=11).map(|n| f64::from(n) * 10.0).collect();
        let at = |rate: f64| {
            let others: Vec<f64> = rates.iter().copied().filter(|r| *r != rate).collect();
            standing(Some(rate), &others).expect("a standing")
        };
        assert_eq!(
            at(110.0),
            Standing {
                rank: 1,
                of: 11,
                quartile: 1
            }
        );
        assert_eq!(
            at(90.0),
            Standing {
                rank: 3,
                of: 11,
                quartile: 1
            }
        );
        assert_eq!(
            at(80.0),
            Standing {
                rank: 4,
                of: 11,
                quartile: 2
            }
        );
        assert_eq!(at(60.0).quartile, 2);
        assert_eq!(
            at(50.0),
            Standing {
                rank: 7,
                of: 11,
                quartile: 3
            }
        );
        assert_eq!(at(30.0).quartile, 3);
        assert_eq!(
            at(20.0),
            Standing {
                rank: 10,
                of: 11,
                quartile: 4
            }
        );
        assert_eq!(
            at(10.0),
            Standing {
                rank: 11,
                of: 11,
                quartile: 4
            }
        );
    }

    #[test]
    fn ties_share_the_better_rank_and_no_rate_means_no_standing() {
        assert_eq!(
            standing(Some(5.0), &[9.0, 5.0, 5.0, 1.0]),
            Some(Standing {
                rank: 2,
                of: 5,
                quartile: 1
            })
        );
        assert_eq!(
            standing(Some(3.0), &[3.0, 3.0, 3.0]).map(|s| s.rank),
            Some(1)
        );
        assert_eq!(standing(None, &[1.0, 2.0]), None);
        assert_eq!(
            standing(Some(0.0), &[]),
            Some(Standing {
                rank: 1,
                of: 1,
                quartile: 1
            })
        );
    }
}
