//! Both engines behind the storage seam answer alike: the same batches applied to sled and to
//! PostgreSQL leave the same entries, read back the same way by point, range, prefix and from
//! either end, so the store above them cannot tell which it runs on.

mod common;

use std::collections::BTreeMap;

use std::time::Duration;

use marr::store::engine::{Engine, Hold, Postgres, PostgresOptions, Sled, WriteBatch};
use marr::store::{Location, StoreError};
use proptest::prelude::*;

/// Keys from a small alphabet, so prefixes and neighbours collide often, and long enough
/// lists of them that reads cross the PostgreSQL engine's pages.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, 0x7F, 0xFF]), 0..5)
}

#[derive(Debug, Clone)]
enum Write {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

fn batches() -> impl Strategy<Value = Vec<Vec<Write>>> {
    let write = prop_oneof![
        4 => (key(), prop::collection::vec(any::<u8>(), 0..3)).prop_map(|(k, v)| Write::Insert(k, v)),
        1 => key().prop_map(Write::Remove),
    ];
    prop::collection::vec(prop::collection::vec(write, 1..120), 1..6)
}

fn postgres_engine() -> Postgres {
    match common::postgres::shared().database() {
        Location::Postgres(options) => {
            Postgres::open(&options, Hold::Alone).expect("the engine opens")
        }
        Location::Sled(_) => unreachable!("a cluster database is PostgreSQL"),
    }
}

fn all(entries: marr::store::engine::Entries<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries.map(|entry| entry.expect("readable")).collect()
}

/// Reads alternately from the front and the back, as the store's head lookups and reverse
/// pages do, following `pattern`.
fn zigzag(mut entries: marr::store::engine::Entries<'_>, pattern: &[bool]) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    for (n, from_back) in pattern.iter().cycle().enumerate() {
        let next = if *from_back {
            entries.next_back()
        } else {
            entries.next()
        };
        match next {
            Some(entry) => seen.push(entry.expect("readable").0),
            None => break,
        }
        assert!(n < 10_000, "an iterator that never ends");
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sled_and_postgres_read_back_the_same(
        batches in batches(),
        probes in prop::collection::vec((key(), key()), 1..8),
        pattern in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let sled = Sled::open(dir.path(), 16 << 20, false).expect("sled opens");
        let postgres = postgres_engine();
        let mut model = BTreeMap::new();
        for writes in &batches {
            let mut on_sled = WriteBatch::default();
            let mut on_postgres = WriteBatch::default();
            for write in writes {
                match write.clone() {
                    Write::Insert(key, value) => {
                        model.insert(key.clone(), value.clone());
                        on_sled.insert(key.clone(), value.clone());
                        on_postgres.insert(key, value);
                    }
                    Write::Remove(key) => {
                        model.remove(&key);
                        on_sled.remove(key.clone());
                        on_postgres.remove(key);
                    }
                }
            }
            sled.apply(on_sled).expect("sled applies");
            postgres.apply(on_postgres).expect("PostgreSQL applies");
        }
        let expected: Vec<_> = model.clone().into_iter().collect();
        prop_assert_eq!(all(sled.scan_prefix(b"")), expected.clone());
        prop_assert_eq!(all(postgres.scan_prefix(b"")), expected.clone());
        prop_assert_eq!(postgres.is_empty(), model.is_empty());
        let backwards: Vec<_> = postgres.scan_prefix(b"").rev().map(|e| e.expect("readable")).collect();
        prop_assert_eq!(backwards, expected.iter().rev().cloned().collect::<Vec<_>>());
        for (a, b) in &probes {
            prop_assert_eq!(postgres.get(a).expect("get"), sled.get(a).expect("get"));
            prop_assert_eq!(postgres.contains(a).expect("contains"), model.contains_key(a));
            prop_assert_eq!(postgres.first_after(a).expect("after"), sled.first_after(a).expect("after"));
            prop_assert_eq!(all(postgres.range(a, b)), all(sled.range(a, b)));
            prop_assert_eq!(all(postgres.scan_prefix(a)), all(sled.scan_prefix(a)));
            prop_assert_eq!(zigzag(postgres.range(a, b), &pattern), zigzag(sled.range(a, b), &pattern));
            prop_assert_eq!(zigzag(postgres.scan_prefix(a), &pattern), zigzag(sled.scan_prefix(a), &pattern));
        }
    }
}

/// A batch is one transaction: when part of it cannot be written, none of it is, and the
/// error says the database refused rather than passing for success.
#[test]
fn a_batch_the_database_refuses_leaves_nothing() {
    let postgres = postgres_engine();
    let mut first = WriteBatch::default();
    first.insert(b"a".to_vec(), b"1".to_vec());
    postgres.apply(first).expect("applies");
    // A key over the B-tree's row limit (and too random to compress under it) is refused by
    // the server, after the rest of the batch has been sent.
    let mut refused = WriteBatch::default();
    refused.insert(b"b".to_vec(), b"2".to_vec());
    refused.remove(b"a".to_vec());
    use sha2::Digest;
    let noise: Vec<u8> = (0..320u32)
        .flat_map(|n| sha2::Sha256::digest(n.to_be_bytes()))
        .collect();
    refused.insert(noise, b"3".to_vec());
    let error = postgres.apply(refused).expect_err("the batch is refused");
    assert!(
        matches!(error, StoreError::Database(_)),
        "a refusal by the database is a database failure, not {error:?}"
    );
    assert_eq!(
        all(postgres.scan_prefix(b"")),
        vec![(b"a".to_vec(), b"1".to_vec())]
    );
}

/// A database written by a later schema is refused, naming both versions, and left as it
/// was; a URL that asks for TLS without a CA to check the server is refused before any
/// connection is made.
#[test]
fn a_later_schema_and_tls_without_a_ca_are_refused() {
    let Location::Postgres(options) = common::postgres::shared().database() else {
        unreachable!()
    };
    drop(Postgres::open(&options, Hold::Alone).expect("creates the schema"));
    common::postgres::psql(
        &options.url,
        "INSERT INTO marr_schema (version) VALUES (99)",
    );
    let error = match Postgres::open(&options, Hold::Alone) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a database at schema 99 is opened"),
    };
    assert!(
        error.contains("version 99") && error.contains("version 2"),
        "{error}"
    );
    let tls = PostgresOptions::new(format!("{}?sslmode=require", options.url));
    let error = match Postgres::open(&tls, Hold::Alone) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("TLS without a CA is accepted"),
    };
    assert!(error.contains("[store] ca"), "{error}");
}

