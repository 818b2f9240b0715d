//! Alerts: each rule, the sweep on a controlled clock, and watchers that see every matching
//! alert exactly once, in order, across disconnects and server restarts.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::*;

use marr::domain::PlaceCode;
use marr::proto::{self, AlertKind, watch_response::Event};
use marr::rules::RuleSettings;
use marr::store::StoreOptions;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::RwLock;

async fn all_alerts(
    connection: &Connection,
    filter: Option<proto::AlertFilter>,
) -> Vec<proto::Alert> {
    let mut alerts = Vec::new();
    let mut after = 0;
    loop {
        let page = connection
            .alerts()
            .list_alerts(proto::ListAlertsRequest {
                filter: filter.clone(),
                after_sequence: after,
                page_size: 50,
            })
            .await
            .expect("list")
            .into_inner();
        alerts.extend(page.alerts);
        if page.next_after_sequence == 0 {
            return alerts;
        }
        after = page.next_after_sequence;
    }
}

fn kinds(alerts: &[proto::Alert]) -> Vec<AlertKind> {
    alerts
        .iter()
        .map(|a| AlertKind::try_from(a.kind).expect("kind"))
        .collect()
}

async fn push_ok(connection: &Connection, records: Vec<proto::RiskRecord>) {
    for answer in push_all(connection, records).await {
        assert_eq!(
            answer.outcome,
            proto::Outcome::Accepted as i32,
            "{}",
            answer.reason
        );
    }
}

fn quiet_settings() -> RuleSettings {
    RuleSettings {
        district_threshold: None,
        ..RuleSettings::default()
    }
}

#[tokio::test]
async fn critical_risk_and_escalation_are_raised_once_per_change() {
    let (_server, connection) = TestServer::north_east_with(StoreOptions {
        rules: quiet_settings(),
        ..StoreOptions::default()
    })
    .await;
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-1",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Medium,
            30,
        )],
    )
    .await;
    assert!(
        all_alerts(&connection, None).await.is_empty(),
        "a medium risk raises nothing"
    );

    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-1",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Critical,
            20,
        )],
    )
    .await;
    let alerts = all_alerts(&connection, None).await;
    assert_eq!(
        kinds(&alerts),
        vec![AlertKind::CriticalRisk, AlertKind::Escalation]
    );
    assert_eq!(alerts[0].records[0].local_ref, "C-1");
    assert_eq!(alerts[0].raised_by_sequence, 2);
    assert_eq!(alerts[1].severity, proto::Severity::Critical as i32);

    // Still critical in a newer version, or lowered: nothing new.
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-1",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Critical,
            10,
        )],
    )
    .await;
    let lowered = rec(NEWCASTLE, "C-1", NEWCASTLE_WARD, 0, proto::Severity::Low, 5);
    push_ok(&connection, vec![lowered.clone()]).await;
    assert_eq!(all_alerts(&connection, None).await.len(), 2);
    // Resending is unchanged and raises nothing either.
    let again = push_all(&connection, vec![lowered]).await;
    assert_eq!(again[0].outcome, proto::Outcome::Unchanged as i32);
    assert_eq!(all_alerts(&connection, None).await.len(), 2);
}

