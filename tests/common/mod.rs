//! A real server on 127.0.0.1:0 with sled in a temporary directory (or, with
//! `MARR_TEST_ENGINE=postgres`, a database of its own on a PostgreSQL cluster the tests
//! start), and helpers to feed it real geography from the shared ONS lookups.
#![allow(dead_code)]

pub mod browser;
pub mod postgres;
pub mod web;

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use marr::cli::{Authenticated, ServerArgs, places};
use marr::config::Config;
use marr::domain::lookup::LookupTable;
use marr::proto;
use marr::store::{Location, Store, StoreOptions};
use prost_types::Timestamp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const NEWCASTLE: &str = "E08000021";
pub const GATESHEAD: &str = "E08000037";
pub const HARTLEPOOL: &str = "E06000001";
pub const NORTHUMBRIA: &str = "E23000007";
pub const NORTH_EAST: &str = "E12000001";
/// Lemington, a ward of Newcastle upon Tyne (2019).
pub const NEWCASTLE_WARD: &str = "E05011451";
/// Newcastle upon Tyne 025B, an LSOA in NHS Newcastle Gateshead CCG.
pub const NEWCASTLE_LSOA: &str = "E01008415";
/// NHS Newcastle Gateshead CCG (2020).
pub const NEWCASTLE_GATESHEAD_CCG: &str = "E38000212";
/// Winlaton and High Spen, a ward of Gateshead (2019).
pub const GATESHEAD_WARD: &str = "E05001088";

/// The shared ONS lookups.
pub fn geography_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/geography")
}

pub fn geography_file(name: &str) -> PathBuf {
    geography_dir().join(name)
}

pub const WARDS: &str = "ward-lad-county-region-country-2019.csv";
pub const POLICE: &str = "lad-csp-police-force-area-2019.csv";
pub const LSOAS: &str = "lsoa-ccg-lad-2020.csv";

/// The shared ONS mid-year population estimates.
pub fn population_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/population")
        .join(name)
}

/// Districts, upper-tier authorities, regions and England, 2022 to 2024.
pub const POPULATION_LA: &str = "mid-year-estimates-la-2022-2024.csv";
/// Police force areas, 2022 to 2024.
pub const POPULATION_PFA: &str = "mid-year-estimates-pfa-2022-2024.csv";

/// The Department for Education's children's services statistical neighbours.
pub fn neighbours_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/statistical-neighbours")
        .join(name)
}

/// The May 2025 model: 153 upper-tier authorities.
pub const NEIGHBOURS_2025: &str = "children-services-2025.csv";

/// The shared ONS boundary files, for maps.
pub fn boundaries_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/boundaries")
        .join(name)
}

/// Countries, regions, counties, upper- and lower-tier authorities of 2014 to 2025 (TopoJSON).
pub const BOUNDARIES_TOPO: &str = "uk-local-authorities-2014-2025.topo.json";
/// Integrated care boards, 2023 (GeoJSON).
pub const BOUNDARIES_ICB: &str = "icb-2023.geo.json";
/// Sub-ICB locations, 2023 (GeoJSON).
pub const BOUNDARIES_SUB_ICB: &str = "sub-icb-2023.geo.json";

/// England's current lookups (2023 to 2025), as published.
pub fn current_geography_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/geography-2025")
        .join(name)
}

/// The ward lookup of 2017 to 2025, with the DfE's local authority numbers.
pub const CURRENT_WARDS: &str = "ward-pcon-lad-la-region-2017-2025.csv";

/// Every current lookup, for one import of England as it is today.
pub fn current_geography_tables() -> Vec<LookupTable> {
    [
        "la-changes-2018-2025.csv",
        "lad22-lad23.csv",
        CURRENT_WARDS,
        "lad24-csp24-pfa24.csv",
        "lsoa21-ward24-lad24-bestfit.csv",
        "lsoa21-sicbl24-icb24.csv",
    ]
    .iter()
    .map(|name| places::read_table(&current_geography_file(name)).expect("readable"))
    .collect()
}

