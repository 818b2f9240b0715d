//! `marr.v1.OpenData`: comparable per-place figures for the public, from releases cut and
//! frozen under disclosure control before they leave the server.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::convert::{coded_option, place_to_proto, rate_to_proto, timestamp};
use super::inspection::filter_from_proto;
use crate::app::Application;
use crate::app::open_data::PublicTable;
use crate::auth::Caller;
use crate::domain::disclosure::Published;
use crate::domain::population::Rate;
use crate::domain::release::Release;
use crate::domain::{ClientGroup, Place, RiskCategory, Vocabulary};
use crate::proto;
use crate::proto::open_data_server::OpenData;

pub struct OpenDataService {
    app: Application,
}

impl OpenDataService {
    pub fn new(app: Application) -> Self {
        Self { app }
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

/// The contract's form of a release's table, each published client-group count with the
/// rate the application gives for it.
fn table_to_proto(answer: &PublicTable) -> proto::GetComparativeTableResponse {
    let table = &answer.table.table;
    let row = |place: &Place,
               total: Published,
               groups: &[Published],
               categories: &[Published],
               rates: &BTreeMap<ClientGroup, Rate>| proto::ComparativeRow {
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
    };
    let (groups, categories) = (&table.by_client_group, &table.by_category);
    proto::GetComparativeTableResponse {
        client_groups: ClientGroup::ALL.iter().map(|g| g.number()).collect(),
        categories: RiskCategory::ALL.iter().map(|c| c.number()).collect(),
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
        consistent_at_sequence: answer.release.sequence,
        release: Some(release_to_proto(&answer.release)),
    }
}

#[tonic::async_trait]
impl OpenData for OpenDataService {
    async fn get_comparative_table(
        &self,
        request: Request<proto::GetComparativeTableRequest>,
    ) -> Result<Response<proto::GetComparativeTableResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let table = (|| {
            let level = coded_option("level", request.level)?;
            let filter = filter_from_proto(request.filter.as_ref())?;
            let release = (request.release != 0).then_some(request.release);
            self.app
                .comparative_table(&caller, &request.parent_code, level, &filter, release)
        })();
        let table = self.app.conclude(&caller, table).await?;
        Ok(Response::new(table_to_proto(&table)))
    }

    async fn list_releases(
        &self,
        request: Request<proto::ListReleasesRequest>,
    ) -> Result<Response<proto::ListReleasesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let releases = self.app.releases(&caller);
        let releases = self.app.conclude(&caller, releases).await?;
        Ok(Response::new(proto::ListReleasesResponse {
            releases: releases.iter().map(release_to_proto).collect(),
        }))
    }

    async fn cut_release(
        &self,
        request: Request<proto::CutReleaseRequest>,
    ) -> Result<Response<proto::CutReleaseResponse>, Status> {
        let caller = Caller::of(&request)?;
        let release = self.app.cut_release(&caller).await;
        let release = self.app.conclude(&caller, release).await?;
        Ok(Response::new(proto::CutReleaseResponse {
            release: Some(release_to_proto(&release)),
        }))
    }
}