#[tokio::test]
async fn multi_agency_is_raised_at_two_agencies_and_again_at_three() {
    let (_server, connection) = TestServer::north_east_with(StoreOptions {
        rules: quiet_settings(),
        ..StoreOptions::default()
    })
    .await;
    let s = 9;
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-1",
            NEWCASTLE_WARD,
            s,
            proto::Severity::Low,
            9,
        )],
    )
    .await;
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-2",
            NEWCASTLE_WARD,
            s,
            proto::Severity::Low,
            9,
        )],
    )
    .await;
    assert!(
        all_alerts(&connection, None).await.is_empty(),
        "one agency, however many records"
    );

    push_ok(
        &connection,
        vec![rec(
            NORTHUMBRIA,
            "P-1",
            GATESHEAD_WARD,
            s,
            proto::Severity::Medium,
            9,
        )],
    )
    .await;
    push_ok(
        &connection,
        vec![rec("RTD", "H-1", HARTLEPOOL, s, proto::Severity::Low, 9)],
    )
    .await;
    let alerts = all_alerts(&connection, None).await;
    assert_eq!(
        kinds(&alerts),
        vec![AlertKind::MultiAgency, AlertKind::MultiAgency]
    );
    assert_eq!(alerts[0].agency_ids, vec![NEWCASTLE, NORTHUMBRIA]);
    assert_eq!(
        alerts[0].place_codes,
        vec![GATESHEAD_WARD, NEWCASTLE_WARD],
        "by code"
    );
    assert_eq!(alerts[0].subject_key, subject(s));
    assert_eq!(alerts[1].agency_ids, vec![NEWCASTLE, NORTHUMBRIA, "RTD"]);
    assert_eq!(alerts[1].records.len(), 4);

    // Leaving and rejoining the third agency raises it again; a second record does not.
    let mut closed = rec("RTD", "H-1", HARTLEPOOL, s, proto::Severity::Low, 5);
    closed.status = proto::RecordStatus::Closed as i32;
    push_ok(&connection, vec![closed]).await;
    push_ok(
        &connection,
        vec![rec(
            NORTHUMBRIA,
            "P-2",
            GATESHEAD_WARD,
            s,
            proto::Severity::Low,
            9,
        )],
    )
    .await;
    assert_eq!(all_alerts(&connection, None).await.len(), 2);
    push_ok(
        &connection,
        vec![rec("RTD", "H-1", HARTLEPOOL, s, proto::Severity::Low, 1)],
    )
    .await;
    assert_eq!(all_alerts(&connection, None).await.len(), 3);
}

#[tokio::test]
async fn a_place_threshold_is_crossed_upward_and_back_below() {
    let mut rules = quiet_settings();
    rules
        .place_thresholds
        .insert(PlaceCode::parse(NEWCASTLE).expect("code"), 3);
    let (_server, connection) = TestServer::north_east_with(StoreOptions {
        rules,
        ..StoreOptions::default()
    })
    .await;
    let high = |i: u32, hours: i64| {
        rec(
            NEWCASTLE,
            &format!("C-{i}"),
            NEWCASTLE_WARD,
            0,
            proto::Severity::High,
            hours,
        )
    };
    push_ok(&connection, vec![high(1, 9), high(2, 9)]).await;
    let filter = Some(proto::AlertFilter {
        kinds: vec![AlertKind::PlaceThreshold as i32],
        ..Default::default()
    });
    assert!(all_alerts(&connection, filter.clone()).await.is_empty());
    push_ok(&connection, vec![high(3, 9), high(4, 9)]).await;
    let alerts = all_alerts(&connection, filter.clone()).await;
    assert_eq!(alerts.len(), 1, "crossing upward once, not again at 4");
    assert_eq!(alerts[0].place_code, NEWCASTLE);
    assert_eq!(
        alerts[0].client_group,
        proto::ClientGroup::ChildProtectionPlan as i32
    );
    assert!(
        alerts[0].detail.contains("at or above"),
        "{}",
        alerts[0].detail
    );

    let mut closing = high(1, 2);
    closing.status = proto::RecordStatus::Closed as i32;
    push_ok(&connection, vec![closing]).await;
    assert_eq!(
        all_alerts(&connection, filter.clone()).await.len(),
        1,
        "4 → 3 is still at the threshold"
    );
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-2",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Medium,
            2,
        )],
    )
    .await;
    let alerts = all_alerts(&connection, filter).await;
    assert_eq!(alerts.len(), 2);
    assert!(
        alerts[1].detail.contains("back below"),
        "{}",
        alerts[1].detail
    );
}

