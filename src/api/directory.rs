//! `marr.v1.Directory`: geography and partner agencies.

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{
    BoundaryAssembler, TableAssembler, agency_from_proto, agency_to_proto, place_to_proto,
};
use crate::app::Application;
use crate::auth::Caller;
use crate::domain::Vocabulary;
use crate::domain::neighbours::NeighboursReport;
use crate::domain::population::PopulationReport;
use crate::proto::directory_server::Directory;
use crate::proto::{self};

pub struct DirectoryService {
    app: Application,
}

impl DirectoryService {
    pub fn new(app: Application) -> Self {
        Self { app }
    }
}

fn level_counts(
    counts: impl IntoIterator<Item = (crate::domain::PlaceLevel, u64)>,
) -> Vec<proto::LevelCount> {
    counts
        .into_iter()
        .map(|(level, count)| proto::LevelCount {
            level: level.number(),
            count,
        })
        .collect()
}

/// Rows an import skipped, by reason, as the report sends them.
fn skip_reasons(
    skipped: std::collections::BTreeMap<String, crate::domain::lookup::Skipped>,
) -> Vec<proto::SkipReason> {
    skipped
        .into_iter()
        .map(|(reason, skipped)| proto::SkipReason {
            reason,
            rows: skipped.rows,
            examples: skipped.examples,
        })
        .collect()
}

/// How each table's columns were read, as the report sends it.
fn table_layouts(layouts: Vec<crate::domain::lookup::TableLayout>) -> Vec<proto::TableLayout> {
    layouts
        .into_iter()
        .map(|layout| proto::TableLayout {
            table: layout.table,
            recognised_columns: layout.recognised,
            ignored_columns: layout.ignored,
        })
        .collect()
}

fn population_report_to_proto(report: PopulationReport) -> proto::ImportPopulationResponse {
    proto::ImportPopulationResponse {
        rows_read: report.rows_read,
        figures_stored: report.figures,
        places: report.places,
        years: report.years.iter().map(|y| u32::from(*y)).collect(),
        rows_skipped: report.rows_skipped(),
        skipped: skip_reasons(report.skipped),
        tables: table_layouts(report.layouts),
    }
}

fn neighbours_report_to_proto(
    report: NeighboursReport,
) -> proto::ImportStatisticalNeighboursResponse {
    proto::ImportStatisticalNeighboursResponse {
        rows_read: report.rows_read,
        authorities_stored: report.authorities,
        rows_skipped: report.rows_skipped(),
        skipped: skip_reasons(report.skipped),
        tables: table_layouts(report.layouts),
    }
}

