//! What an operator runs: `marr verify` offline, with and without `--repair`.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::postgres::Tree;
use common::*;
use marr::domain::Revision;
use marr::proto;
use marr::store::{Location, StoreOptions};

fn marr(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    run(Command::new(env!("CARGO_BIN_EXE_marr")).args(args).arg(dir))
}

/// `marr ARGS` on the register at `location` (`--data-dir` or a config naming the database).
fn marr_on(args: &[&str], location: &Location) -> (Option<i32>, String) {
    let scratch = tempfile::tempdir().expect("scratch");
    run(Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(args)
        .args(postgres::store_args(location, scratch.path())))
}

fn run(command: &mut Command) -> (Option<i32>, String) {
    let output = command
        .env_remove("MARR_TOKEN")
        .output()
        .expect("marr runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// The key bytes of a record, as the store writes them after a keyspace's prefix.
fn record_key(agency: &str, local_ref: &str) -> Vec<u8> {
    let mut key = vec![agency.len() as u8];
    key.extend_from_slice(agency.as_bytes());
    key.extend_from_slice(&(local_ref.len() as u16).to_be_bytes());
    key.extend_from_slice(local_ref.as_bytes());
    key
}

/// The key of a place index entry: the place, then the sequence of the latest revision there.
fn place_entry(place: &str, sequence: u64) -> Vec<u8> {
    let mut key = vec![b'Q'];
    key.extend_from_slice(place.as_bytes());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// A stopped server's data directory holding a few records.
async fn stopped_with_records() -> TestServer {
    let (mut server, connection) = TestServer::north_east().await;
    let answers = push_all(
        &connection,
        vec![
            rec(
                NEWCASTLE,
                "V-1",
                NEWCASTLE_WARD,
                1,
                proto::Severity::High,
                3,
            ),
            rec(
                NEWCASTLE,
                "V-2",
                NEWCASTLE_WARD,
                2,
                proto::Severity::Medium,
                2,
            ),
            rec(
                NORTHUMBRIA,
                "V-3",
                GATESHEAD_WARD,
                1,
                proto::Severity::High,
                1,
            ),
        ],
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32)
    );
    drop(connection);
    server.stop().await;
    server
}

#[tokio::test]
async fn verify_finds_projections_that_disagree_with_the_log_and_repair_rewrites_them() {
    let server = stopped_with_records().await;
    let data = server.location().clone();
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("projections agree with the log (head 3)"),
        "{text}"
    );

    // Lose one latest pointer, one place index entry and one audit index entry, and invent a
    // place index entry and an audit index entry, as a damaged disk might.
    let lost_event;
    {
        let tree = Tree::open(&data);
        let mut latest = vec![b'R'];
        latest.extend(record_key(NEWCASTLE, "V-2"));
        assert!(tree.remove(latest).expect("remove").is_some());
        assert!(
            tree.remove(place_entry(GATESHEAD_WARD, 3))
                .expect("remove")
                .is_some()
        );
        tree.insert(place_entry(HARTLEPOOL, 1), &[][..])
            .expect("insert");
        let (first, _) = tree
            .scan_prefix([b'H'])
            .into_iter()
            .next()
            .expect("a principal index entry")
            .expect("readable");
        lost_event = u64::from_be_bytes(first[first.len() - 8..].try_into().expect("sequence"));
        tree.remove(&first).expect("remove");
        let mut invented = vec![b'J', 3];
        invented.extend_from_slice(b"RTD");
        invented.extend_from_slice(&1u64.to_be_bytes());
        tree.insert(invented, &[][..]).expect("insert");
        tree.flush();
    }
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("latest E08000021/V-2: missing"), "{text}");
    assert!(
        text.contains(
            "place index: E08000021/V-1 (sequence 1) at E06000001 disagrees with the log"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "place index: E23000007/V-3 (sequence 3) at E05001088 disagrees with the log"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "audit principal index: event {lost_event} is missing"
        )),
        "{text}"
    );
    assert!(
        text.contains("audit agency index: event 1 under RTD disagrees with the chain"),
        "{text}"
    );

    let (code, text) = marr_on(&["verify", "--repair"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("repaired: 5 projection entries"), "{text}");
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("projections agree with the log (head 3)"),
        "{text}"
    );
}