/// A server on PostgreSQL takes records over gRPC and keeps what it acknowledged across a
/// restart, whatever engine the other suites run on.
#[tokio::test]
async fn a_server_on_postgres_keeps_what_it_acknowledged_across_a_restart() {
    let location = tokio::task::spawn_blocking(|| common::postgres::shared().database())
        .await
        .expect("database");
    let server = common::TestServer::start_on(location).await;
    let (server, connection) = common::TestServer::north_east_in(server).await;
    let records: Vec<_> = (0..40)
        .map(|n| common::record(&format!("pg-{n}"), 2))
        .collect();
    common::push_all(&connection, records).await;
    let head = server.store().head_sequence();
    assert_eq!(head, 40, "each record is one revision");
    let server = server.restart().await;
    assert_eq!(server.store().head_sequence(), head);
    let connection = server.connect().await;
    let stored = common::head_of(&connection, common::NEWCASTLE, "pg-39")
        .await
        .expect("the last record acknowledged is there after the restart");
    assert_eq!((stored.revision, stored.sequence), (1, 40));
}

/// `marr move` with these arguments; answers the exit code and everything it printed.
fn move_register(from: &std::path::Path, to: &std::path::Path) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(["move", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .output()
        .expect("marr move runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// A register moves from sled into PostgreSQL and back whole: every revision with its
/// sequence, the audit chain and the directory; a server on the moved register answers as
/// the original did, and a move into a store that already holds a register is refused and
/// changes nothing.
#[tokio::test]
async fn a_register_moves_from_sled_to_postgres_and_back_unchanged() {
    let scratch = tempfile::tempdir().expect("scratch");
    let sled_dir = scratch.path().join("sled");
    let server = common::TestServer::start_on(Location::Sled(sled_dir.clone())).await;
    let (mut server, connection) = common::TestServer::north_east_in(server).await;
    let records: Vec<_> = (0..30)
        .map(|n| common::record(&format!("mv-{n}"), 3))
        .collect();
    common::push_all(&connection, records).await;
    let mut again = common::record("mv-7", 1);
    again.severity = marr::proto::Severity::Critical as i32;
    common::push_all(&connection, vec![again]).await;
    let head = server.store().head_sequence();
    let audit_head = server.store().audit_head().expect("audit head");
    server.stop().await;

    let database = tokio::task::spawn_blocking(|| common::postgres::shared().database())
        .await
        .expect("database");
    let config = scratch.path().join("postgres.toml");
    let Location::Postgres(options) = &database else {
        unreachable!()
    };
    std::fs::write(
        &config,
        format!(
            "[store]\nengine = \"postgres\"\nurl = \"{}\"\n",
            options.url
        ),
    )
    .expect("config");
    let (code, text) = move_register(&sled_dir, &config);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("log to sequence {head}")), "{text}");

    let on_postgres = common::TestServer::start_on(database.clone()).await;
    assert_eq!(on_postgres.store().head_sequence(), head);
    assert_eq!(on_postgres.store().audit_head().expect("head"), audit_head);
    let connection = on_postgres.connect().await;
    let moved = common::head_of(&connection, common::NEWCASTLE, "mv-7")
        .await
        .expect("moved");
    assert_eq!(moved.revision, 2, "both revisions came along");
    assert_eq!(
        moved.record.expect("record").severity,
        marr::proto::Severity::Critical as i32
    );
    let store = on_postgres.store().clone();
    let (problems, chain) = tokio::task::spawn_blocking(move || {
        (
            store.verify_projections().expect("verify"),
            store.verify_audit().expect("audit"),
        )
    })
    .await
    .expect("task");
    assert!(problems.is_empty(), "{problems:?}");
    assert!(chain.is_ok(), "{chain:?}");
    drop(connection);
    let mut on_postgres = on_postgres;
    on_postgres.stop().await;
    // Served on PostgreSQL, the register's own reads added audit events: what moves back is
    // what the database holds now.
    let audit_now = tokio::task::spawn_blocking({
        let database = database.clone();
        move || {
            let store = marr::store::Store::open_at(&database, Default::default()).expect("open");
            let head = store.audit_head().expect("head");
            store.close_blocking().expect("close");
            head
        }
    })
    .await
    .expect("task");

    // Into a store that holds a register: refused, both left as they were.
    let (code, text) = move_register(&config, &sled_dir);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("not empty"), "{text}");

    let back = scratch.path().join("back");
    let (code, text) = move_register(&config, &back);
    assert_eq!(code, Some(0), "{text}");
    let store = tokio::task::spawn_blocking(move || marr::store::Store::open(&back))
        .await
        .expect("task")
        .expect("the moved-back store opens");
    assert_eq!(store.head_sequence(), head);
    assert_eq!(store.audit_head().expect("head"), audit_now);
    store.close().await.expect("close");
}