/// The real rows of the North East: its wards and LSOAs, and its districts' police force
/// areas, community safety partnerships and clinical commissioning groups.
pub fn north_east_tables() -> Vec<LookupTable> {
    let mut wards = places::read_table(&geography_file(WARDS)).expect("ward lookup readable");
    let region = wards
        .header
        .iter()
        .position(|h| h == "RGN19CD")
        .expect("RGN19CD column");
    wards.rows.retain(|row| row.cells[region] == NORTH_EAST);
    let districts: std::collections::HashSet<String> =
        wards.rows.iter().map(|r| r.cells[3].clone()).collect();
    let mut police = places::read_table(&geography_file(POLICE)).expect("police lookup readable");
    police.rows.retain(|row| districts.contains(&row.cells[1]));
    let mut lsoas = places::read_table(&geography_file(LSOAS)).expect("LSOA lookup readable");
    lsoas.rows.retain(|row| districts.contains(&row.cells[6]));
    vec![lsoas, police, wards]
}

/// The principals every test server knows, with their bearer tokens.
pub const ADMIN: &str = "admin-token";
pub const INSPECTOR: &str = "inspector-token";
pub const BOARD: &str = "board-token";
/// An inspector whose places are Newcastle only.
pub const NEWCASTLE_INSPECTOR: &str = "newcastle-inspector-token";
/// A board whose places are Gateshead only.
pub const GATESHEAD_BOARD: &str = "gateshead-board-token";
/// The agencies of the North East server and the tokens of their systems.
pub const AGENCY_TOKENS: [(&str, &str); 3] = [
    (NEWCASTLE, "newcastle-token"),
    (NORTHUMBRIA, "northumbria-token"),
    ("RTD", "rtd-token"),
];
pub const ENGLAND: &str = "E92000001";

/// The bearer token of an agency's system.
pub fn agency_token(agency: &str) -> &'static str {
    AGENCY_TOKENS
        .iter()
        .find(|(id, _)| *id == agency)
        .map(|(_, token)| *token)
        .unwrap_or("no-such-agency-token")
}

/// One `[[principal]]` table of a config file.
pub fn principal(
    name: &str,
    role: &str,
    agency: Option<&str>,
    places: &[&str],
    token: &str,
) -> String {
    use sha2::Digest;
    let mut entry = format!("[[principal]]\nname = \"{name}\"\nrole = \"{role}\"\n");
    if let Some(agency) = agency {
        entry.push_str(&format!("agency = \"{agency}\"\n"));
    }
    let places: Vec<String> = places.iter().map(|p| format!("\"{p}\"")).collect();
    entry.push_str(&format!("places = [{}]\n", places.join(", ")));
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    entry.push_str(&format!("token_sha256 = \"{hash}\"\n"));
    entry
}

/// The principals of every test server, as a config file would hold them.
pub fn principals_toml() -> String {
    let mut text = String::new();
    text.push_str(&principal("admin", "admin", None, &[], ADMIN));
    text.push_str(&principal(
        "inspector",
        "inspector",
        None,
        &[ENGLAND],
        INSPECTOR,
    ));
    text.push_str(&principal("board", "board", None, &[ENGLAND], BOARD));
    text.push_str(&principal(
        "newcastle-inspector",
        "inspector",
        None,
        &[NEWCASTLE],
        NEWCASTLE_INSPECTOR,
    ));
    text.push_str(&principal(
        "gateshead-board",
        "board",
        None,
        &[GATESHEAD],
        GATESHEAD_BOARD,
    ));
    for (agency, token) in AGENCY_TOKENS {
        text.push_str(&principal(
            &format!("agency {agency}"),
            "agency",
            Some(agency),
            &[],
            token,
        ));
    }
    text
}

/// The test servers' config: the principals above and limits no test reaches by accident.
pub fn test_config() -> Config {
    let text = format!(
        "{}[limits]\ncalls_per_second = 1000000\nburst = 1000000\nmax_concurrent_calls = 10000\n",
        principals_toml()
    );
    let config: Config = toml::from_str(&text).expect("test config parses");
    config.check().expect("test config is valid");
    config
}

