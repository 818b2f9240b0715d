//! Crash safety, proven: `marr serve` as a child process is killed with SIGKILL at a random
//! moment while clients push, read and raise alerts; after each kill the store must hold every
//! acknowledged revision exactly, with a gap-free log, projections that agree with it, a
//! gap-free alert log and an intact audit chain.
//!
//! CI runs 10 cycles; `MARR_CRASH_CYCLES=100 cargo test --test crash` runs the long form.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use marr::domain::RecordKey;
use marr::proto;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the server acknowledged: each record's revisions, with their sequences.
type Acknowledged = Arc<Mutex<BTreeMap<(String, String), BTreeMap<u32, u64>>>>;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn start(config: &std::path::Path, data: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_marr"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("marr serve starts")
}

async fn connect(url: &str) -> Connection {
    wait_until_serving(url).await;
    Connection::open(url).await.expect("connects")
}

/// A record of `agency` numbered `n`, at version `version` (hours back from now, so a larger
/// version is newer), sometimes critical so alerts are raised alongside.
fn crash_record(agency: &str, n: u32, version: i64) -> proto::RiskRecord {
    let place = if agency == NEWCASTLE {
        NEWCASTLE_WARD
    } else {
        GATESHEAD_WARD
    };
    let severity = match (n + version as u32) % 4 {
        0 => proto::Severity::Critical,
        1 => proto::Severity::High,
        _ => proto::Severity::Medium,
    };
    let mut r = rec(agency, &format!("K-{n}"), place, n % 50 + 1, severity, 0);
    let at = time::OffsetDateTime::now_utc() - time::Duration::days(30)
        + time::Duration::seconds(version);
    r.assessed_at = Some(marr::api::convert::timestamp(at - time::Duration::hours(1)));
    r.source_updated_at = Some(marr::api::convert::timestamp(at));
    r
}

/// Pushes streams of new records and updates as one agency until the server goes away,
/// noting every acknowledgement.
async fn pusher(
    connection: Connection,
    agency: &'static str,
    seed: u64,
    acknowledged: Acknowledged,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let client = connection.agency(agency).clone();
    loop {
        let batch: Vec<proto::RiskRecord> = (0..rng.random_range(1..200))
            .map(|_| {
                let n = rng.random_range(0..400);
                // A random version: older than the stored one is stale, newer a new revision.
                let version = rng.random_range(0..1_000_000);
                crash_record(agency, n, version)
            })
            .collect();
        let requests = tokio_stream::iter(
            batch
                .clone()
                .into_iter()
                .map(|r| proto::PushRecordsRequest { record: Some(r) }),
        );
        let Ok(answers) = client.risk_register().push_records(requests).await else {
            return;
        };
        let mut answers = answers.into_inner();
        loop {
            match answers.message().await {
                Ok(Some(answer)) => {
                    if answer.outcome == proto::Outcome::Accepted as i32 {
                        let record = &batch[answer.index as usize];
                        acknowledged
                            .lock()
                            .expect("lock")
                            .entry((record.agency_id.clone(), record.local_ref.clone()))
                            .or_default()
                            .insert(answer.revision, answer.sequence);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Reads records (each read is an audit event) until the server goes away.
async fn reader(connection: Connection, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let client = connection.agency(NEWCASTLE).clone();
    loop {
        let answer = client
            .risk_register()
            .get_record(proto::GetRecordRequest {
                agency_id: NEWCASTLE.into(),
                local_ref: format!("K-{}", rng.random_range(0..400)),
            })
            .await;
        if let Err(status) = answer
            && status.code() != tonic::Code::NotFound
        {
            return;
        }
    }
}

/// Opens the killed server's store and checks it against what was acknowledged.
async fn check(data: &std::path::Path, acknowledged: &Acknowledged, cycle: usize) -> u64 {
    let path = data.to_path_buf();
    let store = tokio::task::spawn_blocking(move || marr::store::Store::open(&path))
        .await
        .expect("open task")
        .expect("the store opens after SIGKILL");
    let expected = acknowledged.lock().expect("lock").clone();
    let checking = store.clone();
    let head = tokio::task::spawn_blocking(move || {
        for ((agency, local_ref), revisions) in &expected {
            let key = RecordKey::parse(agency, local_ref).expect("key");
            let history: BTreeMap<u32, u64> = checking
                .history(&key)
                .expect("history")
                .iter()
                .map(|r| (r.revision, r.sequence))
                .collect();
            for (revision, sequence) in revisions {
                assert_eq!(
                    history.get(revision),
                    Some(sequence),
                    "cycle {cycle}: acknowledged revision {revision} (sequence {sequence}) of {key} is missing"
                );
            }
        }
        let problems = checking.verify_projections().expect("verify");
        assert!(problems.is_empty(), "cycle {cycle}: {problems:?}");
        let chain = checking.verify_audit().expect("audit");
        assert!(chain.is_ok(), "cycle {cycle}: {chain:?}");
        checking.head_sequence()
    })
    .await
    .expect("check task");
    store.close().await.expect("close");
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_sigkill_at_any_moment() {
    let cycles: usize = std::env::var("MARR_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("MARR_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("crash test: {cycles} cycles, MARR_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("marr.toml");
    std::fs::write(
        &config,
        format!(
            "{}[limits]\ncalls_per_second = 1000000\nburst = 1000000\n",
            principals_toml()
        ),
    )
    .expect("config");
    let data = dir.path().join("store");
    let acknowledged: Acknowledged = Arc::default();
    let mut last_head = 0;
    for cycle in 0..cycles {
        let port = free_port();
        let mut child = start(&config, &data, port);
        let connection = connect(&format!("http://127.0.0.1:{port}")).await;
        if cycle == 0 {
            marr::cli::places::import_tables(&connection, north_east_tables())
                .await
                .expect("import");
            for (id, kind, footprint) in [
                (
                    NEWCASTLE,
                    marr::domain::AgencyKind::ChildrenSocialCare,
                    NEWCASTLE,
                ),
                (NORTHUMBRIA, marr::domain::AgencyKind::Police, NORTHUMBRIA),
            ] {
                marr::cli::agencies::register(&connection, id, kind, id, &[footprint.to_string()])
                    .await
                    .expect("register");
            }
        }
        let workers = vec![
            tokio::spawn(pusher(
                connection.clone(),
                NEWCASTLE,
                rng.random(),
                Arc::clone(&acknowledged),
            )),
            tokio::spawn(pusher(
                connection.clone(),
                NORTHUMBRIA,
                rng.random(),
                Arc::clone(&acknowledged),
            )),
            tokio::spawn(reader(connection.clone(), rng.random())),
        ];
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        child.kill().expect("SIGKILL");
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        for worker in workers {
            let _ = worker.await;
        }
        drop(connection);
        let head = check(&data, &acknowledged, cycle).await;
        assert!(head >= last_head, "cycle {cycle}: the log went backwards");
        last_head = head;
    }
    let acknowledged = acknowledged.lock().expect("lock");
    let revisions: usize = acknowledged.values().map(BTreeMap::len).sum();
    println!("{cycles} kills survived: {revisions} acknowledged revisions, log head {last_head}");
    assert!(revisions > 0, "the clients got acknowledgements to check");
}