#[tokio::test]
async fn the_stale_sweep_follows_a_controlled_clock_and_raises_once_per_revision() {
    let offset_days = Arc::new(AtomicI64::new(0));
    let clock_days = Arc::clone(&offset_days);
    let options = StoreOptions {
        rules: quiet_settings(),
        clock: Arc::new(move || {
            time::OffsetDateTime::now_utc()
                + time::Duration::days(clock_days.load(Ordering::SeqCst))
        }),
        ..StoreOptions::default()
    };
    let (server, connection) = TestServer::north_east_with(options).await;
    push_ok(
        &connection,
        vec![
            rec(
                NEWCASTLE,
                "C-HIGH",
                NEWCASTLE_WARD,
                0,
                proto::Severity::High,
                9,
            ),
            rec(
                NEWCASTLE,
                "C-LOW",
                NEWCASTLE_WARD,
                0,
                proto::Severity::Low,
                9,
            ),
        ],
    )
    .await;
    offset_days.store(29, Ordering::SeqCst);
    assert_eq!(sweep_now(&server).await, 0, "29 days is not stale");
    offset_days.store(31, Ordering::SeqCst);
    assert_eq!(sweep_now(&server).await, 1);
    assert_eq!(sweep_now(&server).await, 0, "once per revision");
    let alerts = all_alerts(&connection, None).await;
    assert_eq!(kinds(&alerts), vec![AlertKind::StaleHighRisk]);
    assert_eq!(alerts[0].records[0].local_ref, "C-HIGH");
    assert_eq!(alerts[0].raised_by_sequence, 0);
    drop(connection);

    // The alert log remembers it across a restart.
    let server = server.restart().await;
    assert_eq!(sweep_now(&server).await, 0);
    // A new revision starts the clock again.
    let connection = server.connect().await;
    let mut newer = rec(
        NEWCASTLE,
        "C-HIGH",
        NEWCASTLE_WARD,
        0,
        proto::Severity::High,
        1,
    );
    newer.note = "Reviewed at strategy meeting".into();
    push_ok(&connection, vec![newer]).await;
    assert_eq!(sweep_now(&server).await, 0);
    offset_days.store(62, Ordering::SeqCst);
    assert_eq!(sweep_now(&server).await, 1);
}

#[tokio::test]
async fn a_watcher_gets_history_then_live_with_no_gap_or_duplicate_and_heartbeats_carry_the_head() {
    let (_server, connection) = TestServer::north_east_with(StoreOptions {
        rules: quiet_settings(),
        ..StoreOptions::default()
    })
    .await;
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-1",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Critical,
            9,
        )],
    )
    .await;
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-2",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Critical,
            9,
        )],
    )
    .await;
    let mut stream = connection
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: 0,
            filter: None,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let Some(Event::Alert(alert)) = stream
            .message()
            .await
            .expect("message")
            .expect("open")
            .event
        {
            seen.push(alert.sequence);
        }
    }
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-3",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Critical,
            9,
        )],
    )
    .await;
    while seen.len() < 3 {
        if let Some(Event::Alert(alert)) = stream
            .message()
            .await
            .expect("message")
            .expect("open")
            .event
        {
            seen.push(alert.sequence);
        }
    }
    assert_eq!(seen, vec![1, 2, 3]);

    // A filter nothing matches still hears the head.
    let mut quiet = connection
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: 0,
            filter: Some(proto::AlertFilter {
                kinds: vec![AlertKind::StaleHighRisk as i32],
                ..Default::default()
            }),
        })
        .await
        .expect("watch")
        .into_inner();
    let beat = tokio::time::timeout(Duration::from_secs(10), quiet.message())
        .await
        .expect("heartbeat in time");
    match beat.expect("message").expect("open").event {
        Some(Event::Heartbeat(beat)) => assert_eq!(beat.head_sequence, 3),
        other => panic!("expected a heartbeat, got {other:?}"),
    }

    // A cursor ahead of the log is taken and waited past; its heartbeat gives the cursor back,
    // never the log's head.
    let mut ahead = connection
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: 99,
            filter: None,
        })
        .await
        .expect("a cursor ahead of the log is taken")
        .into_inner();
    let beat = tokio::time::timeout(Duration::from_secs(10), ahead.message())
        .await
        .expect("heartbeat in time");
    match beat.expect("message").expect("open").event {
        Some(Event::Heartbeat(beat)) => assert_eq!(beat.head_sequence, 99),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

async fn sweep_now(server: &TestServer) -> usize {
    server.store().sweep_stale().await.expect("sweep")
}

/// One watcher of the history checker: resumes from its cursor after every drop.
async fn watcher(
    url: Arc<RwLock<String>>,
    filter: proto::AlertFilter,
    until: Arc<AtomicI64>,
    seed: u64,
) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen: Vec<u64> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let target = until.load(Ordering::SeqCst);
        if target >= 0 && cursor >= target as u64 {
            return seen;
        }
        let server = url.read().await.clone();
        let Ok(connection) = Connection::open(&server).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(stream) = connection
            .alerts()
            .watch(proto::WatchRequest {
                from_sequence: cursor,
                filter: Some(filter.clone()),
            })
            .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        // Drop the connection after a random number of messages, as a flaky network would.
        let mut budget = rng.random_range(1..8);
        while budget > 0 {
            let target = until.load(Ordering::SeqCst);
            if target >= 0 && cursor >= target as u64 {
                return seen;
            }
            let Ok(Ok(Some(message))) =
                tokio::time::timeout(Duration::from_secs(5), stream.message()).await
            else {
                break;
            };
            match message.event {
                Some(Event::Alert(alert)) => {
                    assert!(
                        alert.sequence > cursor,
                        "alert {} after cursor {cursor}: a duplicate or out of order",
                        alert.sequence
                    );
                    cursor = alert.sequence;
                    seen.push(alert.sequence);
                    budget -= 1;
                }
                Some(Event::Heartbeat(beat)) => cursor = cursor.max(beat.head_sequence),
                None => {}
            }
        }
    }
}