/// Connections to a test server as each of its principals; calls go out as the principal
/// whose work they are (records as their agency, views as the inspector, alerts as the board,
/// directory changes as the admin).
#[derive(Clone)]
pub struct Connection {
    pub admin: marr::cli::Connection,
    pub inspector: marr::cli::Connection,
    pub board: marr::cli::Connection,
    /// No credentials at all.
    pub public: marr::cli::Connection,
    agencies: HashMap<&'static str, marr::cli::Connection>,
}

impl Connection {
    pub async fn open(url: &str) -> Result<Self, marr::cli::ClientError> {
        let public = marr::cli::Connection::open(&ServerArgs::plain(url)).await?;
        let mut agencies = HashMap::new();
        for (agency, token) in AGENCY_TOKENS {
            agencies.insert(agency, public.with_token(token)?);
        }
        Ok(Self {
            admin: public.with_token(ADMIN)?,
            inspector: public.with_token(INSPECTOR)?,
            board: public.with_token(BOARD)?,
            public,
            agencies,
        })
    }

    /// The connection of an agency's system.
    pub fn agency(&self, agency: &str) -> &marr::cli::Connection {
        self.agencies
            .get(agency)
            .unwrap_or_else(|| panic!("no test principal for agency {agency}"))
    }

    /// The same server as the holder of `token`.
    pub fn as_token(&self, token: &str) -> marr::cli::Connection {
        self.public.with_token(token).expect("token")
    }

    /// Newcastle's council, whose records `record()` makes.
    pub fn risk_register(
        &self,
    ) -> marr::proto::risk_register_client::RiskRegisterClient<Authenticated> {
        self.agency(NEWCASTLE).risk_register()
    }

    pub fn inspection(&self) -> marr::proto::inspection_client::InspectionClient<Authenticated> {
        self.inspector.inspection()
    }

    pub fn alerts(&self) -> marr::proto::alerts_client::AlertsClient<Authenticated> {
        self.board.alerts()
    }

    pub fn directory(&self) -> marr::proto::directory_client::DirectoryClient<Authenticated> {
        self.admin.directory()
    }

    pub fn audit(&self) -> marr::proto::audit_client::AuditClient<Authenticated> {
        self.admin.audit()
    }
}

/// The client subcommands' functions take the administrator's connection.
impl std::ops::Deref for Connection {
    type Target = marr::cli::Connection;
    fn deref(&self) -> &marr::cli::Connection {
        &self.admin
    }
}

