//! Fuzzing on the stable toolchain: random bytes, and valid inputs mutated byte by byte, fed
//! to everything that reads what a client, an agency's extract, an ONS lookup or an operator's
//! config file hands the register. Every request message is decoded and then checked as its
//! handler checks it; the CSV and JSON Lines extract readers run row by row and each row they
//! read is checked as the server would; geography tables are read and planned against a known
//! tree; config files are loaded and turned into identities and limits. The property is only
//! that nothing panics: a refusal is a fine answer to garbage.
//!
//! `MARR_FUZZ_CASES` sets the cases per target (default 1000, a few seconds in CI); a long run
//! is `MARR_FUZZ_CASES=200000 cargo test --test fuzz` (see docs/benchmarks.md). A panic found
//! here becomes a regular test beside the code it broke, and proptest keeps the failing case
//! in `tests/fuzz.proptest-regressions`.

mod common;

use std::io::Cursor;
use std::sync::OnceLock;

use common::*;
use marr::api::convert::{
    BoundaryAssembler, TableAssembler, agency_from_proto, coded_list, coded_option, page_size,
    place_code, record_from_proto, record_key, time_from_proto,
};
use marr::api::inspection::filter_from_proto;
use marr::api::reviews;
use marr::app::learning::parse_date;
use marr::domain::boundaries::plan_boundaries;
use marr::domain::free_text::{check_label, check_purpose};
use marr::domain::lookup::{LookupTable, plan_import};
use marr::domain::neighbours::plan_neighbours;
use marr::domain::population::plan_population;
use marr::domain::review::Theme;
use marr::domain::{AlertKind, ClientGroup, Geography, PlaceLevel, Severity, SubjectKey};
use marr::proto;
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message;
use time::OffsetDateTime;

/// Cases per target: `MARR_FUZZ_CASES`, else a number that keeps CI quick.
fn cases() -> u32 {
    std::env::var("MARR_FUZZ_CASES")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1000)
}

fn fuzz_config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    }
}

/// Pieces worth splicing into text formats: separators, quotes, hidden characters, numbers at
/// the edges of what is accepted, and identifiers.
const DICTIONARY: &[&str] = &[
    ",",
    "\"",
    "\n",
    "\r\n",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    "=",
    "null",
    "\u{feff}",
    "\u{202e}",
    "\u{200b}",
    "\u{0}",
    "é",
    "9434765919",
    "943 476 5919",
    "01/02/2015",
    "NE1 4ST",
    "a@b.co",
    "+44 7700 900123",
    "E05011451",
    "E08000021",
    "99999999999999999999",
    "-1",
    "1e999",
    "2026-13-45T25:61:61Z",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "[[principal]]\n",
    "[limits]\n",
    "role = \"admin\"\n",
];

/// One edit of a seed: what to do, where, and with which byte or dictionary entry.
type Edit = (u8, Index, u8);

/// Applies edits to a seed: overwrite, insert, delete a run, duplicate a run, splice a word.
fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for (kind, at, byte) in edits {
        let len = out.len();
        let position = if len == 0 { 0 } else { at.index(len) };
        match kind % 5 {
            0 if len > 0 => out[position] = *byte,
            1 => out.insert(position.min(len), *byte),
            2 if len > 0 => {
                let end = (position + 1 + usize::from(*byte % 16)).min(len);
                out.drain(position..end);
            }
            3 if len > 0 => {
                let end = (position + 1 + usize::from(*byte)).min(len);
                let run = out[position..end].to_vec();
                out.splice(position..position, run);
            }
            _ => {
                let word = DICTIONARY[usize::from(*byte) % DICTIONARY.len()].as_bytes();
                out.splice(position.min(len)..position.min(len), word.iter().copied());
            }
        }
    }
    out
}

fn edits(count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((any::<u8>(), any::<Index>(), any::<u8>()), count)
}

/// Random bytes, or one of `seeds` mutated.
fn input(seeds: &'static [Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        // Mostly a few edits, which keep much of the input valid and so reach the checks
        // behind the parse; sometimes many.
        3 => (any::<Index>(), edits(1..4))
            .prop_map(move |(seed, edits)| mutate(&seeds[seed.index(seeds.len())], &edits)),
        1 => (any::<Index>(), edits(4..24))
            .prop_map(move |(seed, edits)| mutate(&seeds[seed.index(seeds.len())], &edits)),
    ]
}

