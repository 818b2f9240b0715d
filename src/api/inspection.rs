//! `marr.v1.Inspection`: place views across agencies, comparisons, risk lists, subject trails
//! and snapshots.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::convert::{
    coded_list, coded_option, page_size, place_to_proto, rate_to_proto, revision_to_proto,
    timestamp,
};
use crate::app::Application;
use crate::app::inspection::{ChildComparison, NeighbourAnswer, PlaceViewAnswer};
use crate::auth::Caller;
use crate::domain::inspection::{PlaceMeasure, PlaceView, ViewFilter};
use crate::domain::neighbours::{Closeness, ComparisonRole};
use crate::domain::population::Rate;
use crate::domain::{ClientGroup, Invalid, SubjectKey, Vocabulary};
use crate::proto;
use crate::proto::inspection_server::Inspection;
use crate::store::{Snapshot, ViewNames};

pub struct InspectionService {
    app: Application,
}

impl InspectionService {
    pub fn new(app: Application) -> Self {
        Self { app }
    }
}

/// A live view in the contract's form.
fn place_view_to_proto(answer: &PlaceViewAnswer, filter: &proto::ViewFilter) -> proto::PlaceView {
    view_to_proto(&answer.view, filter, &answer.names, &answer.rates)
}

/// A comparison against statistical neighbours in the contract's form.
fn neighbour_comparison_to_proto(answer: &NeighbourAnswer) -> proto::ComparePlacesResponse {
    let comparison = &answer.comparison;
    let rows = comparison
        .rows
        .iter()
        .zip(&answer.places)
        .map(|(row, place)| {
            let (role, closeness) = match row.role {
                ComparisonRole::Place => (proto::ComparisonRole::Place, None),
                ComparisonRole::Neighbour(band) => (proto::ComparisonRole::Neighbour, Some(band)),
                ComparisonRole::Region => (proto::ComparisonRole::Region, None),
                ComparisonRole::England => (proto::ComparisonRole::England, None),
            };
            let view = &row.view;
            proto::PlaceComparison {
                place: place.as_ref().map(|p| place_to_proto(p, &[])),
                total_active: view.total,
                high_or_worse: view.high_or_worse(),
                critical: view.critical(),
                subjects_at_two_or_more_agencies: view.subjects_at_two_or_more_agencies,
                by_client_group: client_group_totals(&view.by_client_group, &row.rates),
                role: role as i32,
                closeness: closeness.map_or(proto::Closeness::Unspecified, closeness_to_proto)
                    as i32,
            }
        })
        .collect();
    proto::ComparePlacesResponse {
        rows,
        consistent_at_sequence: comparison.consistent_at,
        standing: comparison.standing.map(|s| proto::Standing {
            rank: s.rank,
            of: s.of,
            quartile: s.quartile,
            rate_of: comparison.rate_of.number(),
        }),
        neighbours_left_out_for_scope: comparison.neighbours_left_out_for_scope,
    }
}

/// A place's children side by side in the contract's form.
fn child_comparison_to_proto(comparison: &ChildComparison) -> proto::ComparePlacesResponse {
    let rows = comparison
        .rows
        .iter()
        .map(|row| proto::PlaceComparison {
            place: row.place.as_ref().map(|p| place_to_proto(p, &[])),
            total_active: row.view.total,
            high_or_worse: row.view.high_or_worse(),
            critical: row.view.critical(),
            subjects_at_two_or_more_agencies: row.view.subjects_at_two_or_more_agencies,
            by_client_group: client_group_totals(&row.view.by_client_group, &row.rates),
            role: proto::ComparisonRole::Unspecified as i32,
            closeness: proto::Closeness::Unspecified as i32,
        })
        .collect();
    proto::ComparePlacesResponse {
        rows,
        consistent_at_sequence: comparison.consistent_at,
        standing: None,
        neighbours_left_out_for_scope: 0,
    }
}