#[tokio::test]
async fn every_watcher_sees_exactly_its_alerts_once_in_order_across_drops_and_restarts() {
    let mut rules = quiet_settings();
    rules
        .place_thresholds
        .insert(PlaceCode::parse(NEWCASTLE).expect("code"), 4);
    let (mut server, mut connection) = TestServer::north_east_with(StoreOptions {
        rules,
        ..StoreOptions::default()
    })
    .await;
    let url = Arc::new(RwLock::new(server.url.clone()));
    let until = Arc::new(AtomicI64::new(-1));
    let filters: Vec<proto::AlertFilter> = vec![
        proto::AlertFilter::default(),
        proto::AlertFilter {
            place_code: NEWCASTLE.into(),
            ..Default::default()
        },
        proto::AlertFilter {
            place_code: NORTHUMBRIA.into(),
            kinds: vec![
                AlertKind::MultiAgency as i32,
                AlertKind::CriticalRisk as i32,
            ],
            ..Default::default()
        },
        proto::AlertFilter {
            min_severity: proto::Severity::Critical as i32,
            client_groups: vec![proto::ClientGroup::ChildProtectionPlan as i32],
            ..Default::default()
        },
    ];
    let watchers: Vec<_> = filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            tokio::spawn(watcher(
                Arc::clone(&url),
                f.clone(),
                Arc::clone(&until),
                i as u64,
            ))
        })
        .collect();

    let mut rng = StdRng::seed_from_u64(2026);
    let places = [NEWCASTLE_WARD, NEWCASTLE, GATESHEAD_WARD, HARTLEPOOL];
    let severities = [
        proto::Severity::Low,
        proto::Severity::Medium,
        proto::Severity::High,
        proto::Severity::Critical,
    ];
    let mut hours = 500;
    for round in 0..6 {
        let mut batch = Vec::new();
        for _ in 0..40 {
            hours -= 1;
            let (agency, place) = match rng.random_range(0..3) {
                0 => (NEWCASTLE, places[rng.random_range(0..2)]),
                1 => (NORTHUMBRIA, places[rng.random_range(0..3)]),
                _ => ("RTD", places[rng.random_range(0..4)]),
            };
            let mut r = rec(
                agency,
                &format!("R-{}", rng.random_range(0..30)),
                place,
                rng.random_range(0..6),
                severities[rng.random_range(0..4)],
                hours,
            );
            if rng.random_bool(0.15) {
                r.status = proto::RecordStatus::Closed as i32;
            }
            batch.push(r);
        }
        for answer in push_all(&connection, batch).await {
            assert_ne!(
                answer.outcome,
                proto::Outcome::Rejected as i32,
                "{}",
                answer.reason
            );
        }
        if round == 2 || round == 4 {
            drop(connection);
            server = server.restart().await;
            *url.write().await = server.url.clone();
            connection = server.connect().await;
        }
    }
    let log = all_alerts(&connection, None).await;
    assert!(
        log.len() > 20,
        "the ingest raised a good number of alerts ({})",
        log.len()
    );
    assert_eq!(
        log.iter().map(|a| a.sequence).collect::<Vec<_>>(),
        (1..=log.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    until.store(log.len() as i64, Ordering::SeqCst);

    let mut results = BTreeMap::new();
    for (i, handle) in watchers.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("watcher finishes")
            .expect("watcher");
        results.insert(i, seen);
    }
    for (i, filter) in filters.iter().enumerate() {
        let expected: Vec<u64> = all_alerts(&connection, Some(filter.clone()))
            .await
            .iter()
            .map(|a| a.sequence)
            .collect();
        assert_eq!(
            results[&i], expected,
            "watcher {i} saw exactly its alerts, once, in order"
        );
    }
    assert!(results[&0].len() > results[&3].len(), "the filters differ");
}