/// The request messages of every method, by name, each with the checks its handler makes
/// before it touches the store.
/// Text for one string field: a valid value, a dictionary word, either spliced into the
/// other, or any string at all.
fn text(valid: &'static str) -> impl Strategy<Value = String> {
    let word = prop::sample::select(DICTIONARY);
    prop_oneof![
        2 => Just(valid.to_string()),
        1 => word.clone().prop_map(str::to_string),
        2 => (word, any::<Index>()).prop_map(move |(word, at)| {
            let mut chars: Vec<char> = valid.chars().collect();
            let at = at.index(chars.len() + 1);
            chars.splice(at..at, word.chars());
            chars.into_iter().collect()
        }),
        2 => any::<String>(),
        1 => ".{0,300}",
    ]
}

/// A proto enum number: mostly in range, sometimes anything.
fn number() -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0..20i32, 1 => any::<i32>()]
}

/// A timestamp: mostly near now, sometimes with any seconds or nanos.
fn stamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    prop_oneof![
        1 => Just(None),
        3 => (now - 400 * 86_400..now + 86_400, 0..1_000_000_000i32)
            .prop_map(|(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos })),
        2 => (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos })),
    ]
}

/// A valid record with up to three of its fields replaced, so the checks behind a successful
/// decode see each field wrong on its own and in small mixes.
fn risk_record() -> impl Strategy<Value = proto::RiskRecord> {
    let replacement = (
        0..12usize,
        prop_oneof![
            text("Seen at home, with sibling"),
            text("CIN-2024-00123"),
            text("E05011451")
        ],
        number(),
        stamp(),
    );
    prop::collection::vec(replacement, 0..4).prop_map(|replacements| {
        let mut r = record("CIN-2024-00123", 1);
        for (field, text, number, stamp) in replacements {
            match field {
                0 => r.agency_id = text,
                1 => r.local_ref = text,
                2 => r.subject_key = text,
                3 => r.place_code = text,
                4 => r.client_group = number,
                5 => r.category = number,
                6 => r.severity = number,
                7 => r.status = number,
                8 => r.assessed_at = stamp,
                9 => r.source_updated_at = stamp,
                10 => r.lawful_basis = number,
                _ => r.note = text,
            }
        }
        r
    })
}

/// Request messages with free text and times, built field by field, by method.
fn structured_request() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    prop_oneof![
        risk_record().prop_map(|record| (
            "SubmitRecord",
            proto::SubmitRecordRequest {
                record: Some(record)
            }
            .encode_to_vec()
        )),
        risk_record().prop_map(|record| (
            "PushRecords",
            proto::PushRecordsRequest {
                record: Some(record)
            }
            .encode_to_vec()
        )),
        (text("E08000021"), text("CIN-2024-00123")).prop_map(|(agency_id, local_ref)| (
            "GetRecord",
            proto::GetRecordRequest {
                agency_id,
                local_ref
            }
            .encode_to_vec()
        )),
        (
            prop_oneof![Just(subject(1)), text("")],
            text("Joint targeted area inspection: exploitation")
        )
            .prop_map(|(subject_key, purpose)| (
                "FollowSubject",
                proto::FollowSubjectRequest {
                    subject_key,
                    purpose,
                    as_of_sequence: 0
                }
                .encode_to_vec()
            )),
        (text("E08000021"), text("JTAI North East, March 2026")).prop_map(|(place_code, label)| (
            "CreateSnapshot",
            proto::CreateSnapshotRequest {
                place_code,
                filter: None,
                label
            }
            .encode_to_vec()
        )),
        (
            text("R0B"),
            number(),
            text("Northumbria Police"),
            prop::collection::vec(text("E23000007"), 0..3)
        )
            .prop_map(|(id, kind, name, footprint)| (
                "RegisterAgency",
                proto::RegisterAgencyRequest {
                    agency: Some(proto::Agency {
                        id,
                        kind,
                        name,
                        footprint
                    })
                }
                .encode_to_vec()
            )),
        (
            text("wards.csv"),
            prop::collection::vec(text("WD19NM"), 0..6),
            prop::collection::vec(
                (any::<u64>(), prop::collection::vec(text("E05011451"), 0..6)),
                0..6
            )
        )
            .prop_map(|(table, header, rows)| (
                "ImportPlaces",
                proto::ImportPlacesRequest {
                    table,
                    header,
                    rows: rows
                        .into_iter()
                        .map(|(line, cells)| proto::LookupRow { line, cells })
                        .collect()
                }
                .encode_to_vec()
            )),
        (stamp(), stamp(), any::<u32>()).prop_map(|(from, to, page_size)| (
            "ListAuditEvents",
            proto::ListAuditEventsRequest {
                from,
                to,
                page_size,
                ..Default::default()
            }
            .encode_to_vec()
        )),
    ]
}

