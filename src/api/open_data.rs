//! `marr.v1.OpenData`: comparable per-place figures for the public, from releases cut and
//! frozen under disclosure control before they leave the server.

use tonic::{Request, Response, Status};

use std::collections::BTreeMap;

use super::convert::{coded_option, place_to_proto, rate_to_proto, timestamp};
use super::error::ApiError;
use super::inspection::filter_from_proto;
use crate::auth::Caller;
use crate::domain::disclosure::Published;
use crate::domain::population::Rate;
use crate::domain::release::{Release, ReleasedTable};
use crate::domain::{ClientGroup, Invalid, Place, PlaceCode, PlaceLevel, RiskCategory, Vocabulary};
use crate::proto;
use crate::proto::open_data_server::OpenData;
use crate::store::Store;

pub struct OpenDataService {
    store: Store,
}

impl OpenDataService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn count(published: Published) -> proto::PublishedCount {
    match published {
        Published::Count(value) => proto::PublishedCount {
            value,
            suppressed: false,
            rate: None,
        },
        Published::Suppressed => proto::PublishedCount {
            value: 0,
            suppressed: true,
            rate: None,
        },
    }
}

/// A release as listed in the contract.
pub fn release_to_proto(release: &Release) -> proto::Release {
    let (year, month) = release.time_period();
    proto::Release {
        number: release.number,
        sequence: release.sequence,
        as_at: Some(timestamp(release.as_at)),
        cut_at: Some(timestamp(release.cut_at)),
        scheduled: release.scheduled,
        time_period: format!("{year:04}-{:02}", u8::from(month)),
        tables: release.tables,
    }
}

/// The level of a table's rows, refusing anything below district.
pub fn table_level(number: i32) -> Result<PlaceLevel, Invalid> {
    match coded_option::<PlaceLevel>("level", number)? {
        None => Err(Invalid::one("level", "is required (the level of the rows)")),
        Some(PlaceLevel::Ward | PlaceLevel::Lsoa) => Err(Invalid::one(
            "level",
            "nothing below district level is published",
        )),
        Some(level) => Ok(level),
    }
}

/// The contract's form of a frozen table, each published client-group count with its rate
/// from `rates` (the population known now). A rate is taken from the rounded count and never
/// given for a suppressed one: with the population public, it would give the count away.
fn table_to_proto(
    released: &ReleasedTable,
    release: &Release,
    rates: impl Fn(PlaceCode, &BTreeMap<ClientGroup, u64>) -> BTreeMap<ClientGroup, Rate>,
) -> proto::GetComparativeTableResponse {
    let table = &released.table;
    let row = |place: &Place, r: Option<usize>| {
        let (total, groups, categories) = match r {
            Some(r) => (
                table.by_client_group.row_totals[r],
                &table.by_client_group.cells[r],
                &table.by_category.cells[r],
            ),
            None => (
                table.by_client_group.total,
                &table.by_client_group.column_totals,
                &table.by_category.column_totals,
            ),
        };
        let shown: BTreeMap<ClientGroup, u64> = ClientGroup::ALL
            .iter()
            .zip(groups)
            .filter_map(|(group, published)| match published {
                Published::Count(value) => Some((*group, *value)),
                Published::Suppressed => None,
            })
            .collect();
        let rates = rates(place.code, &shown);
        proto::ComparativeRow {
            place: Some(place_to_proto(place, &[])),
            total: Some(count(total)),
            by_client_group: ClientGroup::ALL
                .iter()
                .zip(groups)
                .map(|(group, published)| proto::PublishedCount {
                    rate: rates.get(group).map(rate_to_proto),
                    ..count(*published)
                })
                .collect(),
            by_category: categories.iter().copied().map(count).collect(),
        }
    };
    proto::GetComparativeTableResponse {
        client_groups: ClientGroup::ALL.iter().map(|g| g.number()).collect(),
        categories: RiskCategory::ALL.iter().map(|c| c.number()).collect(),
        rows: table
            .places
            .iter()
            .enumerate()
            .map(|(i, place)| row(place, Some(i)))
            .collect(),
        total: Some(row(&released.parent, None)),
        consistent_at_sequence: release.sequence,
        release: Some(release_to_proto(release)),
    }
}

#[tonic::async_trait]
impl OpenData for OpenDataService {
    async fn get_comparative_table(
        &self,
        request: Request<proto::GetComparativeTableRequest>,
    ) -> Result<Response<proto::GetComparativeTableResponse>, Status> {
        let request = request.into_inner();
        let parent = self
            .store
            .place_code("parent_code", &request.parent_code)
            .map_err(ApiError::from)?;
        let level = table_level(request.level).map_err(ApiError::from)?;
        let filter = filter_from_proto(request.filter.as_ref()).map_err(ApiError::from)?;
        if !filter.is_everything() {
            return Err(ApiError::from(Invalid::one(
                "filter",
                "releases publish whole tables; a narrower table could be differenced \
                 against the whole one",
            ))
            .into());
        }
        if self.store.place(parent).is_none() {
            return Err(ApiError::NotFound(format!("no place {parent}")).into());
        }
        let asked = (request.release != 0).then_some(request.release);
        let release = match self.store.release(asked).map_err(ApiError::from)? {
            Some(release) => release,
            None if asked.is_some() => {
                return Err(ApiError::NotFound(format!("no release {}", request.release)).into());
            }
            None => {
                return Err(ApiError::NotReleased(
                    "no release of the public table has been cut yet; the first comes at \
                     the next scheduled release point"
                        .into(),
                )
                .into());
            }
        };
        let table = self
            .store
            .release_table(release.number, parent, level)
            .map_err(ApiError::from)?;
        // A parent and level with no places under them publish an empty table.
        let table = match table {
            Some(table) => table,
            None => ReleasedTable {
                parent: self
                    .store
                    .place(parent)
                    .ok_or_else(|| ApiError::NotFound(format!("no place {parent}")))?
                    .place,
                level,
                table: crate::domain::disclosure::comparative_table(Vec::new(), None),
            },
        };
        Ok(Response::new(table_to_proto(
            &table,
            &release,
            |place, counts| self.store.rates(place, counts),
        )))
    }

    async fn list_releases(
        &self,
        _request: Request<proto::ListReleasesRequest>,
    ) -> Result<Response<proto::ListReleasesResponse>, Status> {
        let mut releases = self.store.releases().map_err(ApiError::from)?;
        releases.reverse();
        Ok(Response::new(proto::ListReleasesResponse {
            releases: releases.iter().map(release_to_proto).collect(),
        }))
    }

    async fn cut_release(
        &self,
        request: Request<proto::CutReleaseRequest>,
    ) -> Result<Response<proto::CutReleaseResponse>, Status> {
        let caller = Caller::of(&request)?;
        let release = self
            .store
            .cut_release(caller.actor())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(proto::CutReleaseResponse {
            release: Some(release_to_proto(&release)),
        }))
    }
}
