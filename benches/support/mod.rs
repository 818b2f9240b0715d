//! What the benchmarks share: a server config with the principals they act as, the real
//! geography, a nation of agencies and records drawn from a seeded generator, and the
//! measures (percentiles, memory, disk).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use marr::cli::places;
use marr::config::Config;
use marr::domain::lookup::LookupTable;
use marr::domain::*;
use marr::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Digest;
use time::OffsetDateTime;

pub const ADMIN_TOKEN: &str = "bench-admin";
pub const AGENCY_TOKEN: &str = "bench-agency";
pub const INSPECTOR_TOKEN: &str = "bench-inspector";

/// The ward lookup: every ward with its district, county, region and country (2019).
pub const WARDS: &str = "ward-lad-county-region-country-2019.csv";
/// The police lookup: every district with its community safety partnership and force area.
pub const POLICE: &str = "lad-csp-police-force-area-2019.csv";
/// Records go through the writer with at most this many waiting for their answers, so that it
/// always has a full batch to commit.
const LOAD_IN_FLIGHT: usize = 8192;

/// A config with an administrator, an inspector for England and one agency's system, and
/// limits no benchmark reaches.
pub fn config(agency: &str) -> Config {
    let text = config_text(&[("agency".into(), agency.into(), AGENCY_TOKEN.into())]);
    let config: Config = toml::from_str(&text).expect("bench config parses");
    config.check().expect("bench config is valid");
    config
}

/// A config file's text with the administrator, the inspector for England and a system for
/// each of these agencies (its token from [`agency_token`]), as `marr serve --config` reads it.
pub fn national_config_text(agencies: &[Agency]) -> String {
    let systems: Vec<(String, String, String)> = agencies
        .iter()
        .map(|a| {
            let id = a.id.to_string();
            (format!("agency {id}"), id.clone(), agency_token(&id))
        })
        .collect();
    config_text(&systems)
}

/// The bearer token of an agency's system in [`national_config_text`].
pub fn agency_token(agency: &str) -> String {
    format!("{AGENCY_TOKEN}-{agency}")
}

/// Principals (name, agency, token) of agencies' systems, beside the administrator and the
/// inspector.
fn config_text(systems: &[(String, String, String)]) -> String {
    let hash = |token: &str| hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let mut text = format!(
        "[[principal]]\nname = \"admin\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\
         [[principal]]\nname = \"inspector\"\nrole = \"inspector\"\nplaces = [\"E92000001\"]\ntoken_sha256 = \"{}\"\n",
        hash(ADMIN_TOKEN),
        hash(INSPECTOR_TOKEN),
    );
    for (name, agency, token) in systems {
        text.push_str(&format!(
            "[[principal]]\nname = \"{name}\"\nrole = \"agency\"\nagency = \"{agency}\"\ntoken_sha256 = \"{}\"\n",
            hash(token)
        ));
    }
    text.push_str(
        "[limits]\ncalls_per_second = 1000000\nburst = 1000000\nmax_concurrent_calls = 100000\n",
    );
    text
}

/// Who acts when a benchmark drives the store directly.
pub fn operator() -> Actor {
    Actor::new("benchmark loader", Role::Admin, "benchmark")
}

/// A file of the shared ONS lookups.
pub fn geography_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/geography")
        .join(name)
}

/// A table of the shared ONS lookups.
pub fn geography(name: &str) -> LookupTable {
    places::read_table(&geography_file(name)).expect("lookup readable")
}

/// One district's real wards: the ward lookup's rows for it, and their codes.
pub fn wards_of(district: &str) -> (Vec<LookupTable>, Vec<String>) {
    let mut wards = geography(WARDS);
    wards.rows.retain(|row| row.cells[3] == district);
    let codes = wards.rows.iter().map(|row| row.cells[1].clone()).collect();
    (vec![wards], codes)
}

pub fn code(c: &str) -> PlaceCode {
    PlaceCode::parse(c).expect("code")
}

/// The `p` quantile of sorted durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// This process's resident memory, in MiB.
pub fn rss_mib() -> f64 {
    rss_mib_at(Path::new("/proc/self/status"))
}

/// Another process's resident memory, in MiB (0 when it is gone).
pub fn rss_mib_of(pid: u32) -> f64 {
    rss_mib_at(&PathBuf::from(format!("/proc/{pid}/status")))
}

fn rss_mib_at(status: &Path) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Bytes of every file below a directory.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A district with its real wards, and who reports there.
pub struct District {
    pub code: String,
    pub country: String,
    /// Its police force area, where it has one in the police lookup.
    pub force: Option<String>,
    pub wards: Vec<String>,
}

impl District {
    /// The agencies whose records sit here: its council, its country's health body and its
    /// police force.
    fn reporters(&self) -> Vec<String> {
        let mut reporters = vec![self.code.clone(), health_body(&self.country)];
        reporters.extend(self.force.clone());
        reporters
    }
}

