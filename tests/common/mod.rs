//! A real server on 127.0.0.1:0 with sled in a temporary directory, and helpers to feed it
//! real geography from the shared ONS lookups.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use marr::cli::{Connection, ServerArgs, places};
use marr::config::Config;
use marr::domain::lookup::LookupTable;
use marr::proto;
use marr::store::{Store, StoreOptions};
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

pub struct TestServer {
    pub url: String,
    /// Taken away before a restart: sled lets one handle at a time hold the directory.
    store: Option<Store>,
    dir: tempfile::TempDir,
    options: StoreOptions,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), marr::ServeError>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(StoreOptions::default()).await
    }

    /// A server whose store has these rule settings and clock.
    pub async fn start_with(options: StoreOptions) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), options).await
    }

    async fn start_in(dir: tempfile::TempDir, options: StoreOptions) -> Self {
        Self::start_at(dir, options, "127.0.0.1:0").await
    }

    async fn start_at(dir: tempfile::TempDir, options: StoreOptions, address: &str) -> Self {
        let path = dir.path().to_path_buf();
        let opening = options.clone();
        let store = tokio::task::spawn_blocking(move || Store::open_with(&path, opening))
            .await
            .expect("open task")
            .expect("store opens");
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (shutdown, stop) = oneshot::channel::<()>();
        let handle = tokio::spawn(marr::serve(
            listener,
            store.clone(),
            Config::default(),
            async move {
                let _ = stop.await;
            },
        ));
        Self {
            url,
            store: Some(store),
            dir,
            options,
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

    /// Graceful stop: drains calls, flushes the store.
    pub async fn stop(&mut self) {
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
        Self::start_in(dir, self.options.clone()).await
    }

    /// Stops, waits a moment with nothing listening, and starts again on the same address, as
    /// a server restarted by its supervisor would.
    pub async fn restart_in_place(mut self, down_for: std::time::Duration) -> Self {
        self.stop().await;
        self.store = None;
        tokio::time::sleep(down_for).await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let address = self.url.trim_start_matches("http://").to_string();
        Self::start_at(dir, self.options.clone(), &address).await
    }

    pub async fn connect(&self) -> Connection {
        Connection::open(&ServerArgs::plain(self.url.clone()))
            .await
            .expect("connects")
    }

    /// A server with the North East's real geography and three agencies:
    /// Newcastle's council, Northumbria Police and a health trust covering the region.
    pub async fn north_east() -> (Self, Connection) {
        Self::north_east_with(StoreOptions::default()).await
    }

    /// The North East server with these rule settings and clock.
    pub async fn north_east_with(options: StoreOptions) -> (Self, Connection) {
        let server = Self::start_with(options).await;
        let connection = server.connect().await;
        places::import_tables(&connection, north_east_tables())
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
                &connection,
                id,
                kind,
                &format!("agency {id}"),
                &[footprint.to_string()],
            )
            .await
            .expect("register agency");
        }
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

/// Pushes records through one PushRecords stream and collects every answer.
pub async fn push_all(
    connection: &Connection,
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
