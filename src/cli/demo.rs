//! `marr demo`: a server on England's current geography and population, with agencies and
//! records in the North East to look at.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::extract::ExtractRow;
use super::push::{PushSummary, progress_bar, push_rows};
use super::{
    ClientError, Connection, ServerArgs, agencies, boundaries, inspect, neighbours, places,
    population,
};
use crate::api::convert::timestamp;
use crate::config::Config;
use crate::domain::lookup::LookupTable;
use crate::domain::{
    AgencyKind, AlertKind, ClientGroup, LawfulBasis, PlaceLevel, RecordStatus, RiskCategory, Role,
    Severity, Vocabulary,
};
use crate::proto;
use crate::store::{Store, StoreError};

/// England's current geography as published, imported in one call (as the README's
/// `marr places import` does) so the code changes apply to every table; paths under `--data`.
const GEOGRAPHY_FILES: [&str; 6] = [
    "geography-2025/la-changes-2018-2025.csv",
    "geography-2025/lad22-lad23.csv",
    "geography-2025/ward-pcon-lad-la-region-2017-2025.csv",
    "geography-2025/lad24-csp24-pfa24.csv",
    "geography-2025/lsoa21-ward24-lad24-bestfit.csv",
    "geography-2025/lsoa21-sicbl24-icb24.csv",
];
/// ONS mid-year population estimates of local authorities and police force areas.
const POPULATION_FILES: [&str; 2] = [
    "population/mid-year-estimates-la-2022-2024.csv",
    "population/mid-year-estimates-pfa-2022-2024.csv",
];

/// The Department for Education's children's services statistical neighbours (May 2025).
const NEIGHBOUR_FILES: [&str; 1] = ["statistical-neighbours/children-services-2025.csv"];

/// ONS boundaries for maps: local authorities of 2014 to 2025 (TopoJSON), ICBs and sub-ICB
/// locations (GeoJSON). Police force areas and safety partnerships are dissolved from them.
const BOUNDARY_FILES: [&str; 3] = [
    "boundaries/uk-local-authorities-2014-2025.topo.json",
    "boundaries/icb-2023.geo.json",
    "boundaries/sub-icb-2023.geo.json",
];

const ENGLAND: &str = "E92000001";
const NEWCASTLE: &str = "E08000021";
const NORTHUMBRIA: &str = "E23000007";
const NORTH_EAST_REGION: &str = "E12000001";
/// Records the demo pushes.
const DEMO_RECORDS: usize = 3000;
/// Distinct pseudonymous subjects among them, so many are known to several agencies.
const DEMO_SUBJECTS: usize = 700;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot listen on {address}: {source} (is another marr running?)")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot make the demo's data directory: {0}")]
    DataDir(std::io::Error),
    #[error(
        "cannot find {}: point --data (or MARR_DEMO_DATA) at the directory holding geography-2025/, population/, statistical-neighbours/ and boundaries/",
        .0.display()
    )]
    MissingData(PathBuf),
    #[error("the imported geography has no wards under {0}")]
    NoWards(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Serve(#[from] crate::ServeError),
}

/// The demo's input files under `data`, or the first one missing.
struct DataFiles {
    geography: Vec<PathBuf>,
    population: Vec<PathBuf>,
    neighbours: Vec<PathBuf>,
    boundaries: Vec<PathBuf>,
}

fn data_files(data: &Path) -> Result<DataFiles, DemoError> {
    let under = |names: &[&str]| -> Result<Vec<PathBuf>, DemoError> {
        names
            .iter()
            .map(|name| {
                let path = data.join(name);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(DemoError::MissingData(path))
                }
            })
            .collect()
    };
    Ok(DataFiles {
        geography: under(&GEOGRAPHY_FILES)?,
        population: under(&POPULATION_FILES)?,
        neighbours: under(&NEIGHBOUR_FILES)?,
        boundaries: under(&BOUNDARY_FILES)?,
    })
}

/// Reads CSV files off the async runtime: the geography runs to millions of cells.
async fn read_tables(paths: Vec<PathBuf>) -> Result<Vec<LookupTable>, DemoError> {
    let tables = tokio::task::spawn_blocking(move || places::read_tables(&paths))
        .await
        .map_err(|e| StoreError::WriterFailed(e.to_string()))??;
    Ok(tables)
}

