//! Any client can join: a Python client with grpcio, its stubs generated from `proto/` at test
//! time, pushes records through the bidirectional stream, reads a place view and watches
//! alerts against a real server. The Python environment is made on first use in
//! `target/interop-venv`, from `tests/interop/requirements.txt`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The virtual environment with the pinned grpcio, made once per target directory.
fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/interop-venv");
    let python = venv.join("bin/python");
    let requirements = root.join("tests/interop/requirements.txt");
    let ready = venv.join(".requirements");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements");
    if std::fs::read_to_string(&ready).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 is on the machine");
    assert!(made.success(), "python3 -m venv failed");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(&requirements)
        .status()
        .expect("pip runs");
    assert!(
        installed.success(),
        "pip install -r tests/interop/requirements.txt failed"
    );
    std::fs::write(&ready, wanted).expect("mark the environment ready");
    python
}

#[tokio::test]
async fn a_python_client_pushes_reads_and_watches() {
    let python = tokio::task::spawn_blocking(python).await.expect("venv");
    let (server, _connection) = TestServer::north_east().await;
    let stubs = tempfile::tempdir().expect("dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let address = server.url.trim_start_matches("http://").to_string();
    let stub_dir = stubs.path().to_path_buf();
    // The server runs on this test's runtime: wait for the client off it.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(root.join("tests/interop/client.py"))
            .arg(root.join("proto"))
            .arg(stub_dir)
            .arg(address)
            .env("MARR_AGENCY_TOKEN", agency_token(NEWCASTLE))
            .env("MARR_INSPECTOR_TOKEN", INSPECTOR)
            .env("MARR_BOARD_TOKEN", BOARD)
            .output()
            .expect("the Python client runs")
    })
    .await
    .expect("client task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for line in [
        "pushed 10 records: all accepted, answered in order",
        "place view of Newcastle upon Tyne: 10 active",
        "critical_risk for PY-9",
        "without credentials: UNAUTHENTICATED",
    ] {
        assert!(stdout.contains(line), "{line} missing from:\n{stdout}");
    }
    // What the Python client pushed is in the register, exactly.
    let key = marr::domain::RecordKey::parse(NEWCASTLE, "PY-9").expect("key");
    let stored = server.store().record(&key).expect("read").expect("stored");
    assert_eq!(stored.record.note, "Pushed from Python");
}