#[tonic::async_trait]
impl Directory for DirectoryService {
    async fn import_statistical_neighbours(
        &self,
        request: Request<Streaming<proto::ImportStatisticalNeighboursRequest>>,
    ) -> Result<Response<proto::ImportStatisticalNeighboursResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mut chunks = request.into_inner();
        let mut tables = TableAssembler::default();
        while let Some(chunk) = chunks.next().await {
            tables.add_neighbours(chunk?)?;
        }
        let report = self
            .app
            .import_statistical_neighbours(&caller, tables.finish())
            .await;
        let report = self.app.conclude(&caller, report).await?;
        Ok(Response::new(neighbours_report_to_proto(report)))
    }

    async fn import_boundaries(
        &self,
        request: Request<Streaming<proto::ImportBoundariesRequest>>,
    ) -> Result<Response<proto::ImportBoundariesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mut chunks = request.into_inner();
        let mut shapes = BoundaryAssembler::default();
        while let Some(chunk) = chunks.next().await {
            shapes.add(chunk?)?;
        }
        let report = match shapes.finish() {
            Ok(shapes) => self.app.import_boundaries(&caller, shapes).await,
            Err(refused) => Err(refused),
        };
        let report = self.app.conclude(&caller, report).await?;
        Ok(Response::new(proto::ImportBoundariesResponse {
            features_read: report.features_read,
            shapes_stored: report.shapes_stored,
            shapes_dissolved: report.shapes_dissolved,
            features_skipped: report.features_skipped(),
            skipped: skip_reasons(report.skipped),
        }))
    }

    async fn import_places(
        &self,
        request: Request<Streaming<proto::ImportPlacesRequest>>,
    ) -> Result<Response<proto::ImportPlacesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mut chunks = request.into_inner();
        let mut tables = TableAssembler::default();
        while let Some(chunk) = chunks.next().await {
            tables.add(chunk?)?;
        }
        let outcome = self.app.import_places(&caller, tables.finish()).await;
        let outcome = self.app.conclude(&caller, outcome).await?;
        let report = outcome.report;
        let (areas, places): (Vec<_>, Vec<_>) = outcome
            .places_by_level
            .into_iter()
            .partition(|(level, _)| level.is_footprint());
        Ok(Response::new(proto::ImportPlacesResponse {
            places: level_counts(places),
            footprint_areas: level_counts(areas),
            places_added: report.places_added,
            code_changes: report.code_changes,
            places_moved: report.places_moved,
            aliases_added: report.aliases_added,
            places_ended: report.places_ended,
            rows_read: report.rows_read,
            rows_skipped: report.rows_skipped(),
            skipped: skip_reasons(report.skipped),
            tables: table_layouts(report.layouts),
        }))
    }

    async fn import_population(
        &self,
        request: Request<Streaming<proto::ImportPopulationRequest>>,
    ) -> Result<Response<proto::ImportPopulationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let mut chunks = request.into_inner();
        let mut tables = TableAssembler::default();
        while let Some(chunk) = chunks.next().await {
            tables.add_population(chunk?)?;
        }
        let report = self.app.import_population(&caller, tables.finish()).await;
        let report = self.app.conclude(&caller, report).await?;
        Ok(Response::new(population_report_to_proto(report)))
    }

    async fn get_place(
        &self,
        request: Request<proto::GetPlaceRequest>,
    ) -> Result<Response<proto::GetPlaceResponse>, Status> {
        let caller = Caller::of(&request)?;
        let detail = self.app.place(&caller, &request.into_inner().code);
        let detail = self.app.conclude(&caller, detail).await?;
        Ok(Response::new(proto::GetPlaceResponse {
            place: Some(place_to_proto(&detail.place, &detail.areas)),
            ancestors: detail
                .ancestors
                .iter()
                .map(|p| place_to_proto(p, &[]))
                .collect(),
            aliases: detail
                .aliases
                .iter()
                .map(|(scheme, code)| proto::PlaceAlias {
                    scheme: scheme.word().to_string(),
                    code: code.clone(),
                })
                .collect(),
        }))
    }

    async fn list_child_places(
        &self,
        request: Request<proto::ListChildPlacesRequest>,
    ) -> Result<Response<proto::ListChildPlacesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let children = self.app.child_places(&caller, &request.into_inner().code);
        let children = self.app.conclude(&caller, children).await?;
        Ok(Response::new(proto::ListChildPlacesResponse {
            places: children.iter().map(|p| place_to_proto(p, &[])).collect(),
        }))
    }

    async fn register_agency(
        &self,
        request: Request<proto::RegisterAgencyRequest>,
    ) -> Result<Response<proto::RegisterAgencyResponse>, Status> {
        let caller = Caller::of(&request)?;
        let registration = async {
            // The agency's codes are read against the directory held now.
            let agency = agency_from_proto(request.into_inner().agency, |code| {
                self.app.store().code_named(code)
            })?;
            self.app.register_agency(&caller, agency).await
        };
        let registration = self.app.conclude(&caller, registration.await).await?;
        Ok(Response::new(proto::RegisterAgencyResponse {
            agency: Some(agency_to_proto(&registration.agency)),
            changed: registration.changed,
        }))
    }

    async fn list_agencies(
        &self,
        request: Request<proto::ListAgenciesRequest>,
    ) -> Result<Response<proto::ListAgenciesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let agencies = self.app.agencies(&caller);
        let agencies = self.app.conclude(&caller, Ok(agencies)).await?;
        Ok(Response::new(proto::ListAgenciesResponse {
            agencies: agencies.iter().map(agency_to_proto).collect(),
        }))
    }
}