fn snapshot_to_proto(snapshot: &Snapshot) -> proto::Snapshot {
    proto::Snapshot {
        id: snapshot.id,
        label: snapshot.label.clone(),
        created_at: Some(timestamp(snapshot.created_at)),
        view: Some(view_to_proto(
            &snapshot.view,
            &filter_to_proto(&snapshot.filter),
            &snapshot.names,
            // A snapshot keeps counts only: today's population is not what it was made with.
            &BTreeMap::new(),
        )),
    }
}

/// Each client group's count, with its rate where there is one.
fn client_group_totals(
    counts: &BTreeMap<ClientGroup, u64>,
    rates: &BTreeMap<ClientGroup, Rate>,
) -> Vec<proto::ClientGroupTotal> {
    counts
        .iter()
        .map(|(group, active)| proto::ClientGroupTotal {
            client_group: group.number(),
            active: *active,
            rate: rates.get(group).map(rate_to_proto),
        })
        .collect()
}

fn closeness_to_proto(band: Closeness) -> proto::Closeness {
    match band {
        Closeness::ExtremelyClose => proto::Closeness::ExtremelyClose,
        Closeness::VeryClose => proto::Closeness::VeryClose,
        Closeness::Close => proto::Closeness::Close,
        Closeness::SomewhatClose => proto::Closeness::SomewhatClose,
        Closeness::NotClose => proto::Closeness::NotClose,
    }
}

/// A view in the contract's form, with these names for its places and agencies and these
/// rates for its client groups.
fn view_to_proto(
    view: &PlaceView,
    filter: &proto::ViewFilter,
    names: &ViewNames,
    rates: &BTreeMap<ClientGroup, Rate>,
) -> proto::PlaceView {
    let agencies = &names.agencies;
    let place = |i: usize| {
        names
            .places
            .get(i)
            .and_then(Option::as_ref)
            .map(|p| place_to_proto(p, &[]))
    };
    proto::PlaceView {
        place: place(0),
        consistent_at_sequence: view.consistent_at,
        filter: Some(filter.clone()),
        total_active: view.total,
        by_client_group: client_group_totals(&view.by_client_group, rates),
        by_category: view
            .by_category
            .iter()
            .map(|(c, n)| proto::CategoryTotal {
                category: c.number(),
                active: *n,
            })
            .collect(),
        by_severity: view
            .by_severity
            .iter()
            .map(|(s, n)| proto::SeverityTotal {
                severity: s.number(),
                active: *n,
            })
            .collect(),
        by_agency_kind: view
            .by_agency_kind
            .iter()
            .map(|(k, n)| proto::AgencyKindTotal {
                agency_kind: k.number(),
                active: *n,
            })
            .collect(),
        by_agency: view
            .by_agency
            .iter()
            .map(|(id, n)| proto::AgencyTotal {
                agency_id: id.to_string(),
                name: agencies
                    .get(id)
                    .map(|(_, name)| name.clone())
                    .unwrap_or_default(),
                kind: agencies.get(id).map_or(0, |(kind, _)| kind.number()),
                active: *n,
            })
            .collect(),
        children: view
            .children
            .iter()
            .enumerate()
            .map(|(i, (_, n))| proto::ChildPlaceTotal {
                place: place(i + 1),
                active: *n,
            })
            .collect(),
        subjects_at_two_or_more_agencies: view.subjects_at_two_or_more_agencies,
        subjects_at_two_or_more_agency_kinds: view.subjects_at_two_or_more_agency_kinds,
    }
}

/// Reads a filter, naming any value that is not in the vocabulary.
pub fn filter_from_proto(filter: Option<&proto::ViewFilter>) -> Result<ViewFilter, Invalid> {
    let Some(filter) = filter else {
        return Ok(ViewFilter::default());
    };
    Ok(ViewFilter {
        client_groups: coded_list("filter.client_groups", &filter.client_groups)?,
        categories: coded_list("filter.categories", &filter.categories)?,
        min_severity: coded_option("filter.min_severity", filter.min_severity)?,
    })
}

