//! Limits that cannot be turned against the honest: every refusal is recorded (floods as
//! aggregated events), a valid caller gets its own answer whatever others at its address did,
//! the client's address comes from a trusted proxy only, open streams count against the
//! concurrency cap, and a stop ends every stream within a bounded drain.

mod common;

use std::time::Duration;

use common::*;
use marr::proto;
use tonic::Code;

fn config_with(extra: &str) -> marr::config::Config {
    let text = format!("{}{extra}", principals_toml());
    let config: marr::config::Config = toml::from_str(&text).expect("config parses");
    config.check().expect("config is valid");
    config
}

/// Every audit event, read through the store (reading through the API would add events).
fn audit_events(server: &TestServer) -> Vec<marr::domain::audit::AuditEvent> {
    let store = server.store();
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .audit_events(&Default::default(), after, 1000)
            .expect("audit events");
        if page.events.is_empty() {
            return events;
        }
        after = page.events.last().map_or(after, |e| e.sequence);
        events.extend(page.events);
    }
}

/// How many refusals an event stands for: 1, or the count of an aggregated one.
fn refusals_in(event: &marr::domain::audit::AuditEvent) -> u64 {
    match event.outcome.split_once("refused ") {
        Some((_, rest)) if event.outcome.contains("(aggregated)") => rest
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("an aggregated event gives its count"),
        _ => 1,
    }
}

