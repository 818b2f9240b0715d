//! `marr.v1.OpenData`: comparable per-place figures for the public, disclosure-controlled
//! before they leave the server.

use tonic::{Request, Response, Status};

use super::convert::{coded_option, place_code, place_to_proto};
use super::error::ApiError;
use super::inspection::filter_from_proto;
use crate::domain::disclosure::{Published, comparative_table};
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
        },
        Published::Suppressed => proto::PublishedCount {
            value: 0,
            suppressed: true,
        },
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

#[tonic::async_trait]
impl OpenData for OpenDataService {
    async fn get_comparative_table(
        &self,
        request: Request<proto::GetComparativeTableRequest>,
    ) -> Result<Response<proto::GetComparativeTableResponse>, Status> {
        let request = request.into_inner();
        let parent: PlaceCode =
            place_code("parent_code", &request.parent_code).map_err(ApiError::from)?;
        let level = table_level(request.level).map_err(ApiError::from)?;
        let filter = filter_from_proto(request.filter.as_ref()).map_err(ApiError::from)?;
        let parent_place = self
            .store
            .place(parent)
            .ok_or_else(|| ApiError::NotFound(format!("no place {parent}")))?
            .place;
        let (rows, consistent_at) = self.store.comparative_rows(parent, level, &filter);
        let table = comparative_table(rows, None);
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
            proto::ComparativeRow {
                place: Some(place_to_proto(place, &[])),
                total: Some(count(total)),
                by_client_group: groups.iter().copied().map(count).collect(),
                by_category: categories.iter().copied().map(count).collect(),
            }
        };
        Ok(Response::new(proto::GetComparativeTableResponse {
            client_groups: ClientGroup::ALL.iter().map(|g| g.number()).collect(),
            categories: RiskCategory::ALL.iter().map(|c| c.number()).collect(),
            rows: table
                .places
                .iter()
                .enumerate()
                .map(|(i, place)| row(place, Some(i)))
                .collect(),
            total: Some(row(&parent_place, None)),
            consistent_at_sequence: consistent_at,
        }))
    }
}