#[tokio::test]
async fn verify_finds_a_wrong_checkpoint_a_lost_journal_entry_and_a_lost_watch_and_repair_rebuilds_them()
 {
    let server = stopped_with_records().await;
    let data = server.location().clone();
    // The clean stop checkpointed the counters at the head. A checkpoint filed under an
    // earlier sequence than the one it holds, a subject journal entry and a stale watch entry
    // lost, as a damaged disk or a faulty copy might leave them.
    {
        let tree = Tree::open(&data);
        let checkpoint = |sequence: u64| {
            let mut key = vec![b'K'];
            key.extend_from_slice(&sequence.to_be_bytes());
            key
        };
        let at_head = tree
            .get(checkpoint(3))
            .expect("read")
            .expect("checkpoint at head");
        tree.insert(checkpoint(1), at_head).expect("insert");
        let (journal, _) = tree
            .scan_prefix(b"B")
            .into_iter()
            .next()
            .expect("journal")
            .expect("entry");
        tree.remove(journal).expect("remove");
        let (watched, _) = tree
            .scan_prefix(b"D")
            .into_iter()
            .next()
            .expect("watch")
            .expect("entry");
        tree.remove(watched).expect("remove");
        tree.flush();
    }
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "checkpoint 1: the counters at {NEWCASTLE_WARD} differ from a replay of the log"
        )),
        "{text}"
    );
    assert!(text.contains("subject journal:"), "{text}");
    assert!(text.contains("stale watch:"), "{text}");

    let (code, text) = marr_on(&["verify", "--repair"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("repaired: 2 projection entries"), "{text}");
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("projections agree with the log (head 3)"),
        "{text}"
    );
}

