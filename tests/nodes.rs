//! Several marr nodes on one PostgreSQL database: any node takes writes and the database
//! orders them, a write through one node is in the other's views within a bounded lag, and a
//! `Watch` on either node delivers the same alerts in the same order.

mod common;

use std::time::{Duration, Instant};

use common::postgres::Cluster;
use common::*;
use marr::domain::PlaceCode;
use marr::domain::inspection::ViewFilter;
use marr::proto;
use marr::proto::watch_response::Event;
use marr::store::{Location, PostgresOptions, Store};

/// A PostgreSQL server of the test's own, with an empty database `register`.
async fn register_cluster() -> Cluster {
    tokio::task::spawn_blocking(|| {
        let cluster = Cluster::start(&[]);
        cluster.create_database("register");
        cluster
    })
    .await
    .expect("cluster")
}

/// Two nodes on a fresh database of their own, both started before the directory is loaded
/// (through the first), so the second learns the places and agencies by following.
async fn two_nodes() -> (Cluster, TestServer, Connection, TestServer, Connection) {
    let cluster = register_cluster().await;
    let location = Location::Postgres(PostgresOptions::new(cluster.url("register")));
    let first = TestServer::start_on(location.clone()).await;
    let second = TestServer::start_on(location).await;
    let (first, through_first) = TestServer::north_east_in(first).await;
    let through_second = second.connect().await;
    (cluster, first, through_first, second, through_second)
}