/// Decodes one message from bytes and checks it.
type Target = fn(&[u8]);

const REQUESTS: &[(&str, Target)] = &[
    ("SubmitRecord", |b| {
        if let Ok(m) = proto::SubmitRecordRequest::decode(b) {
            let _ = record_from_proto(m.record, OffsetDateTime::now_utc());
        }
    }),
    ("PushRecords", |b| {
        if let Ok(m) = proto::PushRecordsRequest::decode(b) {
            let _ = record_from_proto(m.record, OffsetDateTime::now_utc());
        }
    }),
    ("GetRecord", |b| {
        if let Ok(m) = proto::GetRecordRequest::decode(b) {
            let _ = record_key(&m.agency_id, &m.local_ref, &|_| false);
        }
    }),
    ("GetRecordHistory", |b| {
        if let Ok(m) = proto::GetRecordHistoryRequest::decode(b) {
            let _ = record_key(&m.agency_id, &m.local_ref, &|_| false);
        }
    }),
    ("GetPlaceView", |b| {
        if let Ok(m) = proto::GetPlaceViewRequest::decode(b) {
            let _ = place_code("place_code", &m.place_code);
            let _ = filter_from_proto(m.filter.as_ref());
        }
    }),
    ("ComparePlaces", |b| {
        if let Ok(m) = proto::ComparePlacesRequest::decode(b) {
            let _ = place_code("parent_code", &m.parent_code);
            let _ = filter_from_proto(m.filter.as_ref());
            let _ = proto::PlaceMeasure::try_from(m.sort_by);
            let _ = proto::ComparisonKind::try_from(m.kind);
            let _ = coded_option::<ClientGroup>("rate_of", m.rate_of);
        }
    }),
    ("ListRisks", |b| {
        if let Ok(m) = proto::ListRisksRequest::decode(b) {
            let _ = place_code("place_code", &m.place_code);
            let _ = filter_from_proto(m.filter.as_ref());
            let _ = page_size(m.page_size);
            let _ = m.page_token.parse::<u64>();
        }
    }),
    ("FollowSubject", |b| {
        if let Ok(m) = proto::FollowSubjectRequest::decode(b) {
            let _ = SubjectKey::parse(&m.subject_key);
            let _ = check_purpose(m.purpose.trim());
        }
    }),
    ("CreateSnapshot", |b| {
        if let Ok(m) = proto::CreateSnapshotRequest::decode(b) {
            let _ = place_code("place_code", &m.place_code);
            let _ = filter_from_proto(m.filter.as_ref());
            let _ = check_label(m.label.trim());
        }
    }),
    ("GetSnapshot", |b| {
        let _ = proto::GetSnapshotRequest::decode(b);
    }),
    ("Watch", |b| {
        if let Ok(m) = proto::WatchRequest::decode(b) {
            alert_filter(m.filter);
        }
    }),
    ("ListAlerts", |b| {
        if let Ok(m) = proto::ListAlertsRequest::decode(b) {
            alert_filter(m.filter);
            let _ = page_size(m.page_size);
        }
    }),
    ("ImportPlaces", |b| {
        if let Ok(m) = proto::ImportPlacesRequest::decode(b) {
            let mut tables = TableAssembler::default();
            if tables.add(m).is_ok() {
                let _ = plan_import(known_tree(), &tables.finish());
            }
        }
    }),
    ("ImportPopulation", |b| {
        if let Ok(m) = proto::ImportPopulationRequest::decode(b) {
            let mut tables = TableAssembler::default();
            if tables.add_population(m).is_ok() {
                let _ = plan_population(&tables.finish());
            }
        }
    }),
    ("ImportStatisticalNeighbours", |b| {
        if let Ok(m) = proto::ImportStatisticalNeighboursRequest::decode(b) {
            let mut tables = TableAssembler::default();
            if tables.add_neighbours(m).is_ok() {
                let _ = plan_neighbours(&tables.finish(), known_tree());
            }
        }
    }),
    ("ImportBoundaries", |b| {
        if let Ok(m) = proto::ImportBoundariesRequest::decode(b) {
            let mut shapes = BoundaryAssembler::default();
            if shapes.add(m).is_ok()
                && let Ok(import) = shapes.finish()
            {
                let _ = plan_boundaries(import, known_tree(), |_| {
                    Ok::<_, std::convert::Infallible>(None)
                });
            }
        }
    }),
    ("GetPlace", |b| {
        if let Ok(m) = proto::GetPlaceRequest::decode(b) {
            let _ = place_code("code", &m.code);
        }
    }),
    ("ListChildPlaces", |b| {
        if let Ok(m) = proto::ListChildPlacesRequest::decode(b) {
            let _ = place_code("code", &m.code);
        }
    }),
    ("RegisterAgency", |b| {
        if let Ok(m) = proto::RegisterAgencyRequest::decode(b)
            && let Ok(agency) = agency_from_proto(m.agency, marr::domain::PlaceCode::parse)
        {
            let _ = agency.check(known_tree());
        }
    }),
    ("ListAgencies", |b| {
        let _ = proto::ListAgenciesRequest::decode(b);
    }),
    ("GetComparativeTable", |b| {
        if let Ok(m) = proto::GetComparativeTableRequest::decode(b) {
            let _ = place_code("parent_code", &m.parent_code);
            let _ = coded_option::<PlaceLevel>("level", m.level);
            let _ = filter_from_proto(m.filter.as_ref());
        }
    }),
    ("ListReleases", |b| {
        let _ = proto::ListReleasesRequest::decode(b);
    }),
    ("CutRelease", |b| {
        let _ = proto::CutReleaseRequest::decode(b);
    }),
    ("ListAuditEvents", |b| {
        if let Ok(m) = proto::ListAuditEventsRequest::decode(b) {
            let _ = m.from.map(|t| time_from_proto(&t));
            let _ = m.to.map(|t| time_from_proto(&t));
            let _ = page_size(m.page_size);
        }
    }),
    ("VerifyAudit", |b| {
        let _ = proto::VerifyAuditRequest::decode(b);
    }),
    ("ListAccessToMyRecords", |b| {
        if let Ok(m) = proto::ListAccessToMyRecordsRequest::decode(b) {
            let _ = m.from.map(|t| time_from_proto(&t));
            let _ = m.to.map(|t| time_from_proto(&t));
            let _ = page_size(m.page_size);
        }
    }),
    ("Backup", |b| {
        let _ = proto::BackupRequest::decode(b);
    }),
    ("ListThemes", |b| {
        let _ = proto::ListThemesRequest::decode(b);
    }),
    ("ListReviews", |b| {
        if let Ok(m) = proto::ListReviewsRequest::decode(b) {
            let _ = place_code("place_code", &m.place_code);
            let _ = reviews::kind_filter(m.kind);
            let _ = Theme::parse(&m.theme);
        }
    }),
    ("GetReview", |b| {
        let _ = proto::GetReviewRequest::decode(b);
    }),
    ("ListActions", |b| {
        if let Ok(m) = proto::ListActionsRequest::decode(b) {
            let _ = place_code("place_code", &m.place_code);
            let _ = marr::domain::AgencyId::parse(&m.agency_id);
        }
    }),
    ("GetLessons", |b| {
        if let Ok(m) = proto::GetLessonsRequest::decode(b) {
            let _ = place_code("area_code", &m.area_code);
            let _ = parse_date("from", &m.from);
            let _ = parse_date("until", &m.until);
        }
    }),
    ("RecordReview", |b| {
        if let Ok(m) = proto::RecordReviewRequest::decode(b)
            && let Some(review) = m.review
            && let Ok(draft) = reviews::review_from_proto(&review)
        {
            let _ = draft.check();
        }
    }),
    ("PlanAction", |b| {
        if let Ok(m) = proto::PlanActionRequest::decode(b) {
            let _ = reviews::recommendation_ref(m.recommendation.as_ref());
            if let Ok(draft) =
                reviews::action_draft(&m.description, &m.owner, &m.due, m.status, &m.note)
            {
                let _ = draft.check();
            }
        }
    }),
    ("UpdateAction", |b| {
        if let Ok(m) = proto::UpdateActionRequest::decode(b) {
            let _ = reviews::recommendation_ref(m.recommendation.as_ref());
            if let Ok(draft) =
                reviews::action_draft(&m.description, &m.owner, &m.due, m.status, &m.note)
            {
                let _ = draft.check();
            }
        }
    }),
    ("GetLinesOfEnquiry", |b| {
        if let Ok(m) = proto::GetLinesOfEnquiryRequest::decode(b) {
            let _ = place_code("place_code", &m.place_code);
        }
    }),
];