#[tokio::test]
async fn a_flood_of_refusals_is_recorded_in_full_as_aggregated_events() {
    // Three refusals a second from one address are recorded one by one; the rest are tallied.
    let server = TestServer::start_configured(config_with(
        "[limits]\ncalls_per_second = 3\nburst = 3\nmax_concurrent_calls = 100\n",
    ))
    .await;
    let c = server.connect().await;
    let guesser = c.as_token("a-guessed-token");
    const FLOOD: u64 = 60;
    for _ in 0..FLOOD {
        let answer = guesser
            .directory()
            .list_agencies(proto::ListAgenciesRequest {})
            .await;
        assert_eq!(
            answer.expect_err("unknown token").code(),
            Code::Unauthenticated,
            "every refused caller is told why, never to slow down instead"
        );
    }
    // A valid caller at the same address is answered as itself: its own refusal is its own,
    // and what it may do is done.
    let agency = c.agency(NEWCASTLE);
    assert_eq!(
        agency
            .directory()
            .import_places(tokio_stream::iter(Vec::<proto::ImportPlacesRequest>::new()))
            .await
            .expect_err("an agency may not import places")
            .code(),
        Code::PermissionDenied
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.admin
        .directory()
        .list_agencies(proto::ListAgenciesRequest {})
        .await
        .expect("the administrator is served after the flood from its address");

    // Tallies are written every few seconds; wait for them.
    let mut recorded = 0;
    for _ in 0..40 {
        recorded = audit_events(&server)
            .iter()
            .filter(|e| e.outcome.starts_with("Unauthenticated"))
            .map(refusals_in)
            .sum::<u64>();
        if recorded >= FLOOD {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(recorded, FLOOD, "every refused call is in the audit chain");
    let events = audit_events(&server);
    let aggregated: Vec<_> = events
        .iter()
        .filter(|e| e.outcome.contains("(aggregated)"))
        .collect();
    assert!(
        !aggregated.is_empty() && aggregated.len() < 5,
        "a flood is a few aggregated events, not one each: {}",
        aggregated.len()
    );
    let guesses = aggregated
        .iter()
        .find(|e| e.method == "/marr.v1.Directory/ListAgencies")
        .expect("the guesses are aggregated under their method");
    assert!(
        guesses.outcome.contains("from 127.0.0.1 between "),
        "{}",
        guesses.outcome
    );
    assert!(
        events
            .iter()
            .any(|e| e.outcome.starts_with("PermissionDenied")
                && e.principal == format!("agency {NEWCASTLE}")),
        "the agency's own refusal is recorded as its own"
    );
}

#[tokio::test]
async fn refusals_made_by_handlers_are_recorded_in_full_too() {
    let server = TestServer::start_configured(config_with(
        "[limits]\ncalls_per_second = 3\nburst = 3\nmax_concurrent_calls = 100\n",
    ))
    .await;
    let c = server.connect().await;
    // Admitted by the guard, refused by the handler: another agency's record.
    const FLOOD: u64 = 20;
    for _ in 0..FLOOD {
        let refused = c
            .agency(NEWCASTLE)
            .risk_register()
            .get_record(proto::GetRecordRequest {
                agency_id: NORTHUMBRIA.into(),
                local_ref: "P-1".into(),
            })
            .await
            .expect_err("another agency's record");
        assert_ne!(refused.code(), Code::Ok);
        if refused.code() == Code::ResourceExhausted {
            // Past the caller's own rate limit: wait and carry on.
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }
    let mut recorded = 0;
    for _ in 0..40 {
        recorded = audit_events(&server)
            .iter()
            .filter(|e| e.method == "/marr.v1.RiskRegister/GetRecord")
            .map(refusals_in)
            .sum::<u64>();
        if recorded >= FLOOD {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(recorded, FLOOD, "every refusal is in the audit chain");
    assert!(
        audit_events(&server)
            .iter()
            .any(|e| e.outcome.contains("(aggregated)")),
        "past the limit they are aggregated"
    );
}

/// A health check carrying an unknown token and `x-forwarded-for`, so the refusal is recorded
/// with the address the server believed.
async fn refused_with_forwarded_for(url: &str, forwarded: &'static str) {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let mut client = tonic_health::pb::health_client::HealthClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            let headers = request.metadata_mut();
            headers.insert(
                "authorization",
                "Bearer not-a-token".parse().expect("ascii"),
            );
            headers.insert("x-forwarded-for", forwarded.parse().expect("ascii"));
            Ok(request)
        },
    );
    let refused = client
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect_err("unknown token");
    assert_eq!(refused.code(), Code::Unauthenticated);
}

/// How a stream's last read ended: its status code, or OK.
fn ended_with<T>(result: Result<Option<T>, tonic::Status>) -> Code {
    match result {
        Err(status) => status.code(),
        Ok(_) => Code::Ok,
    }
}

fn refused_from(server: &TestServer) -> Vec<String> {
    audit_events(server)
        .into_iter()
        .filter(|e| e.outcome.starts_with("Unauthenticated"))
        .map(|e| e.principal)
        .collect()
}

#[tokio::test]
async fn the_client_address_comes_from_a_trusted_proxy_header_and_nowhere_else() {
    // Behind a trusted proxy: the last entry, the one the proxy appended, is the client.
    let proxied = TestServer::start_configured(config_with(
        "[proxy]\ntrusted = [\"127.0.0.1\"]\nclient_address_header = \"x-forwarded-for\"\n",
    ))
    .await;
    refused_with_forwarded_for(&proxied.url, "198.51.100.7, 203.0.113.9").await;
    assert_eq!(
        refused_from(&proxied),
        vec!["unidentified caller from 203.0.113.9".to_string()]
    );

    // Without a proxy, or from a peer that is not the trusted proxy, the header is ignored.
    for extra in [
        "",
        "[proxy]\ntrusted = [\"192.0.2.1\"]\nclient_address_header = \"x-forwarded-for\"\n",
    ] {
        let direct = TestServer::start_configured(config_with(extra)).await;
        refused_with_forwarded_for(&direct.url, "203.0.113.9").await;
        assert_eq!(
            refused_from(&direct),
            vec!["unidentified caller from 127.0.0.1".to_string()],
            "config: {extra:?}"
        );
    }
}

#[tokio::test]
async fn open_streams_count_against_the_concurrency_cap() {
    let (server, c) = TestServer::north_east_in(
        TestServer::start_configured(config_with(
            "[limits]\nmax_concurrent_calls = 2\ncalls_per_second = 100000\nburst = 100000\n",
        ))
        .await,
    )
    .await;
    // Two boards, one stream each (one principal may hold only a share of the places).
    let watch = |board: marr::cli::Connection| async move {
        board
            .alerts()
            .watch(proto::WatchRequest::default())
            .await
            .expect("a watch within the cap opens")
            .into_inner()
    };
    let first = watch(c.board.clone()).await;
    let second = watch(c.as_token(GATESHEAD_BOARD)).await;
    let refused = c
        .as_token(NEWCASTLE_INSPECTOR)
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: NEWCASTLE.into(),
            ..Default::default()
        })
        .await
        .expect_err("a third call is over the cap");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let refused = c
        .board
        .alerts()
        .watch(proto::WatchRequest::default())
        .await
        .expect_err("a third stream is over the cap");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        c.public
            .directory()
            .list_child_places(proto::ListChildPlacesRequest {
                code: NEWCASTLE.into(),
            })
            .await
            .expect_err("so is a unary call")
            .code(),
        Code::ResourceExhausted
    );
    drop(first);
    drop(second);
    let mut served = false;
    for _ in 0..100 {
        if c.public
            .directory()
            .list_child_places(proto::ListChildPlacesRequest {
                code: NEWCASTLE.into(),
            })
            .await
            .is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "closing the streams frees their places");
    drop(server);
}

#[tokio::test]
async fn neither_the_public_nor_one_principal_can_take_everyones_places() {
    // A quarter of the places, here 2 of 8, is all that callers without credentials together,
    // or any one principal, may hold.
    let server = TestServer::start_configured(config_with(
        "[limits]\nmax_concurrent_calls = 8\ncalls_per_second = 100000\nburst = 100000\n",
    ))
    .await;
    let c = server.connect().await;
    let health = || {
        c.public
            .client(tonic_health::pb::health_client::HealthClient::new)
    };
    let idle_watch = || async {
        health()
            .watch(tonic_health::pb::HealthCheckRequest::default())
            .await
    };
    let _first = idle_watch().await.expect("a public watch opens");
    let _second = idle_watch().await.expect("a second one too");
    let refused = idle_watch()
        .await
        .expect_err("a third is past the public share");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("without credentials"),
        "{refused:?}"
    );
    c.admin
        .directory()
        .list_agencies(proto::ListAgenciesRequest {})
        .await
        .expect("a partner is still served while the public's share is full");

    // Each principal likewise: a board's idle watches cannot crowd out the others.
    let board_watch = || async { c.board.alerts().watch(proto::WatchRequest::default()).await };
    let _one = board_watch().await.expect("a board's watch opens");
    let _two = board_watch().await.expect("and a second");
    let refused = board_watch()
        .await
        .expect_err("a third is past the board's share");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("board is at the limit"),
        "{refused:?}"
    );
    c.inspector
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: ENGLAND.into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .or_else(|status| match status.code() {
            // No places are imported here: a NOT_FOUND is an answer, not a refusal.
            Code::NotFound => Ok(()),
            _ => Err(status),
        })
        .expect("another principal is still served");
}