/// The key of a log entry.
fn log_entry(sequence: u64) -> Vec<u8> {
    let mut key = vec![b'L'];
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

#[tokio::test]
async fn verify_names_each_damaged_entry_and_repair_fixes_all_but_a_gap_in_the_log() {
    let (mut server, connection) = TestServer::north_east().await;
    let answers = push_all(
        &connection,
        vec![
            rec(
                NEWCASTLE,
                "V-1",
                NEWCASTLE_WARD,
                1,
                proto::Severity::High,
                5,
            ),
            rec(
                NEWCASTLE,
                "V-2",
                NEWCASTLE_WARD,
                2,
                proto::Severity::High,
                5,
            ),
            rec(
                NORTHUMBRIA,
                "V-3",
                GATESHEAD_WARD,
                1,
                proto::Severity::High,
                5,
            ),
            rec(
                NEWCASTLE,
                "V-1",
                NEWCASTLE_WARD,
                1,
                proto::Severity::High,
                2,
            ),
            rec(
                NEWCASTLE,
                "V-2",
                NEWCASTLE_WARD,
                2,
                proto::Severity::Medium,
                2,
            ),
            rec(
                NEWCASTLE,
                "V-4",
                NEWCASTLE_WARD,
                3,
                proto::Severity::Medium,
                3,
            ),
            rec(
                NEWCASTLE,
                "V-5",
                NEWCASTLE_WARD,
                0,
                proto::Severity::Medium,
                3,
            ),
        ],
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32)
    );
    drop(connection);
    server.stop().await;
    let data = server.location().clone();

    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
    {
        let tree = Tree::open(&data);
        let revisions: Vec<Revision> = tree
            .scan_prefix(b"L")
            .into_iter()
            .map(|entry| postcard::from_bytes(&entry.expect("read").1).expect("revision"))
            .collect();
        let sequence_of = |local_ref: &str, revision: u32| {
            revisions
                .iter()
                .find(|r| r.record.key.local_ref.as_str() == local_ref && r.revision == revision)
                .expect("pushed")
                .sequence
        };
        assert_eq!(
            (1..=7)
                .map(|n| revisions[n - 1].sequence)
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!(
            [
                sequence_of("V-1", 1),
                sequence_of("V-2", 1),
                sequence_of("V-3", 1),
                sequence_of("V-1", 2),
                sequence_of("V-2", 2),
                sequence_of("V-4", 1),
            ],
            [1, 2, 3, 4, 5, 6]
        );

        // The latest pointer of V-1 goes back to its first revision.
        let mut latest = vec![b'R'];
        latest.extend(record_key(NEWCASTLE, "V-1"));
        tree.insert(latest, postcard::to_stdvec(&1u64).expect("encodes"))
            .expect("insert");
        // V-2's first revision, superseded, is listed at its place again.
        tree.insert(place_entry(NEWCASTLE_WARD, 2), &[][..])
            .expect("insert");
        // V-3's journal entry holds V-1's first entry instead.
        let journal_key = |sequence: u64| {
            tree.scan_prefix(b"B")
                .into_iter()
                .map(|entry| entry.expect("read").0)
                .find(|key| key[key.len() - 8..] == sequence.to_be_bytes())
                .expect("journal entry")
        };
        let of_v1 = tree.get(journal_key(1)).expect("read").expect("entry");
        tree.insert(journal_key(3), of_v1).expect("insert");
        // V-2's second revision is medium risk, yet the stale sweep is told to watch it.
        let received = revisions[4].received_at.unix_timestamp_nanos() as i64;
        let mut watch = vec![b'D'];
        watch.extend_from_slice(&((received as u64) ^ (1 << 63)).to_be_bytes());
        watch.extend_from_slice(&5u64.to_be_bytes());
        tree.insert(watch, &[][..]).expect("insert");
        // V-4's only revision leaves the log, its projections stay behind.
        assert!(tree.remove(log_entry(6)).expect("remove").is_some());
        tree.flush();
    }

    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(1), "{text}");
    let damage = [
        "latest E08000021/V-1: points at sequence 1, the log's latest is 4".to_string(),
        format!(
            "place index: E08000021/V-2 (sequence 2) at {NEWCASTLE_WARD} disagrees with the log"
        ),
        format!(
            "subject journal: E23000007/V-3 at 3 under {} is missing or wrong",
            subject(1)
        ),
        "stale watch: log entry 5 disagrees with the log and the alert log".to_string(),
        "latest E08000021/V-4: not in the log".to_string(),
        format!("place index: sequence 6 at {NEWCASTLE_WARD} disagrees with the log"),
        format!(
            "subject journal: entry at 6 under {} is not in the log",
            subject(3)
        ),
    ];
    for line in &damage {
        assert!(text.contains(line.as_str()), "{line} not in: {text}");
    }
    let gap = "log: expected sequence 6, found 7";
    assert!(text.contains(gap), "{text}");

    // The log is the truth and is never rewritten: its gap stays, everything else is fixed.
    let (code, text) = marr_on(&["verify", "--repair"], &data);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("repaired: 7 projection entries"), "{text}");
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(gap), "{text}");
    for line in &damage {
        assert!(!text.contains(line.as_str()), "{line} still in: {text}");
    }
    for kind in [
        "latest ",
        "place index",
        "subject journal",
        "stale watch",
        "counters",
    ] {
        assert!(!text.contains(kind), "{kind} still in: {text}");
    }
}