fn alert_filter(filter: Option<proto::AlertFilter>) {
    if let Some(f) = filter {
        if !f.place_code.is_empty() {
            let _ = place_code("filter.place_code", &f.place_code);
        }
        let _ = coded_list::<ClientGroup>("filter.client_groups", &f.client_groups);
        let _ = coded_list::<AlertKind>("filter.kinds", &f.kinds);
        let _ = coded_option::<Severity>("filter.min_severity", f.min_severity);
    }
}

/// The North East's tables, cut to a few rows each: seeds, and the tree imports plan against.
fn lookup_seeds() -> &'static [LookupTable] {
    static TABLES: OnceLock<Vec<LookupTable>> = OnceLock::new();
    TABLES.get_or_init(|| {
        north_east_tables()
            .into_iter()
            .map(|mut table| {
                table.rows.truncate(12);
                table
            })
            .collect()
    })
}

fn known_tree() -> &'static Geography {
    static TREE: OnceLock<Geography> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut tree = Geography::default();
        let plan = plan_import(&tree, lookup_seeds()).expect("the seed tables plan");
        for place in plan.places {
            tree.insert_place(place);
        }
        for membership in plan.memberships {
            tree.insert_membership(membership);
        }
        tree
    })
}

fn filter() -> proto::ViewFilter {
    proto::ViewFilter {
        client_groups: vec![1, 2],
        categories: vec![3],
        min_severity: 2,
    }
}

