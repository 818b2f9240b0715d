//! What security costs: unary and streaming throughput through the full server (mutual TLS,
//! bearer tokens, the guard, the audit chain) against the same services over plain text with
//! no guard at all, in one run.
//!
//! `cargo bench --bench security` (MARR_BENCH_RECORDS sets the stream's records, default
//! 50000; MARR_BENCH_CALLS the unary calls, default 5000).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use marr::api::convert::timestamp;
use marr::auth::{Caller, Principal, policy};
use marr::cli::{Connection, ServerArgs};
use marr::config::TlsConfig;
use marr::domain::{AgencyId, AgencyKind, Role, Vocabulary};
use marr::proto;
use marr::proto::risk_register_server::RiskRegisterServer;
use marr::store::Store;
use sha2::Digest;
use time::OffsetDateTime;
use tokio::sync::oneshot;

const NEWCASTLE: &str = "E08000021";
const ROUNDS: usize = 5;
/// Unary calls in flight at once, as a partner system's worker pool would make them.
const CONCURRENCY: usize = 32;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn records(prefix: &str, count: usize, wards: &[String]) -> Vec<proto::RiskRecord> {
    let now = OffsetDateTime::now_utc();
    (0..count)
        .map(|i| proto::RiskRecord {
            agency_id: NEWCASTLE.into(),
            local_ref: format!("{prefix}-{i:08}"),
            subject_key: hex::encode(sha2::Sha256::digest(format!("{prefix}{i}"))),
            place_code: wards[i % wards.len()].clone(),
            client_group: marr::domain::ClientGroup::ALL[i % 7].number(),
            category: marr::domain::RiskCategory::ALL[i % 16].number(),
            severity: marr::domain::Severity::ALL[i % 3].number(),
            status: marr::domain::RecordStatus::Active.number(),
            assessed_at: Some(timestamp(now - time::Duration::days(3))),
            source_updated_at: Some(timestamp(now - time::Duration::days(2))),
            lawful_basis: marr::domain::LawfulBasis::ChildrenAct1989S17.number(),
            note: "Home visit arranged".into(),
        })
        .collect()
}