/// With `[store] ca`, every connection to the database is TLS and the server's certificate is
/// checked: a server whose certificate another CA signed is refused before any query.
#[test]
fn connections_use_tls_and_check_the_database_certificate() {
    let certs = tempfile::tempdir().expect("dir");
    let trusted = certs.path().join("trusted");
    let other = certs.path().join("other");
    marr::cli::dev_certs::write(&trusted, &[]).expect("certificates");
    marr::cli::dev_certs::write(&other, &[]).expect("certificates");
    let cluster = common::postgres::Cluster::start_with_files(
        &[
            "ssl = on",
            "ssl_cert_file = '../server.pem'",
            "ssl_key_file = '../server.key'",
        ],
        &[
            (&trusted.join("server.pem"), "server.pem"),
            (&trusted.join("server.key"), "server.key"),
        ],
    );
    let Location::Postgres(mut options) = cluster.database() else {
        unreachable!()
    };
    options.ca = Some(trusted.join("ca.pem"));
    options.connections = 1;
    let engine = Postgres::open(&options, Hold::Alone).expect("opens over TLS");
    let mut batch = WriteBatch::default();
    batch.insert(b"k".to_vec(), b"v".to_vec());
    engine.apply(batch).expect("writes over TLS");
    // The pool's one connection and the one that holds the register's lock.
    let encrypted = common::postgres::psql(
        &cluster.url("postgres"),
        "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.datname <> 'postgres'",
    );
    assert_eq!(
        encrypted, "2/2",
        "every connection of the engine is encrypted"
    );
    drop(engine);

    options.ca = Some(other.join("ca.pem"));
    let error = match Postgres::open(&options, Hold::Alone) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a certificate from another CA is accepted"),
    };
    assert!(
        error.to_lowercase().contains("certificate"),
        "the refusal says why: {error}"
    );
}

