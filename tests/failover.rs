//! Failover without loss: the register on a PostgreSQL primary with a synchronous standby,
//! served by two marr nodes, two agencies pushing (one through each node) and a board
//! watching on each node, the primary killed at a random moment and the standby promoted.
//! Every acknowledged revision is there with its sequence, the log is gap-free, each watcher
//! saw every alert once and in order, the audit chain holds, and both nodes went back to
//! taking writes by themselves.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::postgres::Cluster;
use common::*;
use marr::proto;
use marr::proto::watch_response::Event;
use marr::store::{Location, PostgresOptions};
use rand::Rng;

/// Pushes records of `agency` one at a time until told to stop, retrying a record the server
/// answered UNAVAILABLE (a failover under way) until it is acknowledged; answers every
/// acknowledged (agency, local reference, revision, sequence).
async fn keep_pushing(
    connection: marr::cli::Connection,
    agency: &'static str,
    place: &'static str,
    stop: Arc<AtomicBool>,
) -> Vec<(&'static str, String, u32, u64)> {
    let mut acknowledged = Vec::new();
    let mut n = 0u32;
    while !stop.load(Ordering::SeqCst) {
        // Every fifth record is critical, and raises an alert.
        let severity = if n.is_multiple_of(5) {
            proto::Severity::Critical
        } else {
            proto::Severity::High
        };
        let local_ref = format!("F-{}", n % 40);
        let mut record = rec(agency, &local_ref, place, n % 7 + 1, severity, 2);
        record.note = format!("Visit {n}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let pushed = connection
                .risk_register()
                .push_records(tokio_stream::iter([proto::PushRecordsRequest {
                    record: Some(record.clone()),
                }]))
                .await;
            let answer = match pushed {
                Ok(stream) => stream.into_inner().message().await,
                Err(status) => Err(status),
            };
            match answer {
                Ok(Some(answer)) => {
                    assert!(
                        answer.outcome == proto::Outcome::Accepted as i32
                            || answer.outcome == proto::Outcome::Unchanged as i32,
                        "{answer:?}"
                    );
                    acknowledged.push((
                        agency,
                        local_ref.clone(),
                        answer.revision,
                        answer.sequence,
                    ));
                    break;
                }
                Ok(None) => panic!("no answer to a push"),
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    assert!(
                        Instant::now() < deadline,
                        "still unavailable a minute into the failover: {status}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("a push failed other than UNAVAILABLE: {status}"),
            }
        }
        n += 1;
    }
    acknowledged
}

/// Watches every alert the board may see from the start, resuming from its cursor after each error, until it
/// has seen `until` (set once the pushers have stopped).
async fn watch(
    alerts: proto::alerts_client::AlertsClient<marr::cli::Authenticated>,
    until: Arc<std::sync::atomic::AtomicU64>,
) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut cursor = 0u64;
    loop {
        let target = until.load(Ordering::SeqCst);
        if target != u64::MAX && cursor >= target {
            return seen;
        }
        let Ok(stream) = alerts
            .clone()
            .watch(proto::WatchRequest {
                from_sequence: cursor,
                filter: None,
            })
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        loop {
            let target = until.load(Ordering::SeqCst);
            if target != u64::MAX && cursor >= target {
                return seen;
            }
            match tokio::time::timeout(Duration::from_secs(2), stream.message()).await {
                Ok(Ok(Some(message))) => match message.event {
                    Some(Event::Alert(alert)) => {
                        assert!(alert.sequence > cursor, "an alert twice or out of order");
                        cursor = alert.sequence;
                        seen.push(alert.sequence);
                    }
                    Some(Event::Heartbeat(_)) | None => {}
                },
                Ok(_) => break,
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_primary_mid_ingest_and_promoting_the_standby_loses_nothing_acknowledged() {
    let (primary, standby, url) = tokio::task::spawn_blocking(|| {
        let primary = Cluster::start(&["wal_level = replica", "max_wal_senders = 4"]);
        primary.create_database("register");
        let standby = primary.standby();
        // Only now that a standby follows: from here a commit waits for it.
        common::postgres::psql(
            &primary.url("postgres"),
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
        );
        common::postgres::psql(&primary.url("postgres"), "SELECT pg_reload_conf()");
        let url = format!(
            "postgresql://marr@127.0.0.1:{},127.0.0.1:{}/register?target_session_attrs=read-write",
            primary.port, standby.port
        );
        (primary, standby, url)
    })
    .await
    .expect("clusters");
    let location = Location::Postgres(PostgresOptions::new(url.clone()));
    let first = TestServer::start_on(location.clone()).await;
    let second = TestServer::start_on(location).await;
    let (first, connection) = TestServer::north_east_in(first).await;
    let through_second = second.connect().await;

    let stop = Arc::new(AtomicBool::new(false));
    let until = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    // The North East's board, on each node: every alert of this register is within its places.
    let watchers = [&connection, &through_second]
        .map(|node| tokio::spawn(watch(node.alerts(), Arc::clone(&until))));
    let pushers = [
        (&connection, NEWCASTLE, NEWCASTLE_WARD),
        (&through_second, NORTHUMBRIA, GATESHEAD_WARD),
    ]
    .map(|(node, agency, place)| {
        tokio::spawn(keep_pushing(
            node.agency(agency).clone(),
            agency,
            place,
            Arc::clone(&stop),
        ))
    });
    let head = || {
        first
            .store()
            .head_sequence()
            .max(second.store().head_sequence())
    };

    // The primary dies at a random moment of the ingest.
    let wait = rand::rng().random_range(300..1500);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let before = head();
    let killed = Instant::now();
    tokio::task::spawn_blocking(move || {
        primary.kill();
        standby.promote();
        (primary, standby)
    })
    .await
    .expect("failover");
    // Writes go on through the promoted standby: wait for some, then stop.
    let resumed = loop {
        if head() > before + 20 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "no writes accepted after the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for pusher in pushers {
        acknowledged.extend(pusher.await.expect("pusher"));
    }
    // Both nodes come to hold the register's head.
    let store = first.store().clone();
    let alert_head = store.alert_head().max(second.store().alert_head());
    let final_head = head();
    let settling = Instant::now();
    while [first.store(), second.store()]
        .iter()
        .any(|node| node.head_sequence() < final_head || node.alert_head() < alert_head)
    {
        assert!(
            settling.elapsed() < Duration::from_secs(30),
            "a node stays behind the register after the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until.store(alert_head, Ordering::SeqCst);
    let mut seen = Vec::new();
    for watcher in watchers {
        seen.push(
            tokio::time::timeout(Duration::from_secs(60), watcher)
                .await
                .expect("the watcher catches up")
                .expect("watcher"),
        );
    }
    println!(
        "failover: {} acknowledged, head {} before the kill, 20 writes more {resumed:?} after it",
        acknowledged.len(),
        before
    );

    // Every acknowledged revision is there, with the sequence it was acknowledged with.
    for (agency, local_ref, revision, sequence) in &acknowledged {
        let key = marr::domain::RecordKey::parse(agency, local_ref).expect("key");
        let found = store
            .history(&key)
            .expect("history")
            .iter()
            .any(|r| r.revision == *revision && r.sequence == *sequence);
        assert!(
            found,
            "acknowledged {key} revision {revision} at {sequence} is lost"
        );
    }
    // The log is gap-free and every projection agrees with it; the audit chain holds.
    assert_register_intact(&store).await;
    // Each watcher saw every alert of the log, once each, in order.
    for seen in seen {
        assert_eq!(seen, (1..=alert_head).collect::<Vec<_>>());
    }
    assert!(alert_head > 0, "critical records raised alerts");
}
