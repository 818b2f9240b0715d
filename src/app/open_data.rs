//! Open data: comparable per-place figures for the public, from releases cut and frozen under
//! disclosure control before they leave the server.

use std::collections::BTreeMap;

use super::{AppError, Application};
use crate::auth::Caller;
use crate::domain::disclosure::{Published, comparative_table};
use crate::domain::inspection::ViewFilter;
use crate::domain::population::Rate;
use crate::domain::release::{Release, ReleasedTable};
use crate::domain::{ClientGroup, Invalid, Place, PlaceLevel, Vocabulary};

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

    /// Cuts a release out of schedule.
    pub async fn cut_release(&self, caller: &Caller) -> Result<Release, AppError> {
        Ok(self.store.cut_release(caller.actor()).await?)
    }
}