/// The key of a stale watch entry: when the revision was received, then its sequence.
fn watch_entry(revision: &Revision) -> Vec<u8> {
    let nanos = revision.received_at.unix_timestamp_nanos() as i64;
    let mut key = vec![b'D'];
    key.extend_from_slice(&((nanos as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(&revision.sequence.to_be_bytes());
    key
}

#[tokio::test]
async fn verify_tells_a_revision_reported_stale_from_one_the_sweep_lost() {
    let offset_days = Arc::new(AtomicI64::new(0));
    let clock_days = Arc::clone(&offset_days);
    let options = StoreOptions {
        clock: Arc::new(move || {
            time::OffsetDateTime::now_utc()
                + time::Duration::days(clock_days.load(Ordering::SeqCst))
        }),
        ..StoreOptions::default()
    };
    let (mut server, connection) = TestServer::north_east_with(options).await;
    let high = |local_ref: &str| {
        rec(
            NEWCASTLE,
            local_ref,
            NEWCASTLE_WARD,
            0,
            proto::Severity::High,
            9,
        )
    };
    let answers = push_all(&connection, vec![high("S-1"), high("S-2")]).await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == proto::Outcome::Accepted as i32)
    );
    offset_days.store(31, Ordering::SeqCst);
    assert_eq!(server.store().sweep_stale().await.expect("sweep"), 2);
    // A new revision of S-1, received after it was reported, is watched again.
    let mut reviewed = high("S-1");
    reviewed.note = "Reviewed at strategy meeting".into();
    reviewed.source_updated_at = Some(hours_ago(1));
    let answers = push_all(&connection, vec![reviewed]).await;
    assert_eq!(answers[0].outcome, proto::Outcome::Accepted as i32);
    drop(connection);
    server.stop().await;
    let data = server.location().clone();

    // S-2 was reported stale and left the watch; S-1's newer revision is on it.
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("projections agree with the log (head 3)"),
        "{text}"
    );

    // S-2 back on the watch would be reported twice; S-1 off it would never be.
    {
        let tree = Tree::open(&data);
        let revision = |sequence: u64| -> Revision {
            let value = tree
                .get(log_entry(sequence))
                .expect("read")
                .expect("logged");
            postcard::from_bytes(&value).expect("revision")
        };
        assert_eq!(revision(2).record.key.local_ref.as_str(), "S-2");
        assert_eq!(revision(3).record.key.local_ref.as_str(), "S-1");
        assert!(
            tree.insert(watch_entry(&revision(2)), &[][..])
                .expect("insert")
                .is_none()
        );
        assert!(
            tree.remove(watch_entry(&revision(3)))
                .expect("remove")
                .is_some()
        );
        tree.flush();
    }
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(1), "{text}");
    for sequence in [2, 3] {
        assert!(
            text.contains(&format!(
                "stale watch: log entry {sequence} disagrees with the log and the alert log"
            )),
            "{text}"
        );
    }
    let (code, text) = marr_on(&["verify", "--repair"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("repaired: 2 projection entries"), "{text}");
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test]
async fn a_store_of_the_first_layout_is_upgraded_on_open_and_answers_as_before() {
    let server = stopped_with_records().await;
    let data = server.location().clone();
    // Turn the store back into the first layout: a place index keyed (place, record), a
    // subject index keyed (subject, record), and none of the later indexes, checkpoints or
    // layout version.
    {
        let tree = Tree::open(&data);
        for prefix in [b"Q", b"H", b"J", b"B", b"D", b"K", b"Y"] {
            for entry in tree.scan_prefix(prefix) {
                tree.remove(entry.expect("entry").0).expect("remove");
            }
        }
        for (agency, local_ref, place, n) in [
            (NEWCASTLE, "V-1", NEWCASTLE_WARD, 3),
            (NEWCASTLE, "V-2", NEWCASTLE_WARD, 2),
            (NORTHUMBRIA, "V-3", GATESHEAD_WARD, 1),
        ] {
            let mut key = vec![b'S'];
            key.extend_from_slice(&hex::decode(subject(n)).expect("hex"));
            key.extend(record_key(agency, local_ref));
            tree.insert(key, &[][..]).expect("insert");
            let mut key = vec![b'P'];
            key.extend_from_slice(place.as_bytes());
            key.extend(record_key(agency, local_ref));
            tree.insert(key, &[][..]).expect("insert");
        }
        tree.flush();
    }
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("projections agree with the log (head 3)"),
        "{text}"
    );
    let tree = Tree::open(&data);
    assert_eq!(
        tree.scan_prefix(b"S").len(),
        0,
        "the old subject index is gone"
    );
    assert_eq!(
        tree.scan_prefix(b"P").len(),
        0,
        "the old place index is gone"
    );
    assert_eq!(tree.scan_prefix(b"Q").len(), 3, "one place entry a record");
    assert_eq!(
        tree.scan_prefix(b"B").len(),
        3,
        "one journal entry a record"
    );
    assert_eq!(tree.scan_prefix(b"D").len(), 2, "both high records watched");
    assert!(
        !tree.scan_prefix(b"K").is_empty(),
        "a checkpoint at the head"
    );
}