fn filter_to_proto(filter: &ViewFilter) -> proto::ViewFilter {
    proto::ViewFilter {
        client_groups: filter.client_groups.iter().map(|g| g.number()).collect(),
        categories: filter.categories.iter().map(|c| c.number()).collect(),
        min_severity: filter.min_severity.map_or(0, |s| s.number()),
    }
}

fn as_of(sequence: u64) -> Option<u64> {
    (sequence > 0).then_some(sequence)
}

/// Which places a comparison sets side by side, read from the request.
enum Comparing {
    Children(PlaceMeasure),
    Neighbours(ClientGroup),
}

fn comparing(request: &proto::ComparePlacesRequest) -> Result<Comparing, Invalid> {
    match proto::ComparisonKind::try_from(request.kind) {
        Ok(proto::ComparisonKind::Unspecified | proto::ComparisonKind::Children) => {}
        Ok(proto::ComparisonKind::StatisticalNeighbours) => {
            let rate_of = coded_option::<ClientGroup>("rate_of", request.rate_of)?.ok_or_else(|| {
                Invalid::one(
                    "rate_of",
                    "is required when comparing with statistical neighbours: name the client group whose rate per 10,000 ranks the places",
                )
            })?;
            return Ok(Comparing::Neighbours(rate_of));
        }
        Err(_) => {
            let reason = format!("{} is not a known comparison kind", request.kind);
            return Err(Invalid::one("kind", reason));
        }
    }
    let measure = match proto::PlaceMeasure::try_from(request.sort_by) {
        Ok(proto::PlaceMeasure::Unspecified | proto::PlaceMeasure::TotalActive) => {
            PlaceMeasure::TotalActive
        }
        Ok(proto::PlaceMeasure::HighOrWorse) => PlaceMeasure::HighOrWorse,
        Ok(proto::PlaceMeasure::Critical) => PlaceMeasure::Critical,
        Ok(proto::PlaceMeasure::SubjectsAtTwoOrMoreAgencies) => {
            PlaceMeasure::SubjectsAtTwoOrMoreAgencies
        }
        Err(_) => {
            let reason = format!("{} is not a known measure", request.sort_by);
            return Err(Invalid::one("sort_by", reason));
        }
    };
    Ok(Comparing::Children(measure))
}

/// A page token this server gave: the sequence to resume below.
pub fn page_token(token: &str) -> Result<Option<u64>, Invalid> {
    match token {
        "" => Ok(None),
        token => token
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Invalid::one("page_token", "is not a token this server gave")),
    }
}