/// Valid encodings of the request messages, by method.
fn request_seeds() -> &'static [(&'static str, Vec<u8>)] {
    static SEEDS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let good = record("CIN-2024-00123", 1);
        let mut closed = rec(
            NORTHUMBRIA,
            "NP/77",
            GATESHEAD_WARD,
            0,
            proto::Severity::Critical,
            2,
        );
        closed.status = proto::RecordStatus::Closed as i32;
        closed.note = String::new();
        let alert_filter = Some(proto::AlertFilter {
            place_code: NEWCASTLE.into(),
            client_groups: vec![1],
            kinds: vec![1, 3],
            min_severity: 3,
        });
        let chunk = {
            let table = &lookup_seeds()[1];
            proto::ImportPlacesRequest {
                table: table.name.clone(),
                header: table.header.clone(),
                rows: table
                    .rows
                    .iter()
                    .map(|r| proto::LookupRow {
                        line: r.line,
                        cells: r.cells.clone(),
                    })
                    .collect(),
            }
        };
        let review = proto::Review {
            kind: proto::ReviewKind::JointTargetedAreaInspection as i32,
            title: "Joint targeted area inspection of child exploitation".into(),
            place_code: NEWCASTLE.into(),
            agency_ids: vec![NEWCASTLE.into(), NORTHUMBRIA.into()],
            fieldwork_start: "2026-03-02".into(),
            fieldwork_end: "2026-03-13".into(),
            published_at: Some(prost_types::Timestamp {
                seconds: 1_777_626_000,
                nanos: 0,
            }),
            findings: vec![proto::Finding {
                theme: "information_sharing".into(),
                judgement: proto::Judgement::PriorityAction as i32,
                summary: "Missing episodes are not shared in time".into(),
                recommendations: vec![proto::Recommendation {
                    text: "Share each missing episode within one working day".into(),
                    agency_id: NORTHUMBRIA.into(),
                    number: 0,
                }],
                number: 0,
            }],
            ..Default::default()
        };
        let at = Some(proto::RecommendationRef {
            review_id: 1,
            finding: 1,
            recommendation: 1,
        });
        vec![
            (
                "RecordReview",
                proto::RecordReviewRequest {
                    review: Some(review),
                    expected_revision: 0,
                }
                .encode_to_vec(),
            ),
            (
                "PlanAction",
                proto::PlanActionRequest {
                    recommendation: at,
                    description: "Daily missing-episode meeting".into(),
                    owner: "Head of Public Protection".into(),
                    due: "2026-06-30".into(),
                    status: proto::ActionStatus::Planned as i32,
                    note: String::new(),
                }
                .encode_to_vec(),
            ),
            (
                "UpdateAction",
                proto::UpdateActionRequest {
                    recommendation: at,
                    number: 1,
                    expected_revision: 1,
                    description: "Daily missing-episode meeting".into(),
                    owner: "Head of Public Protection".into(),
                    due: "2026-07-31".into(),
                    status: proto::ActionStatus::InProgress as i32,
                    note: "Pilot running".into(),
                }
                .encode_to_vec(),
            ),
            (
                "GetLessons",
                proto::GetLessonsRequest {
                    area_code: NORTH_EAST.into(),
                    from: "2026-01-01".into(),
                    until: "2027-01-01".into(),
                }
                .encode_to_vec(),
            ),
            (
                "SubmitRecord",
                proto::SubmitRecordRequest {
                    record: Some(good.clone()),
                }
                .encode_to_vec(),
            ),
            (
                "SubmitRecord",
                proto::SubmitRecordRequest {
                    record: Some(closed.clone()),
                }
                .encode_to_vec(),
            ),
            (
                "PushRecords",
                proto::PushRecordsRequest {
                    record: Some(good.clone()),
                }
                .encode_to_vec(),
            ),
            (
                "GetRecord",
                proto::GetRecordRequest {
                    agency_id: NEWCASTLE.into(),
                    local_ref: "CIN-2024-00123".into(),
                }
                .encode_to_vec(),
            ),
            (
                "GetRecordHistory",
                proto::GetRecordHistoryRequest {
                    agency_id: NORTHUMBRIA.into(),
                    local_ref: "NP/77".into(),
                }
                .encode_to_vec(),
            ),
            (
                "GetPlaceView",
                proto::GetPlaceViewRequest {
                    place_code: NEWCASTLE.into(),
                    filter: Some(filter()),
                    as_of_sequence: 9,
                }
                .encode_to_vec(),
            ),
            (
                "ListRisks",
                proto::ListRisksRequest {
                    place_code: NEWCASTLE_WARD.into(),
                    filter: Some(filter()),
                    page_size: 50,
                    page_token: "17".into(),
                    as_of_sequence: 3,
                }
                .encode_to_vec(),
            ),
            (
                "ComparePlaces",
                proto::ComparePlacesRequest {
                    parent_code: NORTH_EAST.into(),
                    filter: Some(filter()),
                    sort_by: 2,
                    kind: proto::ComparisonKind::StatisticalNeighbours as i32,
                    rate_of: proto::ClientGroup::ChildProtectionPlan as i32,
                }
                .encode_to_vec(),
            ),
            (
                "FollowSubject",
                proto::FollowSubjectRequest {
                    subject_key: subject(1),
                    purpose: "Joint targeted area inspection: exploitation".into(),
                    as_of_sequence: 0,
                }
                .encode_to_vec(),
            ),
            (
                "CreateSnapshot",
                proto::CreateSnapshotRequest {
                    place_code: NEWCASTLE.into(),
                    filter: Some(filter()),
                    label: "JTAI North East, March 2026".into(),
                }
                .encode_to_vec(),
            ),
            (
                "GetSnapshot",
                proto::GetSnapshotRequest { id: 3 }.encode_to_vec(),
            ),
            (
                "Watch",
                proto::WatchRequest {
                    from_sequence: 12,
                    filter: alert_filter.clone(),
                }
                .encode_to_vec(),
            ),
            (
                "ListAlerts",
                proto::ListAlertsRequest {
                    filter: alert_filter,
                    after_sequence: 4,
                    page_size: 10,
                }
                .encode_to_vec(),
            ),
            ("ImportPlaces", chunk.encode_to_vec()),
            (
                "ImportPopulation",
                proto::ImportPopulationRequest {
                    table: "mid-year-estimates.csv".into(),
                    header: [
                        "area_code",
                        "year",
                        "population_0_17",
                        "population_18_plus",
                        "population_65_plus",
                        "population_all",
                    ]
                    .map(String::from)
                    .to_vec(),
                    rows: vec![proto::LookupRow {
                        line: 2,
                        cells: [NEWCASTLE, "2024", "52000", "251000", "41000", "303000"]
                            .map(String::from)
                            .to_vec(),
                    }],
                }
                .encode_to_vec(),
            ),
            (
                "ImportStatisticalNeighbours",
                proto::ImportStatisticalNeighboursRequest {
                    table: "children-services-2025.csv".into(),
                    header: std::iter::once("old_la_code".to_string())
                        .chain((1..=10).flat_map(|n| [format!("SN_{n}"), format!("SN_{n}P")]))
                        .collect(),
                    rows: vec![proto::LookupRow {
                        line: 2,
                        cells: std::iter::once("391".to_string())
                            .chain(
                                (0..10)
                                    .flat_map(|n| [format!("{}", 392 + n), "Close ".to_string()]),
                            )
                            .collect(),
                    }],
                }
                .encode_to_vec(),
            ),
            (
                "ImportBoundaries",
                proto::ImportBoundariesRequest {
                    source: "districts.geo.json".into(),
                    shapes: vec![proto::BoundaryShape {
                        code: NEWCASTLE.into(),
                        polygons: vec![proto::BoundaryPolygon {
                            rings: vec![proto::BoundaryRing {
                                coordinates: vec![
                                    -16_000, 549_700, -15_000, 549_700, -15_000, 550_500, -16_000,
                                    549_700,
                                ],
                            }],
                        }],
                    }],
                    skipped: Vec::new(),
                }
                .encode_to_vec(),
            ),
            (
                "GetPlace",
                proto::GetPlaceRequest {
                    code: NEWCASTLE_WARD.into(),
                }
                .encode_to_vec(),
            ),
            (
                "ListChildPlaces",
                proto::ListChildPlacesRequest {
                    code: NORTHUMBRIA.into(),
                }
                .encode_to_vec(),
            ),
            (
                "RegisterAgency",
                proto::RegisterAgencyRequest {
                    agency: Some(proto::Agency {
                        id: "RTD".into(),
                        kind: proto::AgencyKind::Health as i32,
                        name: "Newcastle upon Tyne Hospitals NHS Foundation Trust".into(),
                        footprint: vec![NEWCASTLE.into(), NEWCASTLE_GATESHEAD_CCG.into()],
                    }),
                }
                .encode_to_vec(),
            ),
            (
                "GetComparativeTable",
                proto::GetComparativeTableRequest {
                    parent_code: NORTH_EAST.into(),
                    level: 4,
                    filter: Some(filter()),
                    release: 2,
                }
                .encode_to_vec(),
            ),
            (
                "ListAuditEvents",
                proto::ListAuditEventsRequest {
                    principal: "inspector".into(),
                    method: "FollowSubject".into(),
                    from: Some(hours_ago(3)),
                    to: Some(hours_ago(0)),
                    after_sequence: 2,
                    page_size: 20,
                }
                .encode_to_vec(),
            ),
            (
                "ListAccessToMyRecords",
                proto::ListAccessToMyRecordsRequest {
                    from: Some(hours_ago(30)),
                    to: None,
                    after_sequence: 0,
                    page_size: 5,
                }
                .encode_to_vec(),
            ),
        ]
    })
}

