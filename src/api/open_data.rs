//! `marr.v1.OpenData`: comparable per-place figures for the public, from releases cut and
//! frozen under disclosure control before they leave the server.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::convert::{coded_option, place_to_proto, rate_to_proto, timestamp};
use super::inspection::filter_from_proto;
use super::reviews::{
    action_to_proto, area_filter, kind_filter, lessons_to_proto, review_answer_to_proto,
    review_to_proto, theme_to_proto,
};
use crate::app::Application;
use crate::app::learning::parse_date;
use crate::app::open_data::PublicTable;
use crate::app::reviews::{ActionFilter, ReviewFilter};
use crate::auth::Caller;
use crate::domain::disclosure::Published;
use crate::domain::population::Rate;
use crate::domain::release::Release;
use crate::domain::review::{THEMES_VERSION, Theme};
use crate::domain::{AgencyId, ClientGroup, Invalid, Place, RiskCategory, Vocabulary};
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

    async fn list_themes(
        &self,
        request: Request<proto::ListThemesRequest>,
    ) -> Result<Response<proto::ListThemesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let themes = self.app.conclude(&caller, Ok(Theme::all())).await?;
        Ok(Response::new(proto::ListThemesResponse {
            version: THEMES_VERSION.to_string(),
            themes: themes.into_iter().map(theme_to_proto).collect(),
        }))
    }

    async fn list_reviews(
        &self,
        request: Request<proto::ListReviewsRequest>,
    ) -> Result<Response<proto::ListReviewsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let page = (|| {
            let filter = ReviewFilter {
                area: area_filter(&self.app, "place_code", &request.place_code)?,
                kind: kind_filter(request.kind)?,
                theme: match request.theme.as_str() {
                    "" => None,
                    word => {
                        Some(Theme::parse(word).map_err(|reason| Invalid::one("theme", reason))?)
                    }
                },
                include_unpublished: request.include_unpublished,
                after: request.after_review_id,
                page_size: request.page_size as usize,
            };
            self.app.reviews(&caller, &filter)
        })();
        let page = self.app.conclude(&caller, page).await?;
        Ok(Response::new(proto::ListReviewsResponse {
            reviews: page
                .reviews
                .iter()
                .map(|answer| review_to_proto(&self.app, &answer.review, answer.published))
                .collect(),
            next_after_review_id: page.next_after.unwrap_or(0),
        }))
    }

    async fn get_review(
        &self,
        request: Request<proto::GetReviewRequest>,
    ) -> Result<Response<proto::GetReviewResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let revision = (request.revision != 0).then_some(request.revision);
        let answer = self.app.review(&caller, request.review_id, revision);
        let answer = self.app.conclude(&caller, answer).await?;
        Ok(Response::new(review_answer_to_proto(&self.app, &answer)))
    }

    async fn list_actions(
        &self,
        request: Request<proto::ListActionsRequest>,
    ) -> Result<Response<proto::ListActionsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let actions = (|| {
            let filter = ActionFilter {
                review: (request.review_id != 0).then_some(request.review_id),
                agency: match request.agency_id.as_str() {
                    "" => None,
                    id => Some(
                        AgencyId::parse(id).map_err(|reason| Invalid::one("agency_id", reason))?,
                    ),
                },
                area: area_filter(&self.app, "place_code", &request.place_code)?,
                overdue_only: request.overdue_only,
                after: request.after_review_id,
                page_size: request.page_size as usize,
            };
            self.app.actions(&caller, &filter)
        })();
        let page = self.app.conclude(&caller, actions).await?;
        Ok(Response::new(proto::ListActionsResponse {
            actions: page.actions.iter().map(action_to_proto).collect(),
            next_after_review_id: page.next_after.unwrap_or(0),
        }))
    }

    async fn get_lessons(
        &self,
        request: Request<proto::GetLessonsRequest>,
    ) -> Result<Response<proto::GetLessonsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let lessons = (|| {
            let from = parse_date("from", &request.from)?;
            let until = parse_date("until", &request.until)?;
            self.app.lessons(Some(&request.area_code), from, until)
        })();
        let lessons = self.app.conclude(&caller, lessons).await?;
        Ok(Response::new(lessons_to_proto(&self.app, &lessons)))
    }
}