/// Serving nodes share a register on PostgreSQL and take turns to write it: an offline tool
/// is refused while any node has it open (and a node while a tool has it), a node hears
/// another's turn, and a batch whose turn another node's came between (its lock lost with
/// its connection, say) is refused and lands nothing.
#[test]
fn nodes_share_a_register_take_turns_and_a_stale_turn_writes_nothing() {
    let Location::Postgres(options) = common::postgres::shared().database() else {
        unreachable!()
    };
    let first = Postgres::open(&options, Hold::Shared).expect("a node opens");
    let second = Postgres::open(&options, Hold::Shared).expect("a second node opens beside it");
    let error = match Postgres::open(&options, Hold::Alone) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a tool opened a register nodes are serving"),
    };
    assert!(error.contains("stop every node"), "{error}");

    // The first begins listening, then begins a turn and lets it go without writing.
    let mut listener = first.listen().expect("a shared engine listens");
    let heard = listener.wait(Duration::from_millis(10)).expect("listens");
    assert!(!heard.notified, "nothing was written yet");
    let began = first.begin_turn().expect("the first's turn");
    assert_eq!(heard.turns, began);
    first.end_turn();
    // The second takes its turn at the same count and writes.
    let turn = second.begin_turn().expect("the second's turn");
    assert_eq!(turn, began, "nothing was written between the turns");
    let mut batch = WriteBatch::default();
    batch.insert(b"from the second".to_vec(), b"y".to_vec());
    batch.in_turn(turn);
    second.apply(batch).expect("the node in its turn writes");
    second.end_turn();
    assert_eq!(first.turns().expect("counts"), began + 1);
    let heard = listener.wait(Duration::from_secs(10)).expect("listens");
    assert!(heard.notified, "the first hears the second's turn");
    assert_eq!(heard.turns, began + 1);

    // The first writes as if its turn had lasted: refused, and nothing of it lands.
    let mut batch = WriteBatch::default();
    batch.insert(b"from the first".to_vec(), b"x".to_vec());
    batch.in_turn(began);
    let error = first.apply(batch).expect_err("a stale turn writes");
    assert!(
        matches!(&error, StoreError::Unavailable(reason) if reason.contains("during this node's turn")),
        "{error:?}"
    );
    assert_eq!(
        all(second.scan_prefix(b"from")),
        vec![(b"from the second".to_vec(), b"y".to_vec())]
    );
    assert_eq!(
        first.turns().expect("counts"),
        began + 1,
        "the refusal counted nothing"
    );

    // Once the nodes are gone a tool has the register alone, and a node waits for it.
    drop((first, second));
    let tool = {
        let mut tries = 0;
        loop {
            match Postgres::open(&options, Hold::Alone) {
                Ok(engine) => break engine,
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("the tool never opens: {error}"),
            }
        }
    };
    let error = match Postgres::open(&options, Hold::Shared) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a node opened a register a tool has alone"),
    };
    assert!(error.contains("offline tool"), "{error}");
    drop(tool);
}