/// The seeds of one method's request, most of the time; any method's otherwise, so messages
/// of one type are decoded as another too. Methods whose request is empty take any seed.
fn seeds_for(method: &str) -> &'static [Vec<u8>] {
    static BY_METHOD: OnceLock<std::collections::HashMap<&'static str, Vec<Vec<u8>>>> =
        OnceLock::new();
    let by_method = BY_METHOD.get_or_init(|| {
        let all: Vec<Vec<u8>> = request_seeds().iter().map(|(_, s)| s.clone()).collect();
        REQUESTS
            .iter()
            .map(|(name, _)| {
                let own: Vec<Vec<u8>> = request_seeds()
                    .iter()
                    .filter(|(m, _)| m == name)
                    .map(|(_, s)| s.clone())
                    .collect();
                (*name, if own.is_empty() { all.clone() } else { own })
            })
            .chain([("", all.clone())])
            .collect()
    });
    by_method.get(method).map_or(&[], Vec::as_slice)
}

const EXTRACT_HEADER: &str = "agency_id,local_ref,subject_key,place_code,client_group,category,severity,status,assessed_at,source_updated_at,lawful_basis,note";

fn csv_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let row = format!(
            "{NEWCASTLE},NCC-000123,{},{NEWCASTLE_WARD},child_protection_plan,neglect,high,active,2026-03-02T10:15:00Z,2026-03-02T16:40:00Z,children_act_1989_s47,\"Seen at home, with sibling\"",
            subject(2)
        );
        vec![
            format!("{EXTRACT_HEADER}\n{row}\n").into_bytes(),
            format!("\u{feff}{EXTRACT_HEADER}\r\n{row}\r\n{row}").into_bytes(),
        ]
    })
}