/// One health body per country, reporting anywhere in it.
fn health_body(country: &str) -> String {
    format!("H{}", &country[..3])
}

/// The real geography of England and Wales (every ward, district and police force area) and
/// its agencies: a council for every district, a force for every force area and a health body
/// for each country.
pub struct Nation {
    pub wards: LookupTable,
    pub police: LookupTable,
    /// In code order.
    pub districts: Vec<District>,
    pub total_wards: usize,
}

impl Nation {
    pub fn read() -> Self {
        let wards = geography(WARDS);
        let police = geography(POLICE);
        let force_of: std::collections::BTreeMap<&str, &str> = police
            .rows
            .iter()
            .map(|r| (r.cells[1].as_str(), r.cells[5].as_str()))
            .collect();
        let mut districts: std::collections::BTreeMap<String, District> = Default::default();
        for row in &wards.rows {
            districts
                .entry(row.cells[3].clone())
                .or_insert_with(|| District {
                    code: row.cells[3].clone(),
                    country: row.cells[9].clone(),
                    force: force_of.get(row.cells[3].as_str()).map(|f| f.to_string()),
                    wards: Vec::new(),
                })
                .wards
                .push(row.cells[1].clone());
        }
        let total_wards = wards.rows.len();
        Self {
            wards,
            police,
            districts: districts.into_values().collect(),
            total_wards,
        }
    }

    /// The tables to import, police first so the force areas are known to the wards.
    pub fn tables(&self) -> Vec<LookupTable> {
        vec![self.police.clone(), self.wards.clone()]
    }

    /// Every agency once, in the order the districts first name them.
    pub fn agencies(&self) -> Vec<Agency> {
        let mut seen = std::collections::BTreeSet::new();
        let mut agencies = Vec::new();
        for district in &self.districts {
            let mut here = vec![(
                district.code.clone(),
                AgencyKind::ChildrenSocialCare,
                district.code.clone(),
            )];
            if let Some(force) = &district.force {
                here.push((force.clone(), AgencyKind::Police, force.clone()));
            }
            here.push((
                health_body(&district.country),
                AgencyKind::Health,
                district.country.clone(),
            ));
            for (id, kind, footprint) in here {
                if seen.insert(id.clone()) {
                    agencies.push(Agency {
                        id: AgencyId::parse(&id).expect("id"),
                        kind,
                        name: id,
                        footprint: vec![code(&footprint)],
                    });
                }
            }
        }
        agencies
    }

    /// Imports the geography into a store and registers every agency.
    pub async fn set_up(&self, store: &Store) {
        store
            .import_places(self.tables(), operator())
            .await
            .expect("import");
        for agency in self.agencies() {
            store
                .register_agency(agency, operator())
                .await
                .expect("register");
        }
    }

    /// About `count` records (a little fewer, from rounding), spread over the districts in
    /// proportion to their wards, each at a random ward of its district from a random agency
    /// that covers it, 85% active, updated up to about 14 months before `now`. Subjects recur
    /// within a district, so some are known to several agencies there. The same seed gives
    /// the same records.
    pub fn records(&self, count: usize, seed: u64, now: OffsetDateTime) -> Records<'_> {
        Records {
            nation: self,
            count,
            rng: StdRng::seed_from_u64(seed),
            now,
            next_district: 0,
            district: 0,
            share: 0,
            left: 0,
            reporters: Vec::new(),
            n: 0,
        }
    }
}

/// The records of [`Nation::records`], drawn as they are read.
pub struct Records<'a> {
    nation: &'a Nation,
    count: usize,
    rng: StdRng,
    now: OffsetDateTime,
    next_district: usize,
    district: usize,
    share: usize,
    left: usize,
    reporters: Vec<String>,
    n: usize,
}

impl Iterator for Records<'_> {
    type Item = RiskRecord;

    fn next(&mut self) -> Option<RiskRecord> {
        while self.left == 0 {
            let district = self.nation.districts.get(self.next_district)?;
            self.district = self.next_district;
            self.next_district += 1;
            self.share = self.count * district.wards.len() / self.nation.total_wards;
            self.left = self.share;
            self.reporters = district.reporters();
        }
        self.left -= 1;
        self.n += 1;
        let wards = &self.nation.districts[self.district].wards;
        let rng = &mut self.rng;
        let agency = &self.reporters[rng.random_range(0..self.reporters.len())];
        let subject =
            (self.district * 1_000_000 + rng.random_range(0..self.share.max(2) / 2)).to_le_bytes();
        let updated = self.now - time::Duration::hours(rng.random_range(1..10_000));
        Some(RiskRecord {
            key: RecordKey::parse(agency, &format!("R{:08}", self.n)).expect("key"),
            subject: Some(SubjectKey::from_bytes(sha2::Sha256::digest(subject).into())),
            place: code(&wards[rng.random_range(0..wards.len())]),
            client_group: ClientGroup::ALL[rng.random_range(0..7)],
            category: RiskCategory::ALL[rng.random_range(0..16)],
            severity: Severity::ALL[rng.random_range(0..4)],
            status: if rng.random_bool(0.85) {
                RecordStatus::Active
            } else {
                RecordStatus::Closed
            },
            assessed_at: updated - time::Duration::hours(2),
            source_updated_at: updated,
            lawful_basis: LawfulBasis::ChildrenAct1989S17,
            note: String::new(),
        })
    }
}