/// A board whose places are Newcastle only.
const NEWCASTLE_BOARD: &str = "newcastle-board-token";
/// A board and an inspector whose places are the North East region.
const NORTH_EAST_BOARD: &str = "north-east-board-token";
const NORTH_EAST_INSPECTOR: &str = "north-east-inspector-token";
/// A board whose places are Hartlepool, policed by Cleveland: nothing to do with Northumbria.
const HARTLEPOOL_BOARD: &str = "hartlepool-board-token";
/// Newcastle upon Tyne's community safety partnership (its one member is Newcastle).
const NEWCASTLE_CSP: &str = "E22000245";

/// The test principals, and boards and an inspector of particular places.
fn scoped_config() -> marr::config::Config {
    let mut text = principals_toml();
    for (name, role, places, token) in [
        ("newcastle-board", "board", NEWCASTLE, NEWCASTLE_BOARD),
        ("north-east-board", "board", NORTH_EAST, NORTH_EAST_BOARD),
        (
            "north-east-inspector",
            "inspector",
            NORTH_EAST,
            NORTH_EAST_INSPECTOR,
        ),
        ("hartlepool-board", "board", HARTLEPOOL, HARTLEPOOL_BOARD),
    ] {
        text.push_str(&principal(name, role, None, &[places], token));
    }
    text.push_str(
        "[limits]\ncalls_per_second = 1000000\nburst = 1000000\nmax_concurrent_calls = 10000\n",
    );
    let config: marr::config::Config = toml::from_str(&text).expect("config parses");
    config.check().expect("config is valid");
    config
}

async fn scoped_server(rules: RuleSettings) -> (TestServer, Connection) {
    TestServer::north_east_in(
        TestServer::start_with_config(
            StoreOptions {
                rules,
                ..StoreOptions::default()
            },
            scoped_config(),
        )
        .await,
    )
    .await
}

/// Every alert the holder of `token` may list, with the head it is told.
async fn alerts_of(
    connection: &Connection,
    token: &str,
    filter: Option<proto::AlertFilter>,
) -> (Vec<proto::Alert>, u64) {
    let page = connection
        .as_token(token)
        .alerts()
        .list_alerts(proto::ListAlertsRequest {
            filter,
            after_sequence: 0,
            page_size: 1000,
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.next_after_sequence, 0, "one page holds them all");
    (page.alerts, page.head_sequence)
}

/// The first event of a watch from the beginning of the log.
async fn first_event(connection: &Connection, token: &str) -> Event {
    let mut stream = connection
        .as_token(token)
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: 0,
            filter: None,
        })
        .await
        .expect("watch")
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event in time")
        .expect("message")
        .expect("open")
        .event
        .expect("event")
}

