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
    TableAssembler, agency_from_proto, coded_list, coded_option, page_size, place_code,
    record_from_proto, record_key, time_from_proto,
};
use marr::api::inspection::filter_from_proto;
use marr::domain::free_text::{check_label, check_purpose};
use marr::domain::lookup::{LookupTable, plan_import};
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

/// Random bytes, or one of `seeds` mutated.
fn input(seeds: &'static [Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        3 => (
            any::<Index>(),
            prop::collection::vec((any::<u8>(), any::<Index>(), any::<u8>()), 0..12),
        )
            .prop_map(move |(seed, edits)| mutate(&seeds[seed.index(seeds.len())], &edits)),
    ]
}

/// The request messages of every method, by name, each with the checks its handler makes
/// before it touches the store.
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
            let _ = record_key(&m.agency_id, &m.local_ref);
        }
    }),
    ("GetRecordHistory", |b| {
        if let Ok(m) = proto::GetRecordHistoryRequest::decode(b) {
            let _ = record_key(&m.agency_id, &m.local_ref);
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
            && let Ok(agency) = agency_from_proto(m.agency)
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

/// One valid encoding of every request message.
fn request_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let good = record("CIN-2024-00123", 1);
        let at = Some(hours_ago(3));
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
        vec![
            proto::SubmitRecordRequest {
                record: Some(good.clone()),
            }
            .encode_to_vec(),
            proto::PushRecordsRequest {
                record: Some(good.clone()),
            }
            .encode_to_vec(),
            proto::GetRecordRequest {
                agency_id: NEWCASTLE.into(),
                local_ref: "CIN-2024-00123".into(),
            }
            .encode_to_vec(),
            proto::ListRisksRequest {
                place_code: NEWCASTLE_WARD.into(),
                filter: Some(filter()),
                page_size: 50,
                page_token: "17".into(),
                as_of_sequence: 3,
            }
            .encode_to_vec(),
            proto::ComparePlacesRequest {
                parent_code: NORTH_EAST.into(),
                filter: Some(filter()),
                sort_by: 2,
            }
            .encode_to_vec(),
            proto::FollowSubjectRequest {
                subject_key: subject(1),
                purpose: "Joint targeted area inspection: exploitation".into(),
                as_of_sequence: 0,
            }
            .encode_to_vec(),
            proto::CreateSnapshotRequest {
                place_code: NEWCASTLE.into(),
                filter: Some(filter()),
                label: "JTAI North East, March 2026".into(),
            }
            .encode_to_vec(),
            proto::ListAlertsRequest {
                filter: alert_filter,
                after_sequence: 4,
                page_size: 10,
            }
            .encode_to_vec(),
            chunk.encode_to_vec(),
            proto::RegisterAgencyRequest {
                agency: Some(proto::Agency {
                    id: "RTD".into(),
                    kind: proto::AgencyKind::Health as i32,
                    name: "Newcastle upon Tyne Hospitals NHS Foundation Trust".into(),
                    footprint: vec![NEWCASTLE.into(), NEWCASTLE_GATESHEAD_CCG.into()],
                }),
            }
            .encode_to_vec(),
            proto::GetComparativeTableRequest {
                parent_code: NORTH_EAST.into(),
                level: 4,
                filter: Some(filter()),
            }
            .encode_to_vec(),
            proto::ListAuditEventsRequest {
                principal: "inspector".into(),
                method: "FollowSubject".into(),
                from: at,
                to: Some(hours_ago(0)),
                after_sequence: 2,
                page_size: 20,
            }
            .encode_to_vec(),
        ]
    })
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
        which in any::<Index>(),
        bytes in input(request_seeds()),
    ) {
        let (_name, check) = REQUESTS[which.index(REQUESTS.len())];
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
