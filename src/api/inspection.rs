//! `marr.v1.Inspection`: place views across agencies, comparisons, risk lists, subject trails
//! and snapshots.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::blocking;
use super::convert::{
    coded_list, coded_option, page_size, place_to_proto, rate_to_proto, revision_to_proto,
    timestamp,
};
use super::error::ApiError;
use crate::auth::Caller;
use crate::domain::free_text::{check_label, check_purpose};
use crate::domain::inspection::{PlaceMeasure, PlaceView, ViewFilter};
use crate::domain::neighbours::{Closeness, ComparisonRole, NeighbourComparison};
use crate::domain::population::Rate;
use crate::domain::{Agency, AgencyId, ClientGroup, Invalid, PlaceCode, SubjectKey, Vocabulary};
use crate::proto;
use crate::proto::inspection_server::Inspection;
use crate::store::{Snapshot, SnapshotRequest, Store, ViewNames};

pub struct InspectionService {
    store: Store,
}

impl InspectionService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// A known place code, or NOT_FOUND; a replaced code gives the code that replaced it.
    fn known_place(&self, field: &str, code: &str) -> Result<PlaceCode, ApiError> {
        let code = self.store.place_code(field, code)?;
        self.store
            .place(code)
            .map(|detail| detail.place.code)
            .ok_or_else(|| ApiError::NotFound(format!("no place {code}")))
    }

    /// A known place the caller may see: NOT_FOUND if unknown (geography is public), else
    /// PERMISSION_DENIED if outside the caller's places.
    fn place_in_scope(
        &self,
        caller: &Caller,
        field: &str,
        code: &str,
    ) -> Result<PlaceCode, ApiError> {
        let place = self.known_place(field, code)?;
        caller.sees(&self.store, place)?;
        caller.touched(|t| t.place = Some(place));
        Ok(place)
    }

    /// A live view, named as the directory has things now, with rates from the population
    /// imported now.
    fn view_to_proto(&self, view: &PlaceView, filter: &proto::ViewFilter) -> proto::PlaceView {
        let rates = self.store.rates(view.place, &view.by_client_group);
        view_to_proto(view, filter, &self.store.view_names(view), &rates)
    }

    /// A comparison against statistical neighbours in the contract's form.
    fn neighbour_comparison_to_proto(
        &self,
        comparison: &NeighbourComparison,
    ) -> proto::ComparePlacesResponse {
        let codes: Vec<PlaceCode> = comparison.rows.iter().map(|r| r.view.place).collect();
        let rows = comparison
            .rows
            .iter()
            .zip(self.store.places(&codes))
            .map(|(row, place)| {
                let (role, closeness) = match row.role {
                    ComparisonRole::Place => (proto::ComparisonRole::Place, None),
                    ComparisonRole::Neighbour(band) => {
                        (proto::ComparisonRole::Neighbour, Some(band))
                    }
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

    fn snapshot_to_proto(&self, snapshot: &Snapshot) -> proto::Snapshot {
        // A snapshot shows the names it was frozen with; one stored before names were kept
        // has none, and is named as the directory has things now.
        let names = if snapshot.names.is_empty() {
            self.store.view_names(&snapshot.view)
        } else {
            snapshot.names.clone()
        };
        proto::Snapshot {
            id: snapshot.id,
            label: snapshot.label.clone(),
            created_at: Some(timestamp(snapshot.created_at)),
            view: Some(view_to_proto(
                &snapshot.view,
                &filter_to_proto(&snapshot.filter),
                &names,
                // A snapshot keeps counts only: today's population is not what it was made
                // with.
                &BTreeMap::new(),
            )),
        }
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

#[tonic::async_trait]
impl Inspection for InspectionService {
    async fn get_place_view(
        &self,
        request: Request<proto::GetPlaceViewRequest>,
    ) -> Result<Response<proto::GetPlaceViewResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        // The code as named (a GSS or ODS code), and the place that stands for it today.
        let asked = self
            .store
            .place_code("place_code", &request.place_code)
            .map_err(ApiError::from)?;
        let place = self.place_in_scope(&caller, "place_code", asked.as_str())?;
        let filter = filter_from_proto(request.filter.as_ref()).map_err(ApiError::from)?;
        let store = self.store.clone();
        let view = {
            let filter = filter.clone();
            blocking(move || store.place_view(place, &filter, as_of(request.as_of_sequence)))
                .await?
        };
        let replaced = (place != asked).then(|| asked.to_string());
        Ok(Response::new(proto::GetPlaceViewResponse {
            view: Some(self.view_to_proto(&view, &filter_to_proto(&filter))),
            replaced_place_code: replaced.unwrap_or_default(),
        }))
    }

    async fn compare_places(
        &self,
        request: Request<proto::ComparePlacesRequest>,
    ) -> Result<Response<proto::ComparePlacesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let parent = self.place_in_scope(&caller, "parent_code", &request.parent_code)?;
        let filter = filter_from_proto(request.filter.as_ref()).map_err(ApiError::from)?;
        match proto::ComparisonKind::try_from(request.kind) {
            Ok(proto::ComparisonKind::Unspecified | proto::ComparisonKind::Children) => {}
            Ok(proto::ComparisonKind::StatisticalNeighbours) => {
                let rate_of = coded_option::<ClientGroup>("rate_of", request.rate_of)
                    .map_err(ApiError::from)?
                    .ok_or_else(|| {
                        ApiError::from(Invalid::one(
                            "rate_of",
                            "is required when comparing with statistical neighbours: name the client group whose rate per 10,000 ranks the places",
                        ))
                    })?;
                let comparison = self
                    .store
                    .compare_with_neighbours(parent, &filter, rate_of, &caller.scope())
                    .map_err(ApiError::from)?;
                return Ok(Response::new(
                    self.neighbour_comparison_to_proto(&comparison),
                ));
            }
            Err(_) => {
                let reason = format!("{} is not a known comparison kind", request.kind);
                return Err(ApiError::from(Invalid::one("kind", reason)).into());
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
                return Err(ApiError::from(Invalid::one("sort_by", reason)).into());
            }
        };
        let views = self.store.compare_places(parent, &filter, measure);
        let consistent_at = views
            .first()
            .map_or(self.store.head_sequence(), |v| v.consistent_at);
        let codes: Vec<PlaceCode> = views.iter().map(|v| v.place).collect();
        let rows = views
            .iter()
            .zip(self.store.places(&codes))
            .map(|(view, place)| proto::PlaceComparison {
                place: place.as_ref().map(|p| place_to_proto(p, &[])),
                total_active: view.total,
                high_or_worse: view.high_or_worse(),
                critical: view.critical(),
                subjects_at_two_or_more_agencies: view.subjects_at_two_or_more_agencies,
                by_client_group: client_group_totals(
                    &view.by_client_group,
                    &self.store.rates(view.place, &view.by_client_group),
                ),
                role: proto::ComparisonRole::Unspecified as i32,
                closeness: proto::Closeness::Unspecified as i32,
            })
            .collect();
        Ok(Response::new(proto::ComparePlacesResponse {
            rows,
            consistent_at_sequence: consistent_at,
            standing: None,
            neighbours_left_out_for_scope: 0,
        }))
    }

    async fn list_risks(
        &self,
        request: Request<proto::ListRisksRequest>,
    ) -> Result<Response<proto::ListRisksResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let place = self.place_in_scope(&caller, "place_code", &request.place_code)?;
        let filter = filter_from_proto(request.filter.as_ref()).map_err(ApiError::from)?;
        let page_size = page_size(request.page_size).map_err(ApiError::from)?;
        let before = match request.page_token.as_str() {
            "" => None,
            token => Some(token.parse::<u64>().map_err(|_| {
                ApiError::from(Invalid::one(
                    "page_token",
                    "is not a token this server gave",
                ))
            })?),
        };
        let store = self.store.clone();
        let page = blocking(move || {
            store.list_risks(
                place,
                &filter,
                page_size,
                before,
                as_of(request.as_of_sequence),
            )
        })
        .await?;
        caller.touched(|t| {
            t.records = page
                .revisions
                .iter()
                .map(|r| r.record.key.clone())
                .collect();
        });
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
        let subject = SubjectKey::parse(&request.subject_key)
            .map_err(|r| ApiError::from(Invalid::one("subject_key", r)))?;
        let purpose = request.purpose.trim().to_string();
        // Checked before anything is noted for the audit event, so a refused purpose is
        // never written to the chain.
        check_purpose(&purpose).map_err(|refusal| {
            let reason = format!("say why you follow this subject: the purpose {refusal}");
            ApiError::from(Invalid::one("purpose", reason))
        })?;
        caller.touched(|t| {
            t.subject = Some(subject);
            t.purpose = purpose;
        });
        let store = self.store.clone();
        let (trail, consistent_at) =
            blocking(move || store.follow_subject(subject, as_of(request.as_of_sequence))).await?;
        // An inspector sees the trail inside its places only.
        let trail: Vec<_> = trail
            .into_iter()
            .filter(|revision| caller.in_scope(&self.store, revision.record.place))
            .collect();
        caller.touched(|t| t.records = trail.iter().map(|r| r.record.key.clone()).collect());
        let agencies: BTreeMap<AgencyId, Agency> = self
            .store
            .agencies()
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let places = self
            .store
            .places(&trail.iter().map(|r| r.record.place).collect::<Vec<_>>());
        let trail = trail
            .iter()
            .zip(places)
            .map(|(revision, place)| {
                let agency = agencies.get(&revision.record.key.agency);
                proto::TrailEntry {
                    revision: Some(revision_to_proto(revision)),
                    agency_name: agency.map(|a| a.name.clone()).unwrap_or_default(),
                    agency_kind: agency.map_or(0, |a| a.kind.number()),
                    place_name: place.map(|p| p.name).unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(proto::FollowSubjectResponse {
            trail,
            consistent_at_sequence: consistent_at,
        }))
    }

    async fn create_snapshot(
        &self,
        request: Request<proto::CreateSnapshotRequest>,
    ) -> Result<Response<proto::CreateSnapshotResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let place = self.place_in_scope(&caller, "place_code", &request.place_code)?;
        let filter = filter_from_proto(request.filter.as_ref()).map_err(ApiError::from)?;
        let label = request.label.trim().to_string();
        check_label(&label).map_err(|refusal| ApiError::from(Invalid::one("label", refusal)))?;
        let snapshot = self
            .store
            .create_snapshot(
                SnapshotRequest {
                    place,
                    filter,
                    label,
                },
                caller.actor(),
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(proto::CreateSnapshotResponse {
            snapshot: Some(self.snapshot_to_proto(&snapshot)),
        }))
    }

    async fn get_snapshot(
        &self,
        request: Request<proto::GetSnapshotRequest>,
    ) -> Result<Response<proto::GetSnapshotResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = request.into_inner().id;
        // A snapshot of a place outside the caller's places is answered as if it did not exist,
        // so snapshot numbers say nothing about other areas' inspections.
        let snapshot = self
            .store
            .snapshot(id)
            .map_err(ApiError::from)?
            .filter(|snapshot| caller.in_scope(&self.store, snapshot.view.place))
            .ok_or_else(|| ApiError::NotFound(format!("no snapshot {id} in your places")))?;
        Ok(Response::new(proto::GetSnapshotResponse {
            snapshot: Some(self.snapshot_to_proto(&snapshot)),
        }))
    }
}