#[tokio::test]
async fn sigterm_ends_idle_streams_with_unavailable_and_exits_within_the_drain() {
    let data = tempfile::tempdir().expect("dir");
    let config = data.path().join("marr.toml");
    std::fs::write(
        &config,
        format!("{}[limits]\ndrain_seconds = 3\n", principals_toml()),
    )
    .expect("config");
    let (server, url) = spawn_serve(&config, &data.path().join("store"));
    wait_until_serving(&url).await;
    let c = Connection::open(&url).await.expect("connects");
    north_east_directory(&c).await;

    // A push stream with one acknowledged record, then idle: the client sends nothing more.
    let (records, outbox) = tokio::sync::mpsc::channel::<proto::PushRecordsRequest>(4);
    let mut answers = c
        .risk_register()
        .push_records(tokio_stream::wrappers::ReceiverStream::new(outbox))
        .await
        .expect("push opens")
        .into_inner();
    records
        .send(proto::PushRecordsRequest {
            record: Some(record("DRAIN-1", 1)),
        })
        .await
        .expect("send");
    let acknowledged = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    assert_eq!(acknowledged.outcome, proto::Outcome::Accepted as i32);
    // A watch that has nothing to say.
    let mut watch = c
        .board
        .alerts()
        .watch(proto::WatchRequest::default())
        .await
        .expect("watch opens")
        .into_inner();

    let asked = std::time::Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());

    let push_end = tokio::time::timeout(Duration::from_secs(20), answers.message())
        .await
        .expect("the idle push stream is ended by the server");
    assert_eq!(ended_with(push_end), Code::Unavailable);
    let mut watch_end = Code::Ok;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(20), watch.message())
            .await
            .expect("the idle watch is ended by the server")
        {
            Ok(Some(_heartbeat)) => continue,
            other => {
                watch_end = ended_with(other);
                break;
            }
        }
    }
    assert_eq!(watch_end, Code::Unavailable);
    drop(records);

    let status = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || server.wait()),
    )
    .await
    .expect("the server exits well inside systemd's stop timeout (60 s)")
    .expect("wait")
    .expect("exit");
    assert_eq!(status.code(), Some(0), "a drained stop exits 0");
    eprintln!(
        "stopped {:.1} s after SIGTERM",
        asked.elapsed().as_secs_f64()
    );

    let store = marr::store::Store::open(&data.path().join("store")).expect("reopens");
    let key = marr::domain::RecordKey::parse(NEWCASTLE, "DRAIN-1").expect("key");
    assert_eq!(
        store.record(&key).expect("read").map(|r| r.sequence),
        Some(acknowledged.sequence),
        "what was acknowledged before the stop is durable"
    );
    store.close().await.expect("close");
}
