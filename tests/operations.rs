//! What an operator runs: `marr verify` offline, with and without `--repair`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use marr::proto;

fn marr(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(args)
        .arg(dir)
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
    let data = server.data_dir().to_path_buf();
    let (code, text) = marr(&["verify", "--data-dir"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("projections agree with the log (head 3)"),
        "{text}"
    );

    // Lose one latest pointer and invent a place index entry, as a damaged disk might.
    {
        let db = sled::open(&data).expect("opens");
        let tree = db.open_tree("register").expect("tree");
        let mut latest = vec![b'R'];
        latest.extend(record_key(NEWCASTLE, "V-2"));
        assert!(tree.remove(latest).expect("remove").is_some());
        let mut invented = vec![b'P'];
        invented.extend_from_slice(HARTLEPOOL.as_bytes());
        invented.extend(record_key(NEWCASTLE, "V-1"));
        tree.insert(invented, &[][..]).expect("insert");
        db.flush().expect("flush");
    }
    let (code, text) = marr(&["verify", "--data-dir"], &data);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("latest E08000021/V-2: missing"), "{text}");
    assert!(
        text.contains("place index: E08000021/V-1 at E06000001 disagrees with the log"),
        "{text}"
    );

    let (code, text) = marr(&["verify", "--repair", "--data-dir"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("repaired: 2 projection entries"), "{text}");
    let (code, text) = marr(&["verify", "--data-dir"], &data);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("projections agree with the log (head 3)"),
        "{text}"
    );
}

#[tokio::test]
async fn verify_refuses_a_directory_that_is_not_a_store() {
    let empty = tempfile::tempdir().expect("dir");
    let (code, text) = marr(&["verify", "--data-dir"], empty.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("is not a marr data directory"), "{text}");
}