pub struct TestServer {
    pub url: String,
    /// The web front's address, `http://127.0.0.1:PORT`.
    pub web_url: String,
    /// Taken away before a restart: sled lets one handle at a time hold the directory.
    store: Option<Store>,
    dir: tempfile::TempDir,
    /// Where the register lives: sled in `dir`, or a database of its own on the tests'
    /// PostgreSQL cluster (`MARR_TEST_ENGINE=postgres`).
    location: Location,
    options: StoreOptions,
    config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), marr::ServeError>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(StoreOptions::default()).await
    }

    /// A server whose store has these rule settings and clock.
    pub async fn start_with(options: StoreOptions) -> Self {
        Self::start_in(
            tempfile::tempdir().expect("temp dir"),
            options,
            test_config(),
        )
        .await
    }

    /// A server with these rule settings and this config (its principals and limits).
    pub async fn start_with_config(options: StoreOptions, config: Config) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), options, config).await
    }

    /// A server with this config (its principals and limits).
    pub async fn start_configured(config: Config) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, StoreOptions::default(), config).await
    }

    /// A server whose register lives at `location`, whatever the suites run on.
    pub async fn start_on(location: Location) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_at(
            dir,
            location,
            StoreOptions::default(),
            test_config(),
            "127.0.0.1:0",
        )
        .await
    }

    /// A server whose register lives at `location`, with this config.
    pub async fn start_on_configured(location: Location, config: Config) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_at(
            dir,
            location,
            StoreOptions::default(),
            config,
            "127.0.0.1:0",
        )
        .await
    }

    async fn start_in(dir: tempfile::TempDir, options: StoreOptions, config: Config) -> Self {
        let location = postgres::location_in(dir.path());
        Self::start_at(dir, location, options, config, "127.0.0.1:0").await
    }

    async fn start_at(
        dir: tempfile::TempDir,
        location: Location,
        options: StoreOptions,
        config: Config,
        address: &str,
    ) -> Self {
        // As `marr serve` opens it: on PostgreSQL, a node that takes turns with any others.
        let options = StoreOptions {
            serving: true,
            ..options
        };
        let opening = options.clone();
        let at = location.clone();
        let store = tokio::task::spawn_blocking(move || open_retrying_at(&at, opening))
            .await
            .expect("open task")
            .expect("store opens");
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        // Every test server has its web front too, on a port of its own.
        let web = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the web front");
        let web_url = format!("http://{}", web.local_addr().expect("address"));
        let (shutdown, stop) = oneshot::channel::<()>();
        let handle = tokio::spawn(marr::serve_with_web(
            listener,
            Some(web),
            store.clone(),
            config.clone(),
            async move {
                let _ = stop.await;
            },
        ));
        Self {
            url,
            web_url,
            store: Some(store),
            dir,
            location,
            options,
            config,
            shutdown: Some(shutdown),
            handle: Some(handle),
        }
    }

    /// The server's store, for what only the server itself does (the staleness sweep).
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("a running server has its store")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the server's register lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Graceful stop: drains calls, flushes the store and lets go of it.
    pub async fn stop(&mut self) {
        self.store = None;
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    /// Stops and starts again on the same data directory (on a new port).
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        self.store = None;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let location = self.location.clone();
        Self::start_at(
            dir,
            location,
            self.options.clone(),
            self.config.clone(),
            "127.0.0.1:0",
        )
        .await
    }

    /// Stops, waits a moment with nothing listening, and starts again on the same address, as
    /// a server restarted by its supervisor would.
    pub async fn restart_in_place(mut self, down_for: std::time::Duration) -> Self {
        self.stop().await;
        self.store = None;
        tokio::time::sleep(down_for).await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let address = self.url.trim_start_matches("http://").to_string();
        let location = self.location.clone();
        Self::start_at(
            dir,
            location,
            self.options.clone(),
            self.config.clone(),
            &address,
        )
        .await
    }

    pub async fn connect(&self) -> Connection {
        Connection::open(&self.url).await.expect("connects")
    }

    /// A server with the North East's real geography and three agencies:
    /// Newcastle's council, Northumbria Police and a health trust covering the region.
    pub async fn north_east() -> (Self, Connection) {
        Self::north_east_with(StoreOptions::default()).await
    }

    /// The North East server with these rule settings and clock.
    pub async fn north_east_with(options: StoreOptions) -> (Self, Connection) {
        Self::north_east_in(Self::start_with(options).await).await
    }

    /// The North East's geography and agencies on this server.
    pub async fn north_east_in(server: Self) -> (Self, Connection) {
        let connection = server.connect().await;
        north_east_directory(&connection).await;
        (server, connection)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Imports the North East's real geography and registers its three agencies: Newcastle's
/// council, Northumbria Police and a health trust covering the region.
pub async fn north_east_directory(connection: &Connection) {
    places::import_tables(connection, north_east_tables())
        .await
        .expect("import");
    for (id, kind, footprint) in [
        (
            NEWCASTLE,
            marr::domain::AgencyKind::ChildrenSocialCare,
            NEWCASTLE,
        ),
        (NORTHUMBRIA, marr::domain::AgencyKind::Police, NORTHUMBRIA),
        ("RTD", marr::domain::AgencyKind::Health, NORTH_EAST),
    ] {
        marr::cli::agencies::register(
            connection,
            id,
            kind,
            &format!("agency {id}"),
            &[footprint.to_string()],
        )
        .await
        .expect("register agency");
    }
}

/// A server whose store opens only when the test says so, as after a long log replay.
pub struct OpeningServer {
    pub url: String,
    open: Option<std::sync::mpsc::Sender<()>>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), marr::ServeError>>>,
    _dir: tempfile::TempDir,
}