/// A running server and the connection of Newcastle's system to it.
struct Running {
    agency: Connection,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        drop(self.agency);
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

async fn store_with_newcastle(dir: &Path) -> Store {
    let store = Store::open(dir).expect("store");
    store
        .import_places(support::wards_of(NEWCASTLE).0, support::operator())
        .await
        .expect("import");
    store
        .register_agency(
            marr::domain::Agency {
                id: AgencyId::parse(NEWCASTLE).expect("id"),
                kind: AgencyKind::ChildrenSocialCare,
                name: "Newcastle".into(),
                footprint: vec![marr::domain::PlaceCode::parse(NEWCASTLE).expect("code")],
            },
            support::operator(),
        )
        .await
        .expect("agency");
    store
}

/// The baseline: the RiskRegister service over plain text, every call taken as Newcastle's
/// system without credentials, limits or audit of reads.
async fn plain_unguarded() -> Running {
    let dir = tempfile::tempdir().expect("dir");
    let store = store_with_newcastle(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let principal = Arc::new(Principal {
        name: "newcastle".into(),
        role: Role::Agency,
        agency: Some(AgencyId::parse(NEWCASTLE).expect("id")),
        places: Vec::new(),
    });
    let trusted = tower::layer::layer_fn(move |inner| Trusted {
        inner,
        principal: Arc::clone(&principal),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // Refusals are the only events the baseline could record; its limits never bind.
    let trail = Arc::new(marr::app::AuditTrail::new(
        store.clone(),
        std::num::NonZeroU32::MAX,
        std::num::NonZeroU32::MAX,
    ));
    let application = marr::app::Application::new(store.clone(), trail);
    let service = RiskRegisterServer::new(marr::api::risk_register::RiskRegisterService::new(
        application,
    ));
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(trusted)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        store.close().await.expect("close");
    });
    let agency = Connection::open(&ServerArgs::plain(url))
        .await
        .expect("connect");
    Running {
        agency,
        stop,
        server,
        _dir: dir,
    }
}

/// The register as `marr serve` runs it: a bearer token, the guard and the audit chain, over
/// mutual TLS when `certs` is given.
async fn secured(certs: Option<&Path>) -> Running {
    let dir = tempfile::tempdir().expect("dir");
    let store = store_with_newcastle(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut config = support::config(NEWCASTLE);
    config.tls = certs.map(|certs| TlsConfig {
        cert: certs.join("server.pem"),
        key: certs.join("server.key"),
        client_ca: Some(certs.join("ca.pem")),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        marr::serve(listener, store, config, async move {
            let _ = stopped.await;
        })
        .await
        .expect("serves");
    });
    let mut args = ServerArgs::plain(format!("http://127.0.0.1:{port}"));
    if let Some(certs) = certs {
        args.server = format!("https://localhost:{port}");
        args.ca = Some(certs.join("ca.pem"));
        args.cert = Some(certs.join("client-bench-client.pem"));
        args.key = Some(certs.join("client-bench-client.key"));
    }
    args.token = Some(support::AGENCY_TOKEN.into());
    let agency = Connection::open(&args).await.expect("connect");
    Running {
        agency,
        stop,
        server,
        _dir: dir,
    }
}

/// Takes every call as Newcastle's system: what the guard would attach, without the guard.
#[derive(Clone)]
struct Trusted<S> {
    inner: S,
    principal: Arc<Principal>,
}

impl<S, B> tower::Service<http::Request<B>> for Trusted<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(rule) = policy::rule_for(request.uri().path()) {
            request.extensions_mut().insert(Caller::new(
                Arc::clone(&self.principal),
                rule,
                "the benchmark",
            ));
        }
        self.inner.call(request)
    }
}

/// SubmitRecord, `CONCURRENCY` calls in flight, every record accepted.
async fn unary_submit(agency: &Connection, records: Vec<proto::RiskRecord>) -> Duration {
    let start = Instant::now();
    let records = Arc::new(tokio::sync::Mutex::new(records));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let mut client = agency.risk_register();
        let records = Arc::clone(&records);
        workers.push(tokio::spawn(async move {
            while let Some(record) = records.lock().await.pop() {
                let answer = client
                    .submit_record(proto::SubmitRecordRequest {
                        record: Some(record),
                    })
                    .await
                    .expect("submitted")
                    .into_inner();
                assert_eq!(answer.outcome, proto::Outcome::Accepted as i32);
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    start.elapsed()
}

/// GetRecord, `CONCURRENCY` calls in flight: a record-level read, which the guard records in
/// the audit chain before answering.
async fn unary_read(agency: &Connection, local_refs: Vec<String>) -> Duration {
    let start = Instant::now();
    let refs = Arc::new(tokio::sync::Mutex::new(local_refs));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let mut client = agency.risk_register();
        let refs = Arc::clone(&refs);
        workers.push(tokio::spawn(async move {
            while let Some(local_ref) = refs.lock().await.pop() {
                client
                    .get_record(proto::GetRecordRequest {
                        agency_id: NEWCASTLE.into(),
                        local_ref,
                    })
                    .await
                    .expect("read");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    start.elapsed()
}

/// One PushRecords stream, timed to the last durable acknowledgement.
async fn stream(agency: &Connection, records: Vec<proto::RiskRecord>) -> Duration {
    let count = records.len();
    let requests: Vec<_> = records
        .into_iter()
        .map(|r| proto::PushRecordsRequest { record: Some(r) })
        .collect();
    let start = Instant::now();
    let mut answers = agency
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
    assert_eq!(accepted, count);
    start.elapsed()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

#[derive(Clone, Copy)]
enum Workload {
    Write,
    Read,
    Stream,
}

/// How the server under test is set up.
#[derive(Clone, Copy)]
enum Setup<'a> {
    /// Plain text, no guard: the baseline.
    Unguarded,
    /// Plain text with a token, the guard and the audit chain.
    Guarded,
    /// Mutual TLS with a token, the guard and the audit chain: as deployed.
    GuardedTls(&'a Path),
}

async fn measure(path: Workload, setup: Setup<'_>, calls: usize, streamed: usize) -> f64 {
    let (_, wards) = support::wards_of(NEWCASTLE);
    let mut rates = Vec::new();
    for round in 0..ROUNDS {
        let running = match setup {
            Setup::Unguarded => plain_unguarded().await,
            Setup::Guarded => secured(None).await,
            Setup::GuardedTls(certs) => secured(Some(certs)).await,
        };
        let rate = match path {
            Workload::Write => {
                let batch = records(&format!("U{round}"), calls, &wards);
                calls as f64 / unary_submit(&running.agency, batch).await.as_secs_f64()
            }
            Workload::Read => {
                let batch = records(&format!("R{round}"), calls, &wards);
                let refs = batch.iter().map(|r| r.local_ref.clone()).collect();
                stream(&running.agency, batch).await;
                calls as f64 / unary_read(&running.agency, refs).await.as_secs_f64()
            }
            Workload::Stream => {
                let batch = records(&format!("S{round}"), streamed, &wards);
                streamed as f64 / stream(&running.agency, batch).await.as_secs_f64()
            }
        };
        rates.push(rate);
        running.stop().await;
    }
    median(rates)
}

fn main() {
    let calls = env_count("MARR_BENCH_CALLS", 5_000);
    let streamed = env_count("MARR_BENCH_RECORDS", 50_000);
    let certs = tempfile::tempdir().expect("dir");
    marr::cli::dev_certs::write(certs.path(), &["bench-client".to_string()]).expect("certs");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "security cost: {calls} unary calls ({CONCURRENCY} in flight), one stream of {streamed} records, median of {ROUNDS}"
    );
    println!(
        "| path | plain text, no guard (per s) | token + guard + audit, plain text | ratio | the same over mutual TLS | ratio |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, path) in [
        ("SubmitRecord (unary write)", Workload::Write),
        (
            "GetRecord (unary record-level read, audited)",
            Workload::Read,
        ),
        ("PushRecords (stream)", Workload::Stream),
    ] {
        let plain = runtime.block_on(measure(path, Setup::Unguarded, calls, streamed));
        let guarded = runtime.block_on(measure(path, Setup::Guarded, calls, streamed));
        let tls = runtime.block_on(measure(
            path,
            Setup::GuardedTls(certs.path()),
            calls,
            streamed,
        ));
        println!(
            "| {name} | {plain:.0} | {guarded:.0} | {:.2} | {tls:.0} | {:.2} |",
            guarded / plain,
            tls / plain
        );
    }
}