/// The wards under a place or footprint area, found by walking the directory down from it.
async fn wards_under(connection: &Connection, code: &str) -> Result<Vec<String>, DemoError> {
    let mut wards = BTreeSet::new();
    let mut seen = HashSet::new();
    let mut queue = vec![code.to_string()];
    while let Some(next) = queue.pop() {
        if !seen.insert(next.clone()) {
            continue;
        }
        let children = connection
            .directory()
            .list_child_places(proto::ListChildPlacesRequest { code: next })
            .await
            .map_err(ClientError::from)?
            .into_inner()
            .places;
        for place in children {
            if place.level == PlaceLevel::Ward.number() {
                wards.insert(place.code);
            } else if place.level != PlaceLevel::Lsoa.number() {
                // LSOAs lie under wards: nothing below them is a ward.
                queue.push(place.code);
            }
        }
    }
    if wards.is_empty() {
        return Err(DemoError::NoWards(code.to_string()));
    }
    Ok(wards.into_iter().collect())
}

/// The current wards each group of the demo's records is placed at.
struct DemoWards {
    newcastle: Vec<String>,
    northumbria: Vec<String>,
    north_east: Vec<String>,
}

fn subject_key(i: usize) -> String {
    hex::encode(Sha256::digest(format!("marr demo subject {i}")))
}

fn pick<T: Copy>(rng: &mut StdRng, values: &[T]) -> T {
    values[rng.random_range(0..values.len())]
}

fn pick_ward<'a>(rng: &mut StdRng, wards: &'a [String]) -> &'a str {
    &wards[rng.random_range(0..wards.len())]
}

/// Synthetic records for the three demo agencies at current wards of their areas; the same
/// subjects recur across agencies.
fn sample_records(now: OffsetDateTime, wards: &DemoWards) -> Vec<ExtractRow> {
    let mut rng = StdRng::seed_from_u64(2026);
    (0..DEMO_RECORDS)
        .map(|i| {
            let (agency, place, groups, basis): (&str, &str, &[ClientGroup], LawfulBasis) =
                match i % 3 {
                    0 => (
                        NEWCASTLE,
                        pick_ward(&mut rng, &wards.newcastle),
                        &[
                            ClientGroup::ChildrenInNeed,
                            ClientGroup::ChildProtectionPlan,
                            ClientGroup::LookedAfterChild,
                        ],
                        LawfulBasis::ChildrenAct1989S47,
                    ),
                    1 => (
                        NORTHUMBRIA,
                        pick_ward(&mut rng, &wards.northumbria),
                        &[
                            ClientGroup::ChildrenInNeed,
                            ClientGroup::YouthJustice,
                            ClientGroup::AdultAtRisk,
                        ],
                        LawfulBasis::CrimeAndDisorderAct1998S115,
                    ),
                    _ => (
                        "RTD",
                        pick_ward(&mut rng, &wards.north_east),
                        &[
                            ClientGroup::AdultAtRisk,
                            ClientGroup::OlderAdult,
                            ClientGroup::ChildrenInNeed,
                        ],
                        LawfulBasis::Dpa2018Sch1Para18,
                    ),
                };
            let assessed = now - time::Duration::hours(rng.random_range(24..24 * 400));
            let updated = assessed + time::Duration::hours(rng.random_range(0..24));
            let status = if rng.random_bool(0.8) {
                RecordStatus::Active
            } else {
                RecordStatus::Closed
            };
            let record = proto::RiskRecord {
                agency_id: agency.to_string(),
                local_ref: format!("{agency}-{i:06}"),
                subject_key: subject_key(rng.random_range(0..DEMO_SUBJECTS)),
                place_code: place.to_string(),
                client_group: pick(&mut rng, groups).number(),
                category: pick(&mut rng, RiskCategory::ALL).number(),
                severity: pick(&mut rng, Severity::ALL).number(),
                status: status.number(),
                assessed_at: Some(timestamp(assessed)),
                source_updated_at: Some(timestamp(updated)),
                lawful_basis: basis.number(),
                note: String::new(),
            };
            ExtractRow {
                line: i as u64 + 1,
                agency_id: record.agency_id.clone(),
                local_ref: record.local_ref.clone(),
                record: Ok(record),
            }
        })
        .collect()
}