fn json_lines_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let line = serde_json::json!({
            "agency_id": NORTHUMBRIA, "local_ref": "NP-77", "subject_key": "", "place_code": GATESHEAD_WARD,
            "client_group": "youth_justice", "category": "child_criminal_exploitation", "severity": "critical",
            "status": "active", "assessed_at": "2026-03-01T22:05:00Z", "source_updated_at": "2026-03-01T23:30:00Z",
            "lawful_basis": "crime_and_disorder_act_1998_s115", "note": null
        });
        vec![
            format!("{line}\n").into_bytes(),
            format!("{line}\n\n{line}\n").into_bytes(),
        ]
    })
}

fn geography_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        lookup_seeds()
            .iter()
            .map(|table| {
                let mut text = table.header.join(",");
                for row in &table.rows {
                    text.push('\n');
                    text.push_str(&row.cells.join(","));
                }
                text.into_bytes()
            })
            .collect()
    })
}

fn config_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/marr.example.toml");
        let example = std::fs::read(example).expect("the example config");
        let rules = "[rules]\nmulti_agency_min_agencies = 3\ndistrict_threshold = 40\nstale_high_risk_days = 30\n[rules.place_thresholds]\nE08000021 = 12\n";
        vec![
            example,
            format!("listen = \"127.0.0.1:0\"\n{}{rules}", principals_toml()).into_bytes(),
        ]
    })
}