#[tonic::async_trait]
impl Inspection for InspectionService {
    async fn get_place_view(
        &self,
        request: Request<proto::GetPlaceViewRequest>,
    ) -> Result<Response<proto::GetPlaceViewResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let answer = async {
            let filter = filter_from_proto(request.filter.as_ref())?;
            let as_of = as_of(request.as_of_sequence);
            self.app
                .place_view(&caller, &request.place_code, filter, as_of)
                .await
        };
        let answer = self.app.conclude(&caller, answer.await).await?;
        let filter = request.filter.unwrap_or_default();
        let replaced = (answer.view.place != answer.asked).then(|| answer.asked.to_string());
        Ok(Response::new(proto::GetPlaceViewResponse {
            view: Some(place_view_to_proto(&answer, &filter)),
            replaced_place_code: replaced.unwrap_or_default(),
        }))
    }

    async fn compare_places(
        &self,
        request: Request<proto::ComparePlacesRequest>,
    ) -> Result<Response<proto::ComparePlacesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let answer = (|| {
            let filter = filter_from_proto(request.filter.as_ref())?;
            Ok(match comparing(&request)? {
                Comparing::Children(measure) => child_comparison_to_proto(
                    &self
                        .app
                        .compare_children(&caller, &request.parent_code, &filter, measure)?,
                ),
                Comparing::Neighbours(rate_of) => {
                    neighbour_comparison_to_proto(&self.app.compare_with_neighbours(
                        &caller,
                        &request.parent_code,
                        &filter,
                        rate_of,
                    )?)
                }
            })
        })();
        Ok(Response::new(self.app.conclude(&caller, answer).await?))
    }

    async fn list_risks(
        &self,
        request: Request<proto::ListRisksRequest>,
    ) -> Result<Response<proto::ListRisksResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let page = async {
            let filter = filter_from_proto(request.filter.as_ref())?;
            let page_size = page_size(request.page_size)?;
            let before = page_token(&request.page_token)?;
            self.app
                .list_risks(
                    &caller,
                    &request.place_code,
                    filter,
                    page_size,
                    before,
                    as_of(request.as_of_sequence),
                )
                .await
        };
        let page = self.app.conclude(&caller, page.await).await?;
        Ok(Response::new(proto::ListRisksResponse {
            risks: page.revisions.iter().map(revision_to_proto).collect(),
            next_page_token: page.next.map(|n| n.to_string()).unwrap_or_default(),
            consistent_at_sequence: page.consistent_at,
        }))
    }

    async fn follow_subject(
        &self,
        request: Request<proto::FollowSubjectRequest>,
    ) -> Result<Response<proto::FollowSubjectResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let trail = async {
            let subject = SubjectKey::parse(&request.subject_key)
                .map_err(|r| Invalid::one("subject_key", r))?;
            self.app
                .follow_subject(
                    &caller,
                    subject,
                    &request.purpose,
                    as_of(request.as_of_sequence),
                )
                .await
        };
        let trail = self.app.conclude(&caller, trail.await).await?;
        let trail_consistent_at = trail.consistent_at;
        let trail = trail
            .entries
            .iter()
            .map(|entry| proto::TrailEntry {
                revision: Some(revision_to_proto(&entry.revision)),
                agency_name: entry
                    .agency
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or_default(),
                agency_kind: entry.agency.as_ref().map_or(0, |a| a.kind.number()),
                place_name: entry
                    .place
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(proto::FollowSubjectResponse {
            trail,
            consistent_at_sequence: trail_consistent_at,
        }))
    }

    async fn create_snapshot(
        &self,
        request: Request<proto::CreateSnapshotRequest>,
    ) -> Result<Response<proto::CreateSnapshotResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let snapshot = async {
            let filter = filter_from_proto(request.filter.as_ref())?;
            self.app
                .create_snapshot(&caller, &request.place_code, filter, &request.label)
                .await
        };
        let snapshot = self.app.conclude(&caller, snapshot.await).await?;
        Ok(Response::new(proto::CreateSnapshotResponse {
            snapshot: Some(snapshot_to_proto(&snapshot)),
        }))
    }

    async fn get_lines_of_enquiry(
        &self,
        request: Request<proto::GetLinesOfEnquiryRequest>,
    ) -> Result<Response<proto::GetLinesOfEnquiryResponse>, Status> {
        let caller = Caller::of(&request)?;
        let place = request.into_inner().place_code;
        let answer = self.app.lines_of_enquiry(&caller, &place);
        let answer = self.app.conclude(&caller, answer).await?;
        Ok(Response::new(super::reviews::enquiry_to_proto(
            &self.app, &answer,
        )))
    }

    async fn get_snapshot(
        &self,
        request: Request<proto::GetSnapshotRequest>,
    ) -> Result<Response<proto::GetSnapshotResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = request.into_inner().id;
        let snapshot = self.app.snapshot(&caller, id);
        let snapshot = self.app.conclude(&caller, snapshot).await?;
        Ok(Response::new(proto::GetSnapshotResponse {
            snapshot: Some(snapshot_to_proto(&snapshot)),
        }))
    }
}