/// A small extract beside the demo's data, with two bad rows, for trying `marr push`.
fn write_sample_extract(path: &Path, now: OffsetDateTime) -> std::io::Result<()> {
    let at = crate::domain::record::rfc3339(now - time::Duration::days(2));
    let later = crate::domain::record::rfc3339(now - time::Duration::days(1));
    let text = format!(
        "agency_id,local_ref,subject_key,place_code,client_group,category,severity,status,assessed_at,source_updated_at,lawful_basis,note\n\
         {NEWCASTLE},TRY-1,{s},{NEWCASTLE},child_protection_plan,neglect,high,active,{at},{at},children_act_1989_s47,Escalated after school report\n\
         {NEWCASTLE},TRY-1,{s},{NEWCASTLE},child_protection_plan,neglect,critical,active,{at},{later},children_act_1989_s47,\n\
         {NEWCASTLE},TRY-2,,{NEWCASTLE},children_in_need,bullying,low,active,{at},{at},children_act_1989_s17,\n\
         {NEWCASTLE},TRY-3,,E06000001,children_in_need,neglect,low,active,{at},{at},children_act_1989_s17,\n",
        s = subject_key(1)
    );
    std::fs::write(path, text)
}

/// The demo's principals (name, role, agency, places), each given a fresh token at start.
const DEMO_PRINCIPALS: [(&str, Role, Option<&str>, &str); 6] = [
    ("admin", Role::Admin, None, ""),
    // A national inspectorate's inspector: comparisons reach beyond the region.
    ("inspector", Role::Inspector, None, ENGLAND),
    ("board", Role::Board, None, NORTH_EAST_REGION),
    ("newcastle", Role::Agency, Some(NEWCASTLE), ""),
    ("northumbria-police", Role::Agency, Some(NORTHUMBRIA), ""),
    ("newcastle-hospitals", Role::Agency, Some("RTD"), ""),
];