/// Waits until `store` holds the register's head `head` and alert head `alerts`.
async fn caught_up(store: &Store, head: u64, alerts: u64) -> Duration {
    let began = Instant::now();
    while store.head_sequence() < head || store.alert_head() < alerts {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "a node is still behind after 10 s: head {} of {head}, alerts {} of {alerts}",
            store.head_sequence(),
            store.alert_head()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    began.elapsed()
}

/// Every alert a board sees on this node from the start, up to `until`.
async fn alerts_seen(connection: &Connection, until: u64) -> Vec<proto::Alert> {
    let mut stream = connection
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: 0,
            filter: None,
        })
        .await
        .expect("watch opens")
        .into_inner();
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|alert: &proto::Alert| alert.sequence < until)
    {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an alert within 10 s")
            .expect("stream")
            .expect("stream open");
        if let Some(Event::Alert(alert)) = message.event {
            seen.push(alert);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_through_one_node_is_in_the_others_views_and_alerts_within_a_bounded_lag() {
    let (_cluster, first, through_first, second, through_second) = two_nodes().await;

    // The second node takes writes for an agency registered through the first.
    let answers = push_all(
        &through_second,
        vec![rec(
            NEWCASTLE,
            "N-1",
            NEWCASTLE_WARD,
            1,
            proto::Severity::High,
            2,
        )],
    )
    .await;
    assert_eq!(
        answers[0].outcome,
        proto::Outcome::Accepted as i32,
        "{answers:?}"
    );

    // A critical record through the first: in the second's views and alerts shortly after.
    let answers = push_all(
        &through_first,
        vec![rec(
            NEWCASTLE,
            "N-2",
            NEWCASTLE_WARD,
            2,
            proto::Severity::Critical,
            2,
        )],
    )
    .await;
    assert_eq!(
        answers[0].outcome,
        proto::Outcome::Accepted as i32,
        "{answers:?}"
    );
    assert_eq!(
        answers[0].sequence, 2,
        "the database ordered both nodes' writes"
    );
    let alerts = first.store().alert_head();
    assert!(alerts > 0, "a critical record raises an alert");
    let lag = caught_up(second.store(), 2, alerts).await;
    println!("the second node held the first's write {lag:?} after it was acknowledged");

    let ward = PlaceCode::parse(NEWCASTLE_WARD).expect("code");
    let view = |store: &Store| {
        store
            .place_view(ward, &ViewFilter::default(), None)
            .expect("view")
    };
    assert_eq!(view(second.store()).total, 2);
    assert_eq!(view(first.store()), view(second.store()));
    let record = head_of(&through_second, NEWCASTLE, "N-2")
        .await
        .expect("the second node reads the first's record");
    assert_eq!(record.sequence, 2);

    // A board watching either node sees the same alerts, in the same order.
    let on_first = alerts_seen(&through_first, alerts).await;
    let on_second = alerts_seen(&through_second, alerts).await;
    assert_eq!(on_first, on_second);
    assert_eq!(
        on_first
            .iter()
            .map(|alert| alert.sequence)
            .collect::<Vec<_>>(),
        (1..=alerts).collect::<Vec<_>>()
    );
}

/// Pushes `count` records of `agency` through `connection`, one stream each, answering the
/// sequences of those accepted.
async fn push_through(
    connection: marr::cli::Connection,
    agency: &'static str,
    place: &'static str,
    node: usize,
    count: u32,
) -> Vec<u64> {
    let mut sequences = Vec::new();
    for n in 0..count {
        let severity = if n % 4 == 0 {
            proto::Severity::Critical
        } else {
            proto::Severity::Medium
        };
        // Some references are written through both nodes, so revisions of one record race.
        let local_ref = format!(
            "R-{}",
            if n % 3 == 0 {
                n % 6
            } else {
                n * 10 + node as u32
            }
        );
        let answers = push_as(
            &connection,
            vec![rec(agency, &local_ref, place, n % 9 + 1, severity, 2)],
        )
        .await;
        for answer in answers {
            assert_ne!(
                answer.outcome,
                proto::Outcome::Rejected as i32,
                "{answer:?}"
            );
            if answer.outcome == proto::Outcome::Accepted as i32 {
                sequences.push(answer.sequence);
            }
        }
    }
    sequences
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_both_nodes_at_once_are_ordered_once_and_counted_alike() {
    let (_cluster, first, through_first, second, through_second) = two_nodes().await;
    let pushers = [
        (&through_first, NEWCASTLE, NEWCASTLE_WARD, 0),
        (&through_second, NEWCASTLE, NEWCASTLE_WARD, 1),
        (&through_first, NORTHUMBRIA, GATESHEAD_WARD, 2),
        (&through_second, NORTHUMBRIA, GATESHEAD_WARD, 3),
    ]
    .map(|(connection, agency, place, node)| {
        tokio::spawn(push_through(
            connection.agency(agency).clone(),
            agency,
            place,
            node,
            30,
        ))
    });
    let mut sequences = Vec::new();
    for pusher in pushers {
        sequences.extend(pusher.await.expect("pusher"));
    }
    // Each accepted revision has a sequence of its own, and together they leave no gap.
    sequences.sort_unstable();
    let head = *sequences.last().expect("writes were accepted");
    assert_eq!(sequences, (1..=head).collect::<Vec<_>>());

    let alerts = first.store().alert_head().max(second.store().alert_head());
    caught_up(first.store(), head, alerts).await;
    caught_up(second.store(), head, alerts).await;
    // Both nodes count every place alike, and as a recount from the records does.
    for place in [
        NEWCASTLE_WARD,
        GATESHEAD_WARD,
        NEWCASTLE,
        GATESHEAD,
        NORTHUMBRIA,
        NORTH_EAST,
    ] {
        let place = PlaceCode::parse(place).expect("code");
        let filter = ViewFilter::default();
        let recounted = first.store().scan_place_view(place, &filter).expect("scan");
        for node in [&first, &second] {
            let counted = node.store().place_view(place, &filter, None).expect("view");
            assert_eq!(counted, recounted, "place {place}");
        }
    }
    assert_register_intact(second.store()).await;
    assert_eq!(
        alerts_seen(&through_first, alerts).await,
        alerts_seen(&through_second, alerts).await
    );
}

/// An import through one node that changes the geography reaches the other: it reads the
/// directory back, counts under the new geography at once, rebuilds its counters in the
/// background as the importing node does, and both end up with a recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn geography_imported_through_one_node_is_counted_by_the_other_after_its_rebuild() {
    let cluster = register_cluster().await;
    let location = Location::Postgres(PostgresOptions::new(cluster.url("register")));
    let first = TestServer::start_on(location.clone()).await;
    let second = TestServer::start_on(location).await;
    let through_first = first.connect().await;
    let through_second = second.connect().await;

    // Wards and LSOAs first, without the police force areas, and records at Newcastle.
    let [lsoas, police, wards] = <[_; 3]>::try_from(north_east_tables()).expect("three tables");
    marr::cli::places::import_tables(&through_first, vec![lsoas, wards])
        .await
        .expect("import");
    marr::cli::agencies::register(
        &through_first,
        NEWCASTLE,
        marr::domain::AgencyKind::ChildrenSocialCare,
        "Newcastle",
        &[NEWCASTLE.to_string()],
    )
    .await
    .expect("register");
    let records = (0..12)
        .map(|n| {
            let place = if n % 2 == 0 {
                NEWCASTLE_WARD
            } else {
                NEWCASTLE_LSOA
            };
            rec(
                NEWCASTLE,
                &format!("G-{n}"),
                place,
                n + 1,
                proto::Severity::High,
                2,
            )
        })
        .collect();
    let answers = push_all(&through_first, records).await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32),
        "{answers:?}"
    );

    // The police force areas through the second node: Newcastle's records now also count
    // at Northumbria, on both nodes, once each has rebuilt its counters.
    marr::cli::places::import_tables(&through_second, vec![police])
        .await
        .expect("import");
    let head = first.store().head_sequence();
    caught_up(second.store(), head, 0).await;
    let northumbria = PlaceCode::parse(NORTHUMBRIA).expect("code");
    let filter = ViewFilter::default();
    for node in [&first, &second] {
        // The importing node's rebuild starts at once; the other's once it has followed.
        let began = Instant::now();
        while node.store().place_view(northumbria, &filter, None).is_err()
            || !node.store().counters_rebuilding()
                && node
                    .store()
                    .place_view(northumbria, &filter, None)
                    .expect("view")
                    .total
                    == 0
        {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "the import never arrives"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::timeout(Duration::from_secs(60), node.store().counters_rebuilt())
            .await
            .expect("the counters are rebuilt");
        let recounted = node
            .store()
            .scan_place_view(northumbria, &filter)
            .expect("scan");
        assert_eq!(recounted.total, 12, "every record is within Northumbria");
        let counted = node
            .store()
            .place_view(northumbria, &filter, None)
            .expect("view");
        assert_eq!(counted, recounted);
    }
}

/// The health a node answers now.
async fn health(url: &str) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connects");
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health answers")
        .into_inner()
        .status
}