#[tokio::test]
async fn each_board_sees_a_multi_agency_alert_trimmed_to_its_own_places() {
    let (_server, connection) = scoped_server(quiet_settings()).await;
    let s = 41;
    // Newcastle's council knows the subject in Newcastle; Northumbria Police then in Gateshead.
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-1",
            NEWCASTLE_WARD,
            s,
            proto::Severity::Low,
            9,
        )],
    )
    .await;
    push_ok(
        &connection,
        vec![rec(
            NORTHUMBRIA,
            "P-1",
            GATESHEAD_WARD,
            s,
            proto::Severity::High,
            9,
        )],
    )
    .await;

    // A board over both areas sees the whole alert.
    let (whole, head) = alerts_of(&connection, BOARD, None).await;
    assert_eq!(kinds(&whole), vec![AlertKind::MultiAgency]);
    assert_eq!(whole[0].agency_ids, vec![NEWCASTLE, NORTHUMBRIA]);
    assert_eq!(head, 1);

    // Newcastle's board hears of it, though the record that raised it is in Gateshead, and
    // sees only Newcastle's part: its record, agency and place, at that record's severity and
    // client group, with words naming nothing elsewhere.
    let (newcastle, head) = alerts_of(&connection, NEWCASTLE_BOARD, None).await;
    assert_eq!(kinds(&newcastle), vec![AlertKind::MultiAgency]);
    let alert = &newcastle[0];
    assert_eq!(alert.sequence, 1);
    assert_eq!(alert.subject_key, subject(s));
    assert_eq!(alert.agency_ids, vec![NEWCASTLE]);
    assert_eq!(
        alert
            .records
            .iter()
            .map(|r| (r.agency_id.as_str(), r.local_ref.as_str()))
            .collect::<Vec<_>>(),
        vec![(NEWCASTLE, "C-1")]
    );
    assert_eq!(alert.place_codes, vec![NEWCASTLE_WARD]);
    assert_eq!(alert.place_code, NEWCASTLE_WARD);
    assert_eq!(alert.severity, proto::Severity::Low as i32);
    assert_eq!(
        alert.client_group,
        proto::ClientGroup::ChildProtectionPlan as i32
    );
    for elsewhere in [NORTHUMBRIA, GATESHEAD_WARD, "P-1", "2 agencies"] {
        assert!(
            !alert.detail.contains(elsewhere),
            "{elsewhere} in {:?}",
            alert.detail
        );
    }
    assert_eq!(head, 1);
    // A filter asks about the alert as the board sees it.
    let (only_protection, _) = alerts_of(
        &connection,
        NEWCASTLE_BOARD,
        Some(proto::AlertFilter {
            client_groups: vec![proto::ClientGroup::ChildProtectionPlan as i32],
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(only_protection, newcastle);
    // The live feed shows the same.
    match first_event(&connection, NEWCASTLE_BOARD).await {
        Event::Alert(watched) => assert_eq!(&watched, alert),
        other => panic!("expected the alert, got {other:?}"),
    }

    // Gateshead's board sees only the police's part.
    let (gateshead, _) = alerts_of(&connection, GATESHEAD_BOARD, None).await;
    assert_eq!(kinds(&gateshead), vec![AlertKind::MultiAgency]);
    let alert = &gateshead[0];
    assert_eq!(alert.agency_ids, vec![NORTHUMBRIA]);
    assert_eq!(alert.records.len(), 1);
    assert_eq!(alert.records[0].local_ref, "P-1");
    assert_eq!(alert.place_codes, vec![GATESHEAD_WARD]);
    assert_eq!(alert.place_code, GATESHEAD_WARD);
    assert_eq!(alert.severity, proto::Severity::High as i32);
    assert!(!alert.detail.contains(NEWCASTLE), "{:?}", alert.detail);
    match first_event(&connection, GATESHEAD_BOARD).await {
        Event::Alert(watched) => assert_eq!(&watched, alert),
        other => panic!("expected the alert, got {other:?}"),
    }

    // A board of unrelated places sees nothing of it, not even the head moving.
    let (hartlepool, head) = alerts_of(&connection, HARTLEPOOL_BOARD, None).await;
    assert!(hartlepool.is_empty(), "{hartlepool:?}");
    assert_eq!(head, 0, "the head counts only alerts in the board's places");
    match first_event(&connection, HARTLEPOOL_BOARD).await {
        Event::Heartbeat(beat) => assert_eq!(beat.head_sequence, 0),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

#[tokio::test]
async fn a_board_receives_the_alerts_of_footprint_areas_inside_its_places_as_an_inspector_reads_their_views()
 {
    let mut rules = quiet_settings();
    for area in [NORTHUMBRIA, NEWCASTLE_CSP, NEWCASTLE_GATESHEAD_CCG] {
        rules
            .place_thresholds
            .insert(PlaceCode::parse(area).expect("code"), 1);
    }
    let (_server, connection) = scoped_server(rules).await;
    // One high risk in a Newcastle LSOA crosses the threshold of its police force area, its
    // community safety partnership and its clinical commissioning group.
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-1",
            NEWCASTLE_LSOA,
            0,
            proto::Severity::High,
            9,
        )],
    )
    .await;
    let thresholds = Some(proto::AlertFilter {
        kinds: vec![AlertKind::PlaceThreshold as i32],
        ..Default::default()
    });
    let places_of = |alerts: &[proto::Alert]| {
        let mut places: Vec<String> = alerts.iter().map(|a| a.place_code.clone()).collect();
        places.sort();
        places
    };
    let (everywhere, _) = alerts_of(&connection, BOARD, thresholds.clone()).await;
    assert_eq!(
        places_of(&everywhere),
        vec![NEWCASTLE_CSP, NORTHUMBRIA, NEWCASTLE_GATESHEAD_CCG]
    );

    // The region's board receives all three, as the region's inspector reads all three views;
    // Newcastle's board receives the partnership's alone, as Newcastle's inspector may read
    // the partnership's view and neither of the others.
    for (board, inspector, expected) in [
        (
            NORTH_EAST_BOARD,
            NORTH_EAST_INSPECTOR,
            vec![NEWCASTLE_CSP, NORTHUMBRIA, NEWCASTLE_GATESHEAD_CCG],
        ),
        (NEWCASTLE_BOARD, NEWCASTLE_INSPECTOR, vec![NEWCASTLE_CSP]),
    ] {
        let (received, _) = alerts_of(&connection, board, thresholds.clone()).await;
        assert_eq!(places_of(&received), expected, "{board}");
        for area in [NORTHUMBRIA, NEWCASTLE_CSP, NEWCASTLE_GATESHEAD_CCG] {
            let view = connection
                .as_token(inspector)
                .inspection()
                .get_place_view(proto::GetPlaceViewRequest {
                    place_code: area.into(),
                    filter: None,
                    as_of_sequence: 0,
                })
                .await;
            assert_eq!(
                view.is_ok(),
                expected.contains(&area),
                "{inspector} reading {area}: {view:?}"
            );
        }
    }
    // Watching a region names the footprint areas inside it too.
    let (in_region, _) = alerts_of(
        &connection,
        NORTH_EAST_BOARD,
        Some(proto::AlertFilter {
            place_code: NORTH_EAST.into(),
            kinds: vec![AlertKind::PlaceThreshold as i32],
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(in_region.len(), 3);
    match first_event(&connection, NORTH_EAST_BOARD).await {
        Event::Alert(alert) => assert_eq!(alert.sequence, 1),
        other => panic!("expected an alert, got {other:?}"),
    }

    // Boards of other places receive none of them.
    for board in [GATESHEAD_BOARD, HARTLEPOOL_BOARD] {
        let (received, head) = alerts_of(&connection, board, None).await;
        assert!(received.is_empty(), "{board}: {received:?}");
        assert_eq!(head, 0, "{board}");
    }
}

#[tokio::test]
async fn a_board_pages_and_resumes_through_its_own_alerts_and_hears_no_head_but_its_own() {
    let (_server, connection) = scoped_server(quiet_settings()).await;
    // Critical risks in Newcastle and Gateshead, in turn: alerts 1 to 5, Gateshead's 2 and 4.
    for (agency, local_ref, place) in [
        (NEWCASTLE, "C-1", NEWCASTLE_WARD),
        (NORTHUMBRIA, "P-1", GATESHEAD_WARD),
        (NEWCASTLE, "C-2", NEWCASTLE_WARD),
        (NORTHUMBRIA, "P-2", GATESHEAD_WARD),
        (NEWCASTLE, "C-3", NEWCASTLE_WARD),
    ] {
        push_ok(
            &connection,
            vec![rec(
                agency,
                local_ref,
                place,
                0,
                proto::Severity::Critical,
                9,
            )],
        )
        .await;
    }
    let gateshead = connection.as_token(GATESHEAD_BOARD);
    let page = |after: u64| {
        let mut alerts = gateshead.alerts();
        async move {
            alerts
                .list_alerts(proto::ListAlertsRequest {
                    filter: None,
                    after_sequence: after,
                    page_size: 1,
                })
                .await
                .expect("list")
                .into_inner()
        }
    };
    let sequences = |alerts: &[proto::Alert]| alerts.iter().map(|a| a.sequence).collect::<Vec<_>>();
    let first = page(0).await;
    assert_eq!(sequences(&first.alerts), vec![2]);
    assert_eq!(
        (first.next_after_sequence, first.head_sequence),
        (2, 4),
        "the head is Gateshead's newest alert, not the log's"
    );
    let second = page(2).await;
    assert_eq!(sequences(&second.alerts), vec![4]);
    let last = page(4).await;
    assert!(last.alerts.is_empty());
    assert_eq!((last.next_after_sequence, last.head_sequence), (0, 4));

    // Resuming a watch from its last alert hears its own head, and then only its own alerts.
    let mut stream = gateshead
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: 4,
            filter: None,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event in time")
            .expect("message")
            .expect("open")
            .event
            .expect("event")
    };
    match next().await {
        Event::Heartbeat(beat) => assert_eq!(beat.head_sequence, 4),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    push_ok(
        &connection,
        vec![rec(
            NEWCASTLE,
            "C-4",
            NEWCASTLE_WARD,
            0,
            proto::Severity::Critical,
            9,
        )],
    )
    .await;
    push_ok(
        &connection,
        vec![rec(
            NORTHUMBRIA,
            "P-3",
            GATESHEAD_WARD,
            0,
            proto::Severity::Critical,
            9,
        )],
    )
    .await;
    match next().await {
        Event::Alert(alert) => {
            assert_eq!(alert.sequence, 7);
            assert_eq!(alert.records[0].local_ref, "P-3");
        }
        other => panic!("expected Gateshead's alert, got {other:?}"),
    }
    match next().await {
        Event::Heartbeat(beat) => assert_eq!(beat.head_sequence, 7),
        other => panic!("expected a heartbeat, got {other:?}"),
    }

    // A cursor past the log is taken, not refused: a refusal would let a board find the
    // log's head by trying cursors. Nothing it hears names the head.
    let mut ahead = gateshead
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: 99,
            filter: None,
        })
        .await
        .expect("a cursor past the log is taken")
        .into_inner();
    match tokio::time::timeout(Duration::from_secs(10), ahead.message())
        .await
        .expect("heartbeat in time")
        .expect("message")
        .expect("open")
        .event
    {
        Some(Event::Heartbeat(beat)) => assert_eq!(beat.head_sequence, 99),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

#[tokio::test]
async fn a_board_whose_alerts_are_rare_among_many_gets_short_pages_that_go_on_not_one_long_scan() {
    const READS: usize = 6;
    let (_server, connection) = TestServer::north_east_in(
        TestServer::start_with_config(
            StoreOptions {
                rules: quiet_settings(),
                page_read_limit: READS,
                ..StoreOptions::default()
            },
            scoped_config(),
        )
        .await,
    )
    .await;
    // One critical risk in Gateshead, then thirty in Newcastle: alerts 1 to 31, Gateshead's 1.
    let mut records = vec![rec(
        NORTHUMBRIA,
        "P-1",
        GATESHEAD_WARD,
        0,
        proto::Severity::Critical,
        40,
    )];
    records.extend((0..30).map(|i| {
        rec(
            NEWCASTLE,
            &format!("C-{i}"),
            NEWCASTLE_WARD,
            0,
            proto::Severity::Critical,
            30 - i,
        )
    }));
    push_ok(&connection, records).await;
    let gateshead = connection.as_token(GATESHEAD_BOARD);
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = gateshead
            .alerts()
            .list_alerts(proto::ListAlertsRequest {
                filter: None,
                after_sequence: after,
                page_size: 50,
            })
            .await
            .expect("list")
            .into_inner();
        pages.push(page.clone());
        if page.next_after_sequence == 0 {
            break;
        }
        assert!(page.next_after_sequence > after, "each page goes on");
        after = page.next_after_sequence;
    }
    let seen: Vec<u64> = pages
        .iter()
        .flat_map(|p| p.alerts.iter().map(|a| a.sequence))
        .collect();
    assert_eq!(seen, vec![1], "Gateshead's one alert, once");
    assert!(
        pages.len() >= 31 / READS,
        "{} pages for 31 alerts at {READS} reads a page",
        pages.len()
    );
    assert!(pages[1..].iter().all(|p| p.alerts.is_empty()));
    // The head is the board's own newest alert, or the cursor it gave: never the log's.
    assert_eq!(pages[0].head_sequence, 1);
    let mut given = 0;
    for page in &pages {
        assert!(page.head_sequence <= given.max(1), "{pages:?}");
        given = page.next_after_sequence;
    }
}