/// A config holding the demo's principals, and each one's token.
fn demo_config() -> (Config, Vec<(&'static str, String)>) {
    let mut rng = rand::rng();
    let mut tokens = Vec::new();
    let mut config = Config::default();
    for (name, role, agency, places) in DEMO_PRINCIPALS {
        let token = hex::encode(rng.random::<[u8; 16]>());
        config.principals.push(crate::config::Principal {
            name: name.into(),
            role,
            agency: agency.map(str::to_string),
            places: places.split_whitespace().map(str::to_string).collect(),
            token_sha256: Some(hex::encode(Sha256::digest(token.as_bytes()))),
            cert_cn: None,
        });
        tokens.push((name, token));
    }
    (config, tokens)
}

/// The whole product on the sample: one place across agencies, a subject three agencies
/// know raising a multi-agency alert that a board's watcher receives, and the public table.
async fn tell_the_story(
    public: &Connection,
    token_of: &dyn Fn(&str) -> String,
    url: &str,
    dir: &Path,
    now: OffsetDateTime,
) -> Result<(), DemoError> {
    let as_whom = |name: &str| format!("--server {url} --token {}", token_of(name));
    let inspector = public.with_token(&token_of("inspector"))?;
    println!("\n# An inspector looks at Newcastle across every agency:");
    println!("$ marr view {} {NEWCASTLE}", as_whom("inspector"));
    let mut view = inspect::view(&inspector, NEWCASTLE, proto::ViewFilter::default(), 0).await?;
    // The district's LSOAs hold none of the demo's records (they sit at wards): a page of
    // zeros would bury the ward breakdown.
    let children = view.children.len();
    view.children.retain(|c| c.active > 0);
    print!("{}", inspect::view_table(&view));
    if view.children.len() < children {
        println!(
            "  ({} child places with no active records left out here; marr view lists them)",
            children - view.children.len()
        );
    }

    println!(
        "\n# The inspector compares the North East's upper-tier authorities, each client group's\n\
         # count and its rate per 10,000 of the population it is drawn from:"
    );
    println!(
        "$ grpcurl -plaintext -H 'authorization: Bearer <inspector token>' -d '{{\"parent_code\":\"{NORTH_EAST_REGION}\"}}' {} marr.v1.Inspection/ComparePlaces",
        url.trim_start_matches("http://")
    );
    let comparison = inspector
        .inspection()
        .compare_places(proto::ComparePlacesRequest {
            parent_code: NORTH_EAST_REGION.into(),
            ..Default::default()
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    print!("{}", inspect::comparison_table(&comparison));

    println!(
        "\n# And Newcastle beside its ten statistical neighbours (DfE), its region and England,\n\
         # ranked by the rate of children on a protection plan:"
    );
    println!(
        "$ grpcurl -plaintext -H 'authorization: Bearer <inspector token>' -d '{{\"parent_code\":\"{NEWCASTLE}\",\"kind\":\"COMPARISON_KIND_STATISTICAL_NEIGHBOURS\",\"rate_of\":\"CLIENT_GROUP_CHILD_PROTECTION_PLAN\"}}' {} marr.v1.Inspection/ComparePlaces",
        url.trim_start_matches("http://")
    );
    let neighbours = inspector
        .inspection()
        .compare_places(proto::ComparePlacesRequest {
            parent_code: NEWCASTLE.into(),
            kind: proto::ComparisonKind::StatisticalNeighbours as i32,
            rate_of: ClientGroup::ChildProtectionPlan.number(),
            ..Default::default()
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    print!("{}", inspect::comparison_table(&neighbours));
    if neighbours.neighbours_left_out_for_scope > 0 {
        println!(
            "({} neighbours outside the inspector's places left out)",
            neighbours.neighbours_left_out_for_scope
        );
    }
    if let Some(standing) = &neighbours.standing {
        println!(
            "Newcastle ranks {} of {} (quartile {}, 1 the highest) among itself and its neighbours",
            standing.rank, standing.of, standing.quartile
        );
    }

    // The board watches from the alert log's head, so it sees what happens next.
    let board = public.with_token(&token_of("board"))?;
    let filter = proto::AlertFilter {
        place_code: NORTH_EAST_REGION.into(),
        kinds: vec![AlertKind::MultiAgency.number()],
        ..Default::default()
    };
    let head = board
        .alerts()
        .list_alerts(proto::ListAlertsRequest {
            filter: Some(filter.clone()),
            page_size: 1,
            ..Default::default()
        })
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .head_sequence;
    println!(
        "\n# The North East's safeguarding board watches for multi-agency alerts (another terminal):"
    );
    println!(
        "$ marr watch {} --place {NORTH_EAST_REGION} --kind multi_agency --from {head}",
        as_whom("board")
    );
    let mut watch = board
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: head,
            filter: Some(filter),
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();

    println!(
        "\n# Three agencies each record a risk to the same young person, known to none of the others:"
    );
    let subject = subject_key(DEMO_SUBJECTS + 1);
    let at = timestamp(now - time::Duration::hours(2));
    let story = [
        (
            "newcastle",
            NEWCASTLE,
            ClientGroup::ChildProtectionPlan,
            RiskCategory::Neglect,
            LawfulBasis::ChildrenAct1989S47,
        ),
        (
            "northumbria-police",
            NORTHUMBRIA,
            ClientGroup::YouthJustice,
            RiskCategory::ChildCriminalExploitation,
            LawfulBasis::CrimeAndDisorderAct1998S115,
        ),
        (
            "newcastle-hospitals",
            "RTD",
            ClientGroup::ChildrenInNeed,
            RiskCategory::SelfHarm,
            LawfulBasis::Dpa2018Sch1Para18,
        ),
    ];
    for (name, agency, group, category, basis) in story {
        let record = proto::RiskRecord {
            agency_id: agency.into(),
            local_ref: format!("{agency}-STORY"),
            subject_key: subject.clone(),
            place_code: NEWCASTLE.into(),
            client_group: group.number(),
            category: category.number(),
            severity: Severity::High.number(),
            status: RecordStatus::Active.number(),
            assessed_at: Some(at),
            source_updated_at: Some(at),
            lawful_basis: basis.number(),
            note: String::new(),
        };
        println!(
            "$ marr push {} story.csv      # {agency}: {group}, {category}, high, subject {}…",
            as_whom(name),
            &subject[..12]
        );
        public
            .with_token(&token_of(name))?
            .risk_register()
            .submit_record(proto::SubmitRecordRequest {
                record: Some(record),
            })
            .await
            .map_err(ClientError::from)?;
    }
    println!("\n# The board's watcher prints, as they happen:");
    let mut seen = 0;
    while seen < 2 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message()).await;
        match next {
            Ok(Ok(Some(proto::WatchResponse {
                event: Some(proto::watch_response::Event::Alert(alert)),
            }))) => {
                println!("{}", super::watch::alert_line(&alert));
                seen += 1;
            }
            Ok(Ok(Some(_))) => {}
            _ => break,
        }
    }

    // The public sees releases, not live figures: the schedule cuts one on the first of each
    // month, and an administrator can cut one at once.
    println!("\n# The public table is published as releases. An administrator cuts one now:");
    println!(
        "$ grpcurl -H 'authorization: Bearer <admin token>' {url} marr.v1.OpenData/CutRelease"
    );
    let admin = public.with_token(&token_of("admin"))?;
    let release = admin
        .open_data()
        .cut_release(proto::CutReleaseRequest {})
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .release
        .unwrap_or_default();
    println!(
        "release {} for {}, frozen at log sequence {} ({} tables)",
        release.number, release.time_period, release.sequence, release.tables
    );

    let table_file = dir.join("north-east-open-data.csv");
    println!(
        "\n# Anyone, without credentials, gets the same figures for every council, disclosure-controlled:"
    );
    println!(
        "$ marr export --server {url} --parent {NORTH_EAST_REGION} --level county --out {}",
        table_file.display()
    );
    let rows = super::export::export(
        public,
        NORTH_EAST_REGION,
        PlaceLevel::County,
        0,
        &table_file,
    )
    .await?;
    println!(
        "wrote {rows} rows. Active risks by category\n\
         (c: a count from 1 to 4, one where the agencies besides any one of them hold 1 to 4, or one\n\
         that would give such a count away; the rest rounded to 5):"
    );
    let table = public
        .open_data()
        .get_comparative_table(proto::GetComparativeTableRequest {
            parent_code: NORTH_EAST_REGION.into(),
            level: PlaceLevel::County.number(),
            filter: None,
            release: 0,
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    use super::export::published;
    // By category: the rarer risks are where small counts, and suppression, show.
    let mut heading = format!("{:<24} {:>5}", "upper-tier authority", "total");
    for category in &table.categories {
        let word = RiskCategory::from_number(*category).map_or("?", |c| c.word());
        heading.push_str(&format!(" {:>5}", &word[..word.len().min(5)]));
    }
    println!("{heading}");
    for row in table.rows.iter().chain(table.total.as_ref()) {
        let name = row.place.as_ref().map_or("", |p| p.name.as_str());
        let mut line = format!(
            "{:<24} {:>5}",
            &name[..name.len().min(24)],
            published(row.total.as_ref())
        );
        for count in &row.by_category {
            line.push_str(&format!(" {:>5}", published(Some(count))));
        }
        println!("{line}");
    }
    Ok(())
}

/// Runs the demo on the geography and population files under `data_dir` until `shutdown`
/// completes; stops at once, naming the file, when one of them is missing.
pub async fn run(
    listen: SocketAddr,
    http_listen: SocketAddr,
    data_dir: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let DataFiles {
        geography: geography_files,
        population: population_files,
        neighbours: neighbour_files,
        boundaries: boundary_files,
    } = data_files(data_dir)?;
    let data = tempfile::Builder::new()
        .prefix("marr-demo-")
        .tempdir()
        .map_err(DemoError::DataDir)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DemoError::Bind {
            address: listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| DemoError::Bind {
        address: listen,
        source,
    })?;
    let web_listener = tokio::net::TcpListener::bind(http_listen)
        .await
        .map_err(|source| DemoError::Bind {
            address: http_listen,
            source,
        })?;
    let web_address = web_listener
        .local_addr()
        .map_err(|source| DemoError::Bind {
            address: http_listen,
            source,
        })?;
    let dir = data.path().to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .map_err(|e| StoreError::WriterFailed(e.to_string()))??;
    let (config, tokens) = demo_config();
    // The demo runs the overdue sweep itself rather than wait for the server's clock.
    let sweeper = store.clone();
    let server = tokio::spawn(crate::serve_with_web(
        listener,
        Some(web_listener),
        store,
        config,
        shutdown,
    ));
    let url = format!("http://{address}");
    println!(
        "marr demo: serving marr.v1 on {url} with data in {}",
        data.path().display()
    );
    println!("\nBearer tokens of the demo's principals (the server keeps only their SHA-256):");
    for (name, token) in &tokens {
        println!("  {name:<20} {token}");
    }
    let token_of = |name: &str| {
        tokens
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    };

    let public = Connection::open(&ServerArgs::plain(url.clone())).await?;
    let connection = public.with_token(&token_of("admin"))?;
    let admin = format!("--server {url} --token {}", token_of("admin"));
    let inspector = format!("--server {url} --token {}", token_of("inspector"));
    let newcastle = format!("--server {url} --token {}", token_of("newcastle"));
    let shown = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "\n# England's geography as it is today (ONS and NHS lookups, 2023-2025), in one import:"
    );
    println!("$ marr places import {admin} {}", shown(&geography_files));
    let report = places::import_tables(&connection, read_tables(geography_files).await?).await?;
    println!(
        "{} rows read, {} places added",
        report.rows_read, report.places_added
    );
    for line in places::level_lines(&report) {
        println!("{line}");
    }
    println!("\n# Mid-year population estimates, so views give rates per 10,000:");
    println!(
        "$ marr population import {admin} {}",
        shown(&population_files)
    );
    let report =
        population::import_tables(&connection, read_tables(population_files).await?).await?;
    println!("{}", population::summary_line(&report));
    println!(
        "\n# The DfE's statistical neighbours of each upper-tier authority, for fair comparisons:"
    );
    println!(
        "$ marr neighbours import {admin} {}",
        shown(&neighbour_files)
    );
    let report =
        neighbours::import_tables(&connection, read_tables(neighbour_files).await?).await?;
    if let Some(line) = neighbours::report_lines(&report)
        .into_iter()
        .find(|l| l.contains("rows read"))
    {
        println!("{line}");
    }
    println!(
        "\n# Boundaries for maps; police force areas and safety partnerships get their districts' outline:"
    );
    println!(
        "$ marr boundaries import {admin} {}",
        shown(&boundary_files)
    );
    let files = tokio::task::spawn_blocking(move || boundaries::read_files(&boundary_files))
        .await
        .map_err(|e| StoreError::WriterFailed(e.to_string()))??;
    let report = boundaries::import_files(&connection, files).await?;
    println!("{}", boundaries::summary_line(&report));
    let agencies_to_register: [(&str, AgencyKind, &str, &str); 3] = [
        (
            NEWCASTLE,
            AgencyKind::ChildrenSocialCare,
            "Newcastle upon Tyne children's services",
            NEWCASTLE,
        ),
        (
            NORTHUMBRIA,
            AgencyKind::Police,
            "Northumbria Police",
            NORTHUMBRIA,
        ),
        (
            "RTD",
            AgencyKind::Health,
            "Newcastle upon Tyne Hospitals NHS Foundation Trust",
            NORTH_EAST_REGION,
        ),
    ];
    for (id, kind, name, footprint) in agencies_to_register {
        println!(
            "\n$ marr agencies register {admin} --id {id} --kind {kind} --name \"{name}\" --footprint {footprint}"
        );
        agencies::register(&connection, id, kind, name, &[footprint.to_string()]).await?;
        println!("registered {id}");
    }
    // Whole seconds read better in the demo's output.
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    println!(
        "\n$ marr push --token <each agency's token> <{DEMO_RECORDS} synthetic records from the three agencies>"
    );
    let progress = progress_bar();
    let mut summary = PushSummary::default();
    // Records sit at today's wards, read from the directory, so views break down by ward.
    let wards = DemoWards {
        newcastle: wards_under(&connection, NEWCASTLE).await?,
        northumbria: wards_under(&connection, NORTHUMBRIA).await?,
        north_east: wards_under(&connection, NORTH_EAST_REGION).await?,
    };
    let mut rows = sample_records(now, &wards);
    for (name, _, agency, _) in DEMO_PRINCIPALS {
        let Some(agency) = agency else { continue };
        let (own, others): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.agency_id == agency);
        rows = others;
        let pusher = public.with_token(&token_of(name))?;
        let (pushed, _) = push_rows(&pusher, own.into_iter(), &progress).await?;
        summary += pushed;
    }
    progress.finish_and_clear();
    println!("{summary}");

    tell_the_story(&public, &token_of, &url, data.path(), now).await?;
    tell_the_learning_story(&public, &token_of, &url, data.path(), now, &sweeper).await?;

    let extract = data.path().join("try-me.csv");
    if write_sample_extract(&extract, now).is_ok() {
        println!("\nTry next, in another terminal:");
        println!("  marr view {inspector} {NORTHUMBRIA}");
        if let Some(ward) = wards.newcastle.first() {
            println!("  marr view {inspector} {ward}            (a ward of Newcastle)");
        }
        println!("  marr view {inspector} {NEWCASTLE} --min-severity high --format json");
        println!(
            "  marr follow {inspector} {} --purpose \"Joint inspection: children missing from home\"",
            subject_key(1)
        );
        println!("  marr reviews show --server {url} 1");
        println!("  marr actions list --server {url} --overdue");
        println!(
            "  marr export --server {url} --table findings --out {}",
            data.path().join("findings.csv").display()
        );
        println!("  marr push {newcastle} {}", extract.display());
        println!(
            "      (two of its rows are refused: see {}.rejects.csv)",
            extract.display()
        );
        println!("  grpcurl -plaintext {address} list            (server reflection)");
        println!(
            "  grpcurl -plaintext -H 'authorization: Bearer {}' -d '{{\"agency_id\":\"{NEWCASTLE}\",\"local_ref\":\"{NEWCASTLE}-000000\"}}' {address} marr.v1.RiskRegister/GetRecordHistory",
            token_of("newcastle")
        );
    }
    println!("\nThe web pages: open http://{web_address}/ and sign in with one of these tokens:");
    for (name, role) in [
        (
            "inspector",
            "an inspector: place pages, comparisons, risks, a subject's trail",
        ),
        ("board", "a safeguarding board: its area and live alerts"),
        ("newcastle", "an agency: who read its records"),
    ] {
        println!("  {name:<10} {}  ({role})", token_of(name));
    }
    println!("  (the published figures need no sign-in: http://{web_address}/releases)");
    println!("\nServing until Ctrl-C; the demo's data is removed when it stops.");
    server
        .await
        .map_err(|e| StoreError::WriterFailed(e.to_string()))??;
    drop(data);
    Ok(())
}

const SOUTH_TYNESIDE: &str = "E08000023";
/// Newcastle and South Tyneside are both among its DfE statistical neighbours.
const MIDDLESBROUGH: &str = "E06000002";

fn day(at: OffsetDateTime) -> String {
    crate::domain::record::iso_date(at.date())
}

/// The demo's two reviews as review files: a joint targeted area inspection of Newcastle and a
/// safeguarding practice review in South Tyneside, published some weeks ago.
fn demo_review_files(now: OffsetDateTime) -> [(&'static str, String); 2] {
    let days = |n: i64| now - time::Duration::days(n);
    let jtai = format!(
        r#"kind = "joint_targeted_area_inspection"
title = "Joint targeted area inspection of the multi-agency response to child exploitation"
place = "{NEWCASTLE}"
agencies = ["{NEWCASTLE}", "{NORTHUMBRIA}", "RTD"]
fieldwork_start = "{}"
fieldwork_end = "{}"
published_at = "{}"

[[findings]]
theme = "child_criminal_exploitation"
judgement = "strength"
summary = "Leaders share a clear strategy for exploitation and partners understand it."

[[findings]]
theme = "information_sharing"
judgement = "priority_action"
summary = "Police and health do not share information about missing episodes quickly enough for return interviews to inform plans."

[[findings.recommendations]]
text = "Share every missing episode with children's services within one working day."
agency = "{NORTHUMBRIA}"

[[findings]]
theme = "missing"
judgement = "area_for_improvement"
summary = "Return home interviews are offered but their learning rarely changes a child's plan."

[[findings.recommendations]]
text = "Make sure learning from return home interviews is reviewed in every child's plan."
agency = "{NEWCASTLE}"
"#,
        day(days(120)),
        day(days(110)),
        crate::domain::record::rfc3339(days(90)),
    );
    let spr = format!(
        r#"kind = "safeguarding_practice_review"
title = "Local child safeguarding practice review of a young child living with neglect"
place = "{SOUTH_TYNESIDE}"
agencies = ["{NORTHUMBRIA}", "RTD"]
fieldwork_start = "{}"
fieldwork_end = "{}"
published_at = "{}"

[[findings]]
theme = "neglect"
judgement = "priority_action"
summary = "Cumulative neglect was not recognised because each attendance was seen on its own."

[[findings.recommendations]]
text = "Check every attendance of a young child against earlier ones before discharge."
agency = "RTD"

[[findings]]
theme = "information_sharing"
judgement = "area_for_improvement"
summary = "Health visitors did not learn of police call-outs to the home."

[[findings.recommendations]]
text = "Notify the health visiting service of domestic abuse call-outs where a young child lives."
agency = "{NORTHUMBRIA}"

[[findings]]
theme = "management_oversight"
judgement = "strength"
summary = "Supervision of the social workers involved was regular and reflective."
"#,
        day(days(70)),
        day(days(60)),
        crate::domain::record::rfc3339(days(45)),
    );
    [
        ("newcastle-jtai.toml", jtai),
        ("south-tyneside-cspr.toml", spr),
    ]
}

/// Learning from reviews: two published reviews recorded from files, an action planned by its
/// accountable agency and left past its due date, the overdue alert at the board, the lessons
/// of the region and of England, and the lines of enquiry for a place whose statistical
/// neighbours were reviewed.
async fn tell_the_learning_story(
    public: &Connection,
    token_of: &dyn Fn(&str) -> String,
    url: &str,
    dir: &Path,
    now: OffsetDateTime,
    store: &Store,
) -> Result<(), DemoError> {
    use super::reviews;
    let as_whom = |name: &str| format!("--server {url} --token {}", token_of(name));
    let inspector = public.with_token(&token_of("inspector"))?;
    println!(
        "\n# Learning from reviews. The inspector records two published reviews from files\n\
         # (examples/review.toml in the source shows the layout):"
    );
    let mut recorded = Vec::new();
    for (name, text) in demo_review_files(now) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(DemoError::DataDir)?;
        println!(
            "$ marr reviews record {} {}",
            as_whom("inspector"),
            path.display()
        );
        let review = reviews::record(&inspector, reviews::read_review_file(&path)?, None).await?;
        println!("{}", reviews::recorded_line(&review));
        recorded.push(review);
    }
    let jtai = recorded.first().map_or(1, |r| r.id);

    println!(
        "\n# Northumbria Police, accountable for recommendation 2.1, plans its action (due two weeks ago):"
    );
    let due = day(now - time::Duration::days(14));
    println!(
        "$ marr actions add {} {jtai} 2 1 --description \"Daily missing episode notification to the front door\" --owner \"Head of Public Protection\" --due {due} --status in_progress",
        as_whom("northumbria-police")
    );
    let police = public.with_token(&token_of("northumbria-police"))?;
    let action = reviews::add_action(
        &police,
        reviews::NewAction {
            review: jtai,
            finding: 2,
            recommendation: 1,
            description: "Daily missing episode notification to the front door".into(),
            owner: "Head of Public Protection".into(),
            due,
            status: crate::domain::review::ActionStatus::InProgress,
            note: String::new(),
        },
    )
    .await?;
    println!("{}", reviews::action_line(&action));

    let board = public.with_token(&token_of("board"))?;
    let filter = proto::AlertFilter {
        place_code: NORTH_EAST_REGION.into(),
        kinds: vec![AlertKind::OverdueAction.number()],
        ..Default::default()
    };
    let head = board
        .alerts()
        .list_alerts(proto::ListAlertsRequest {
            filter: Some(filter.clone()),
            page_size: 1,
            ..Default::default()
        })
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .head_sequence;
    // The sweep runs hourly on the server's clock; the demo runs it now rather than wait.
    store.sweep_stale().await?;
    println!("\n# The hourly sweep finds it past its due date; the board's watcher prints:");
    println!(
        "$ marr watch {} --place {NORTH_EAST_REGION} --kind overdue_action --from {head}",
        as_whom("board")
    );
    let alerts = board
        .alerts()
        .list_alerts(proto::ListAlertsRequest {
            filter: Some(filter),
            after_sequence: head,
            page_size: 10,
        })
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .alerts;
    for alert in &alerts {
        println!("{}", super::watch::alert_line(alert));
    }

    for (area, name) in [(NORTH_EAST_REGION, "the North East"), (ENGLAND, "England")] {
        println!("\n# Anyone reads the collective lessons of {name} over the last year:");
        println!("$ marr lessons --server {url} --area {area}");
        let answer = reviews::lessons(public, area, "", "").await?;
        print!("{}", reviews::lessons_table(&answer));
    }

    println!(
        "\n# Lines of enquiry for Middlesbrough's next review: Newcastle and South Tyneside are among\n\
         # its statistical neighbours:"
    );
    println!("$ marr enquiries {} {MIDDLESBROUGH}", as_whom("inspector"));
    let answer = reviews::enquiries(&inspector, MIDDLESBROUGH).await?;
    print!("{}", reviews::enquiries_table(&answer));
    Ok(())
}