impl OpeningServer {
    /// Listens at once (health NOT_SERVING) and waits for [`OpeningServer::open`].
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let path = dir.path().to_path_buf();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(marr::serve_opening(
            listener,
            None,
            move || {
                let _ = gate.recv();
                Store::open(&path)
            },
            test_config(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            url,
            open: Some(open),
            stop: Some(stop),
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Lets the store open.
    pub fn open(&mut self) {
        if let Some(open) = self.open.take() {
            open.send(()).expect("the server is waiting to open");
        }
    }

    /// Stops the server and checks that it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("task").expect("stops cleanly");
        }
    }
}

/// Waits until the server at `url` answers health checks with SERVING (it listens, answering
/// NOT_SERVING, while it opens its store).
pub async fn wait_until_serving(url: &str) {
    use tonic_health::pb::health_check_response::ServingStatus;
    for _ in 0..600 {
        if let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.to_string())
            && let Ok(channel) = endpoint.connect().await
            && let Ok(answer) = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
            && answer.into_inner().status == ServingStatus::Serving as i32
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server at {url} never said SERVING");
}

/// The log is gap-free, every projection agrees with it and the audit chain holds.
pub async fn assert_register_intact(store: &Store) {
    let checking = store.clone();
    let (problems, chain) = tokio::task::spawn_blocking(move || {
        (
            checking.verify_projections().expect("verify"),
            checking.verify_audit().expect("audit"),
        )
    })
    .await
    .expect("task");
    assert!(problems.is_empty(), "{problems:?}");
    assert!(chain.is_ok(), "{chain:?}");
}

/// Who is acting when a test drives the store directly.
pub fn operator() -> marr::domain::Actor {
    marr::domain::Actor::new("test operator", marr::domain::Role::Admin, "test")
}

/// A time `hours` before now.
pub fn hours_ago(hours: i64) -> Timestamp {
    let at = time::OffsetDateTime::now_utc() - time::Duration::hours(hours);
    marr::api::convert::timestamp(at)
}

/// A subject key derived from a number.
pub fn subject(n: u32) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("test subject {n}")))
}

/// A valid active record of Newcastle's council, last updated `updated_hours_ago`.
pub fn record(local_ref: &str, updated_hours_ago: i64) -> proto::RiskRecord {
    proto::RiskRecord {
        agency_id: NEWCASTLE.into(),
        local_ref: local_ref.into(),
        subject_key: subject(1),
        place_code: NEWCASTLE_WARD.into(),
        client_group: proto::ClientGroup::ChildProtectionPlan as i32,
        category: proto::RiskCategory::Neglect as i32,
        severity: proto::Severity::High as i32,
        status: proto::RecordStatus::Active as i32,
        assessed_at: Some(hours_ago(updated_hours_ago + 24)),
        source_updated_at: Some(hours_ago(updated_hours_ago)),
        lawful_basis: proto::LawfulBasis::ChildrenAct1989S47 as i32,
        note: "Referral from school nurse".into(),
    }
}

/// A record of `agency` at `place` about subject number `subject_n` (none if 0). The police
/// force's records are youth justice and criminal exploitation, under the Crime and Disorder Act.
pub fn rec(
    agency: &str,
    local_ref: &str,
    place: &str,
    subject_n: u32,
    severity: proto::Severity,
    hours: i64,
) -> proto::RiskRecord {
    let mut r = record(local_ref, hours);
    r.agency_id = agency.into();
    r.place_code = place.into();
    r.subject_key = if subject_n == 0 {
        String::new()
    } else {
        subject(subject_n)
    };
    r.severity = severity as i32;
    if agency == NORTHUMBRIA {
        r.lawful_basis = proto::LawfulBasis::CrimeAndDisorderAct1998S115 as i32;
        r.client_group = proto::ClientGroup::YouthJustice as i32;
        r.category = proto::RiskCategory::ChildCriminalExploitation as i32;
    }
    r
}