/// `marr restore` of `file` into the register at `location`.
fn restore(location: &Location, file: &Path) -> (Option<i32>, String) {
    let scratch = tempfile::tempdir().expect("scratch");
    run(Command::new(env!("CARGO_BIN_EXE_marr"))
        .arg("restore")
        .args(postgres::store_args(location, scratch.path()))
        .arg(file))
}

#[tokio::test]
async fn verify_refuses_a_directory_that_is_not_a_store() {
    let empty = tempfile::tempdir().expect("dir");
    let (code, text) = marr(&["verify", "--data-dir"], empty.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("is not a marr data directory"), "{text}");
}

/// Pushes Newcastle records one stream after another until told to stop; answers the
/// acknowledged (local reference, revision, sequence) triples.
async fn keep_pushing(
    connection: Connection,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, u32, u64)> {
    let mut acknowledged = Vec::new();
    let mut n = 0;
    while !*stop.borrow() {
        let records: Vec<proto::RiskRecord> = (0..50)
            .map(|i| {
                n += 1;
                rec(
                    NEWCASTLE,
                    &format!("L-{}", (n + i) % 300),
                    NEWCASTLE_WARD,
                    n % 40 + 1,
                    proto::Severity::High,
                    0,
                )
            })
            .map(|mut r| {
                // Each push is newer than the last, so updates become revisions.
                let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
                r.source_updated_at = Some(marr::api::convert::timestamp(at));
                r
            })
            .collect();
        for answer in push_all(&connection, records.clone()).await {
            if answer.outcome == proto::Outcome::Accepted as i32 {
                let local_ref = records[answer.index as usize].local_ref.clone();
                acknowledged.push((local_ref, answer.revision, answer.sequence));
            }
        }
    }
    acknowledged
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_to_a_store_that_verifies() {
    let (server, connection) = TestServer::north_east().await;
    push_all(
        &connection,
        vec![rec(
            NORTHUMBRIA,
            "B-1",
            GATESHEAD_WARD,
            1,
            proto::Severity::Critical,
            2,
        )],
    )
    .await;
    connection
        .inspection()
        .create_snapshot(proto::CreateSnapshotRequest {
            place_code: NEWCASTLE.into(),
            label: "Before the backup".into(),
            ..Default::default()
        })
        .await
        .expect("snapshot");
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(keep_pushing(connection.clone(), stopping));
    // Let the load get going, then back up while it runs.
    while server.store().head_sequence() < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = server.store().head_sequence();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("marr.backup");
    let (summary, bytes) = marr::cli::backup::backup(&connection.admin, &file)
        .await
        .expect("backup");
    let _ = stop.send(true);
    let acknowledged = load.await.expect("load");
    assert!(file.exists() && bytes > 0);
    assert!(!dir.path().join("marr.backup.partial").exists());
    let after = server.store().head_sequence();
    assert!(
        summary.head >= before && summary.head <= after,
        "the cut {} lies between {before} and {after}",
        summary.head
    );
    assert!(after > summary.head, "writes went on during the backup");

    let restored_at = postgres::location_in(&dir.path().join("restored"));
    let (code, text) = restore(&restored_at, &file);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("restored log to sequence {}", summary.head)),
        "{text}"
    );

    let restored = marr::store::Store::open_at(&restored_at, StoreOptions::default())
        .expect("the restored store opens");
    assert_eq!(restored.head_sequence(), summary.head);
    let original = server.store();
    let mut keys: Vec<String> = acknowledged.iter().map(|(r, _, _)| r.clone()).collect();
    keys.sort();
    keys.dedup();
    for local_ref in &keys {
        let key = marr::domain::RecordKey::parse(NEWCASTLE, local_ref).expect("key");
        let up_to_cut: Vec<_> = original
            .history(&key)
            .expect("history")
            .into_iter()
            .filter(|r| r.sequence <= summary.head)
            .collect();
        assert_eq!(
            restored.history(&key).expect("history"),
            up_to_cut,
            "{key}: the restored history is the original's up to the cut"
        );
    }
    for (local_ref, revision, sequence) in &acknowledged {
        if *sequence <= before {
            let key = marr::domain::RecordKey::parse(NEWCASTLE, local_ref).expect("key");
            assert!(
                restored
                    .history(&key)
                    .expect("history")
                    .iter()
                    .any(|r| r.revision == *revision && r.sequence == *sequence),
                "acknowledged before the backup began: {key} revision {revision}"
            );
        }
    }
    assert_eq!(restored.agencies(), original.agencies());
    let newcastle = marr::domain::PlaceCode::parse(NEWCASTLE).expect("code");
    assert_eq!(
        restored.child_places(newcastle),
        original.child_places(newcastle)
    );
    assert_eq!(
        restored.snapshot(1).expect("snapshot"),
        original.snapshot(1).expect("snapshot")
    );
    assert!(
        restored.alert_head() >= 1,
        "the critical record's alert came along"
    );
    assert!(restored.verify_audit().expect("audit").is_ok());
    assert_eq!(
        restored.verify_projections().expect("verify"),
        Vec::<String>::new()
    );
    restored.close().await.expect("close");
    drop(restored);

    // A second restore into the same store is refused and changes nothing.
    let (code, text) = restore(&restored_at, &file);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("is not empty") || text.contains("already holds a register"),
        "{text}"
    );

    // A truncated backup is refused, and leaves no half-built store behind.
    let truncated = dir.path().join("truncated.backup");
    let whole = std::fs::read(&file).expect("read");
    std::fs::write(&truncated, &whole[..whole.len() * 2 / 3]).expect("write");
    let elsewhere = postgres::location_in(&dir.path().join("elsewhere"));
    let (code, text) = restore(&elsewhere, &truncated);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("ends early"), "{text}");
    match &elsewhere {
        Location::Sled(dir) => assert!(!dir.exists()),
        Location::Postgres(_) => assert!(
            postgres::engine_at(&elsewhere).is_empty(),
            "a refused restore leaves the database's register empty"
        ),
    }
}