/// Waits until the node at `url` answers `status`.
async fn health_becomes(url: &str, status: tonic_health::ServingStatus, within: Duration) {
    let began = Instant::now();
    while health(url).await != status as i32 {
        assert!(
            began.elapsed() < within,
            "health never said {status:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A node that cannot reach the database falls behind the register: past `max_lag_seconds`
/// its health says NOT_SERVING, so a balancer stops sending it callers, and it says SERVING
/// again by itself once the database is back and it has caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_the_database_says_not_serving_until_it_is_back() {
    let cluster = register_cluster().await;
    let url = cluster.url("register");
    let mut config = test_config();
    config.store.engine = Some(marr::config::EngineChoice::Postgres);
    config.store.url = Some(url.clone());
    config.store.max_lag_seconds = Some(1);
    let node =
        TestServer::start_on_configured(Location::Postgres(PostgresOptions::new(url)), config)
            .await;
    health_becomes(
        &node.url,
        tonic_health::ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await;

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.kill();
        cluster
    })
    .await
    .expect("kill");
    health_becomes(
        &node.url,
        tonic_health::ServingStatus::NotServing,
        Duration::from_secs(20),
    )
    .await;

    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.restart_after_kill();
        cluster
    })
    .await
    .expect("restart");
    health_becomes(
        &node.url,
        tonic_health::ServingStatus::Serving,
        Duration::from_secs(30),
    )
    .await;
}