/// Loads records through the store's writer, many queued at once so that it group-commits;
/// returns once every one is durable.
pub async fn load(store: &Store, records: impl Iterator<Item = RiskRecord>) {
    let loader = Arc::new(operator());
    let mut pending = Vec::with_capacity(LOAD_IN_FLIGHT);
    for record in records {
        store.check_record(&record).expect("valid");
        pending.push(
            store
                .enqueue(record, Arc::clone(&loader))
                .await
                .expect("queued"),
        );
        if pending.len() >= LOAD_IN_FLIGHT {
            for answer in pending.drain(..) {
                answer.await.expect("answer").expect("written");
            }
        }
    }
    for answer in pending {
        answer.await.expect("answer").expect("written");
    }
}

/// `count` active records of Newcastle's council over `wards`, each with a subject key: the
/// ingest benchmarks' records.
pub fn council_records(count: usize, wards: &[String]) -> Vec<marr::proto::RiskRecord> {
    use marr::api::convert::timestamp;
    let now = OffsetDateTime::now_utc();
    (0..count)
        .map(|i| marr::proto::RiskRecord {
            agency_id: NEWCASTLE.into(),
            local_ref: format!("NCC-{i:08}"),
            subject_key: hex::encode(sha2::Sha256::digest(i.to_le_bytes())),
            place_code: wards[i % wards.len()].clone(),
            client_group: ClientGroup::ALL[i % 7].number(),
            category: RiskCategory::ALL[i % 16].number(),
            severity: Severity::ALL[i % 4].number(),
            status: RecordStatus::Active.number(),
            assessed_at: Some(timestamp(now - time::Duration::days(3))),
            source_updated_at: Some(timestamp(now - time::Duration::days(2))),
            lawful_basis: LawfulBasis::ChildrenAct1989S17.number(),
            note: "Home visit arranged".into(),
        })
        .collect()
}

/// Newcastle upon Tyne, the council of the ingest benchmarks.
pub const NEWCASTLE: &str = "E08000021";

/// A real server on 127.0.0.1 over `store`, with `tables` imported and Newcastle's council
/// registered, and connections as its principals.
pub struct CouncilServer {
    pub store: Store,
    pub admin: marr::cli::Connection,
    pub agency: marr::cli::Connection,
    pub inspector: marr::cli::Connection,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), marr::ServeError>>,
}

impl CouncilServer {
    pub async fn start(store: Store, tables: Vec<LookupTable>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(marr::serve(
            listener,
            store.clone(),
            config(NEWCASTLE),
            async move {
                let _ = stopped.await;
            },
        ));
        let public = marr::cli::Connection::open(&marr::cli::ServerArgs::plain(url))
            .await
            .expect("connect");
        let admin = public.with_token(ADMIN_TOKEN).expect("token");
        places::import_tables(&admin, tables).await.expect("import");
        marr::cli::agencies::register(
            &admin,
            NEWCASTLE,
            AgencyKind::ChildrenSocialCare,
            "Newcastle",
            &[NEWCASTLE.into()],
        )
        .await
        .expect("agency");
        Self {
            store,
            agency: public.with_token(AGENCY_TOKEN).expect("token"),
            inspector: public.with_token(INSPECTOR_TOKEN).expect("token"),
            admin,
            stop,
            server,
        }
    }

    /// Pushes `records` on one stream, timed until the last durable answer; every one must
    /// be accepted. Answers the time and the batches the writer committed for them.
    pub async fn push(&self, records: &[marr::proto::RiskRecord]) -> (Duration, u64) {
        use marr::proto;
        let batches_before = self.store.batches_committed();
        let requests: Vec<proto::PushRecordsRequest> = records
            .iter()
            .cloned()
            .map(|r| proto::PushRecordsRequest { record: Some(r) })
            .collect();
        let start = std::time::Instant::now();
        let mut answers = self
            .agency
            .risk_register()
            .push_records(tokio_stream::iter(requests))
            .await
            .expect("stream")
            .into_inner();
        let mut accepted = 0;
        while let Some(answer) = answers.message().await.expect("answer") {
            if answer.outcome == proto::Outcome::Accepted as i32 {
                accepted += 1;
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(accepted, records.len(), "every record accepted");
        (elapsed, self.store.batches_committed() - batches_before)
    }

    /// Stops the server and lets go of the store.
    pub async fn stop(self) {
        let Self {
            store,
            admin,
            agency,
            inspector,
            stop,
            server,
        } = self;
        drop((admin, agency, inspector, store));
        let _ = stop.send(());
        server.await.expect("server").expect("stops");
    }
}
