//! Open data: comparable per-place figures for the public, from releases cut and frozen under
//! disclosure control before they leave the server.

use std::collections::BTreeMap;

use super::{AppError, Application};
use crate::auth::Caller;
use crate::domain::disclosure::{Published, comparative_table};
use crate::domain::inspection::ViewFilter;
use crate::domain::population::Rate;
use crate::domain::release::{Release, ReleasedTable};
use crate::domain::tidy::{NamedPlace, TidyCount, TidyRow, TidySource, TidyTable, tidy_layout};
use crate::domain::{ClientGroup, Invalid, Place, PlaceLevel, RiskCategory, Vocabulary};

/// A release's table for one parent and level, with the rates that may be published beside
/// its counts.
#[derive(Debug, Clone)]
pub struct PublicTable {
    pub release: Release,
    pub table: ReleasedTable,
    /// Each row's client-group rates, in the order of `table.table.places`.
    pub row_rates: Vec<BTreeMap<ClientGroup, Rate>>,
    /// The parent's (total) row's client-group rates.
    pub total_rates: BTreeMap<ClientGroup, Rate>,
}

/// The level of a table's rows, refusing anything below district.
fn published_level(level: Option<PlaceLevel>) -> Result<PlaceLevel, Invalid> {
    match level {
        None => Err(Invalid::one("level", "is required (the level of the rows)")),
        Some(PlaceLevel::Ward | PlaceLevel::Lsoa) => Err(Invalid::one(
            "level",
            "nothing below district level is published",
        )),
        Some(level) => Ok(level),
    }
}

impl Application {
    /// Every release cut, newest first.
    pub fn releases(&self, _caller: &Caller) -> Result<Vec<Release>, AppError> {
        let mut releases = self.store.releases()?;
        releases.reverse();
        Ok(releases)
    }

    /// The comparative table of `release` (the latest when `None`) for the places at `level`
    /// under `parent`. Nothing below district level is published, and only whole tables: a
    /// narrower filter is refused, as it could be differenced against the whole table.
    pub fn comparative_table(
        &self,
        _caller: &Caller,
        parent: &str,
        level: Option<PlaceLevel>,
        filter: &ViewFilter,
        release: Option<u64>,
    ) -> Result<PublicTable, AppError> {
        let parent = self.store.place_code("parent_code", parent)?;
        let level = published_level(level)?;
        if !filter.is_everything() {
            return Err(AppError::from(Invalid::one(
                "filter",
                "releases publish whole tables; a narrower table could be differenced \
                 against the whole one",
            )));
        }
        if self.store.place(parent).is_none() {
            return Err(AppError::NotFound(format!("no place {parent}")));
        }
        let release = match self.store.release(release)? {
            Some(release) => release,
            None => {
                return Err(match release {
                    Some(number) => AppError::NotFound(format!("no release {number}")),
                    None => AppError::NotReleased(
                        "no release of the public table has been cut yet; the first comes at \
                         the next scheduled release point"
                            .into(),
                    ),
                });
            }
        };
        // A parent and level with no places under them publish an empty table.
        let table = match self.store.release_table(release.number, parent, level)? {
            Some(table) => table,
            None => ReleasedTable {
                parent: self
                    .store
                    .place(parent)
                    .ok_or_else(|| AppError::NotFound(format!("no place {parent}")))?
                    .place,
                level,
                table: comparative_table(Vec::new(), None),
            },
        };
        let counts = &table.table.by_client_group;
        let row_rates = table
            .table
            .places
            .iter()
            .zip(&counts.cells)
            .map(|(place, groups)| self.published_rates(place, groups))
            .collect();
        let total_rates = self.published_rates(&table.parent, &counts.column_totals);
        Ok(PublicTable {
            release,
            table,
            row_rates,
            total_rates,
        })
    }

    /// A row's client-group rates from the population known now. A rate is taken from the
    /// rounded count and never given for a suppressed one: with the population public, it
    /// would give the count away.
    fn published_rates(&self, place: &Place, groups: &[Published]) -> BTreeMap<ClientGroup, Rate> {
        let shown: BTreeMap<ClientGroup, u64> = ClientGroup::ALL
            .iter()
            .zip(groups)
            .filter_map(|(group, published)| match published {
                Published::Count(value) => Some((*group, *value)),
                Published::Suppressed => None,
            })
            .collect();
        self.store.rates(place.code, &shown)
    }

    /// A release's table in the tidy layout of official statistics, for a download: the
    /// same table [`Application::comparative_table`] gives (always whole), laid out by the
    /// same [`tidy_layout`] as `marr export` uses, so both files are alike.
    pub fn tidy_table(
        &self,
        caller: &Caller,
        parent: &str,
        level: Option<PlaceLevel>,
        release: Option<u64>,
    ) -> Result<TidyTable, AppError> {
        let everything = ViewFilter::default();
        let table = self.comparative_table(caller, parent, level, &everything, release)?;
        Ok(tidy_layout(&self.tidy_source(&table)))
    }

    /// A release's table in the layout's terms, each place set in the directory held now.
    fn tidy_source(&self, answer: &PublicTable) -> TidySource {
        let named = |place: &Place| NamedPlace {
            code: place.code.to_string(),
            name: place.name.clone(),
            level: Some(place.level),
        };
        // A place the directory no longer holds sits where the table's parent sits.
        let ancestors = |place: &Place| {
            self.store
                .place(place.code)
                .map(|detail| detail.ancestors.iter().map(named).collect())
                .unwrap_or_default()
        };
        let table = &answer.table.table;
        let (groups, categories) = (&table.by_client_group, &table.by_category);
        let row = |place: &Place,
                   total: Published,
                   group_counts: &[Published],
                   category_counts: &[Published],
                   rates: &BTreeMap<ClientGroup, Rate>| TidyRow {
            place: named(place),
            ancestors: ancestors(place),
            total: Some(TidyCount {
                count: total,
                rate: None,
            }),
            by_client_group: ClientGroup::ALL
                .iter()
                .zip(group_counts)
                .map(|(group, count)| {
                    let rate = rates.get(group).copied();
                    (
                        Some(*group),
                        TidyCount {
                            count: *count,
                            rate,
                        },
                    )
                })
                .collect(),
            by_category: RiskCategory::ALL
                .iter()
                .zip(category_counts)
                .map(|(category, count)| {
                    (
                        Some(*category),
                        TidyCount {
                            count: *count,
                            rate: None,
                        },
                    )
                })
                .collect(),
        };
        let parent = self.store.place(answer.table.parent.code);
        TidySource {
            as_at: answer.release.as_at,
            level: answer.table.level,
            parent: parent.as_ref().map(|detail| named(&detail.place)),
            parent_ancestors: parent
                .map(|detail| detail.ancestors.iter().map(named).collect())
                .unwrap_or_default(),
            rows: table
                .places
                .iter()
                .zip(&answer.row_rates)
                .enumerate()
                .map(|(r, (place, rates))| {
                    row(
                        place,
                        groups.row_totals[r],
                        &groups.cells[r],
                        &categories.cells[r],
                        rates,
                    )
                })
                .collect(),
            total: Some(row(
                &answer.table.parent,
                groups.total,
                &groups.column_totals,
                &categories.column_totals,
                &answer.total_rates,
            )),
        }
    }

    /// Cuts a release out of schedule.
    pub async fn cut_release(&self, caller: &Caller) -> Result<Release, AppError> {
        Ok(self.store.cut_release(caller.actor()).await?)
    }
}