/// Pushes records in order, each run of one agency's records through one PushRecords stream
/// of that agency's system, and collects every answer (indexes count across the whole list).
pub async fn push_all(
    connection: &Connection,
    records: Vec<proto::RiskRecord>,
) -> Vec<proto::PushRecordsResponse> {
    let mut out = Vec::new();
    let mut records = records.into_iter().peekable();
    while let Some(first) = records.next() {
        let agency = first.agency_id.clone();
        let mut run = vec![first];
        while let Some(next) = records.next_if(|r| r.agency_id == agency) {
            run.push(next);
        }
        let offset = out.len() as u64;
        let pusher = connection
            .agencies
            .get(agency.as_str())
            .unwrap_or_else(|| connection.agency(NEWCASTLE));
        for mut answer in push_as(pusher, run).await {
            answer.index += offset;
            out.push(answer);
        }
    }
    out
}

/// Pushes records through one PushRecords stream on this connection.
pub async fn push_as(
    connection: &marr::cli::Connection,
    records: Vec<proto::RiskRecord>,
) -> Vec<proto::PushRecordsResponse> {
    let requests = tokio_stream::iter(
        records
            .into_iter()
            .map(|r| proto::PushRecordsRequest { record: Some(r) }),
    );
    let mut answers = connection
        .risk_register()
        .push_records(requests)
        .await
        .expect("push stream opens")
        .into_inner();
    let mut out = Vec::new();
    while let Some(answer) = answers.message().await.expect("push answer") {
        out.push(answer);
    }
    out
}

pub async fn head_of(
    connection: &Connection,
    agency: &str,
    local_ref: &str,
) -> Option<proto::RecordRevision> {
    match connection
        .agency(agency)
        .risk_register()
        .get_record(proto::GetRecordRequest {
            agency_id: agency.into(),
            local_ref: local_ref.into(),
        })
        .await
    {
        Ok(response) => response.into_inner().revision,
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("GetRecord failed: {status}"),
    }
}

/// A `marr serve` child process, killed if the test ends before it has exited.
pub struct ServeProcess(Option<std::process::Child>);

impl ServeProcess {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }

    /// Waits for the process to exit.
    pub fn wait(mut self) -> std::io::Result<std::process::ExitStatus> {
        match self.0.take() {
            Some(mut child) => child.wait(),
            None => Err(std::io::Error::other("already waited for")),
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `marr serve` as a child process with this config and data directory on a free
/// loopback port, its logs discarded; returns the process and the server's URL.
pub fn spawn_serve(config: &Path, data_dir: &Path) -> (ServeProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_marr"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(&listen)
        .arg("--data-dir")
        .arg(data_dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    (ServeProcess(Some(child)), format!("http://{listen}"))
}

/// Submits `record` as Newcastle's council and expects INVALID_ARGUMENT with a
/// `google.rpc.BadRequest` naming `field`; answers the refusal.
pub async fn refusal_naming(
    connection: &Connection,
    record: proto::RiskRecord,
    field: &str,
) -> tonic::Status {
    use tonic_types::StatusExt;
    let status = connection
        .risk_register()
        .submit_record(proto::SubmitRecordRequest {
            record: Some(record),
        })
        .await
        .expect_err("the record is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert!(
        fields.iter().any(|f| f == field),
        "expected a violation of {field}, got {fields:?}"
    );
    status
}

/// Opens a store, waiting for the lock of a handle dropped a moment ago: sled's background
/// flusher lets go of the directory's lock a moment after the last handle is dropped; a
/// restart in the same process waits for it, as a new process (which the lock dies with)
/// never has to. Blocking.
pub fn open_retrying(
    path: &std::path::Path,
    options: StoreOptions,
) -> Result<Store, marr::store::StoreError> {
    open_retrying_at(&Location::Sled(path.to_path_buf()), options)
}

/// [`open_retrying`] wherever the register lives.
pub fn open_retrying_at(
    location: &Location,
    options: StoreOptions,
) -> Result<Store, marr::store::StoreError> {
    let mut tries = 0;
    loop {
        match Store::open_at(location, options.clone()) {
            // sled's lock, or a PostgreSQL register's, let go a moment after the last handle.
            Err(error)
                if tries < 100
                    && (error.to_string().contains("acquire lock")
                        || error.to_string().contains("has this register open")) =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            opened => break opened,
        }
    }
}