#[tokio::test]
async fn verify_finds_a_lost_overdue_watch_entry_and_repair_puts_it_back() {
    let (mut server, connection) = TestServer::north_east().await;
    let published = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let review = proto::Review {
        kind: proto::ReviewKind::SafeguardingPracticeReview as i32,
        title: "Safeguarding practice review of a missing child".into(),
        place_code: NEWCASTLE.into(),
        agency_ids: vec![NEWCASTLE.into()],
        fieldwork_start: "2026-01-05".into(),
        fieldwork_end: "2026-01-30".into(),
        published_at: Some(prost_types::Timestamp {
            seconds: published.unix_timestamp(),
            nanos: 0,
        }),
        findings: vec![proto::Finding {
            theme: "missing".into(),
            judgement: proto::Judgement::PriorityAction as i32,
            summary: "Return-home interviews were not offered".into(),
            recommendations: vec![proto::Recommendation {
                text: "Offer every return-home interview within 72 hours".into(),
                agency_id: NEWCASTLE.into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    connection
        .inspector
        .client(proto::reviews_client::ReviewsClient::new)
        .record_review(proto::RecordReviewRequest {
            review: Some(review),
            expected_revision: 0,
        })
        .await
        .expect("recorded");
    connection
        .agency(NEWCASTLE)
        .client(proto::reviews_client::ReviewsClient::new)
        .plan_action(proto::PlanActionRequest {
            recommendation: Some(proto::RecommendationRef {
                review_id: 1,
                finding: 1,
                recommendation: 1,
            }),
            description: "Commission return-home interviews".into(),
            owner: "Head of Children's Safeguarding".into(),
            due: "2031-01-31".into(),
            ..Default::default()
        })
        .await
        .expect("planned");
    drop(connection);
    server.stop().await;
    let data = server.location().clone();
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
    {
        let tree = Tree::open(&data);
        let (due, _) = tree
            .scan_prefix([b'd'])
            .into_iter()
            .next()
            .expect("the action awaits its due date")
            .expect("readable");
        tree.remove(&due).expect("remove");
        tree.flush();
    }
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("overdue watch: action 1.1.1 of review 1 due 2031-01-31 is missing"),
        "{text}"
    );
    let (code, text) = marr_on(&["verify", "--repair"], &data);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = marr_on(&["verify"], &data);
    assert_eq!(code, Some(0), "{text}");
}