/// Reads an extract and checks every row it read as the server would.
fn read_extract(bytes: &[u8], json_lines: bool) {
    let Ok(rows) = marr::cli::extract::read_from(Cursor::new(bytes.to_vec()), json_lines) else {
        return;
    };
    for row in rows {
        if let Ok(record) = row.record {
            let _ = record_from_proto(Some(record), OffsetDateTime::now_utc());
        }
    }
}

/// Loads a config file as `marr serve` does and derives what the server builds from it.
fn load_config(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("marr.toml");
    std::fs::write(&path, bytes).expect("write config");
    if let Ok(config) = marr::config::Config::load(&path) {
        let _ = config.listen();
        let _ = config.data_dir();
        let _ = config.rule_settings();
        let _ = config.limits();
        let _ = config.sweep_interval();
        let _ = marr::auth::Identities::from_config(&config.principals);
    }
}

#[test]
fn every_method_of_the_contract_is_fuzzed() {
    let fuzzed: std::collections::BTreeSet<&str> = REQUESTS.iter().map(|(m, _)| *m).collect();
    let missing: Vec<&str> = marr::auth::policy::METHOD_RULES
        .iter()
        .filter(|rule| rule.method.starts_with("/marr.v1."))
        .map(|rule| rule.name())
        .filter(|name| !fuzzed.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "request messages nobody fuzzes: {missing:?}"
    );
}

#[test]
fn every_seed_is_read_without_refusal() {
    // The mutations start from valid inputs, so the targets' deep paths are reached.
    for seed in csv_seeds() {
        let rows: Vec<_> = marr::cli::extract::read_from(Cursor::new(seed.clone()), false)
            .expect("csv")
            .collect();
        assert!(rows.iter().all(|r| r.record.is_ok()));
    }
    for seed in json_lines_seeds() {
        let rows: Vec<_> = marr::cli::extract::read_from(Cursor::new(seed.clone()), true)
            .expect("jsonl")
            .collect();
        assert!(rows.iter().all(|r| r.record.is_ok()));
    }
    assert!(!known_tree().is_empty());
    let now = OffsetDateTime::now_utc();
    for (method, seed) in request_seeds() {
        match *method {
            "SubmitRecord" => {
                let m = proto::SubmitRecordRequest::decode(seed.as_slice()).expect("decodes");
                record_from_proto(m.record, now).expect("the seed record is valid");
            }
            "RegisterAgency" => {
                let m = proto::RegisterAgencyRequest::decode(seed.as_slice()).expect("decodes");
                agency_from_proto(m.agency, marr::domain::PlaceCode::parse)
                    .expect("the seed agency is valid");
            }
            "FollowSubject" => {
                let m = proto::FollowSubjectRequest::decode(seed.as_slice()).expect("decodes");
                check_purpose(&m.purpose).expect("the seed purpose is valid");
            }
            _ => {}
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    for (i, seed) in config_seeds().iter().enumerate() {
        let path = dir.path().join(format!("{i}.toml"));
        std::fs::write(&path, seed).expect("write");
        marr::config::Config::load(&path).expect("the seed config loads");
    }
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn request_messages_decode_and_validate_without_panicking(
        (which, bytes) in any::<Index>().prop_flat_map(|which| {
            let (name, _) = REQUESTS[which.index(REQUESTS.len())];
            let seeds = prop_oneof![3 => Just(seeds_for(name)), 1 => Just(seeds_for(""))];
            (Just(which), seeds.prop_flat_map(input))
        }),
    ) {
        let (_name, check) = REQUESTS[which.index(REQUESTS.len())];
        check(&bytes);
    }

    #[test]
    fn structured_requests_validate_without_panicking((method, bytes) in structured_request()) {
        let (_, check) = REQUESTS
            .iter()
            .find(|(name, _)| *name == method)
            .expect("a method of the table");
        check(&bytes);
    }

    #[test]
    fn the_csv_extract_reader_never_panics(bytes in input(csv_seeds())) {
        read_extract(&bytes, false);
    }

    #[test]
    fn the_json_lines_extract_reader_never_panics(bytes in input(json_lines_seeds())) {
        read_extract(&bytes, true);
    }

    #[test]
    fn geography_imports_never_panic(bytes in input(geography_seeds())) {
        if let Ok(table) = marr::cli::places::read_table_from(Cursor::new(bytes), "fuzz.csv".into()) {
            let _ = plan_import(known_tree(), &[table]);
        }
    }

    #[test]
    fn config_files_never_panic(bytes in input(config_seeds())) {
        load_config(&bytes);
    }
}
