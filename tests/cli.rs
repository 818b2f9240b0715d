//! The `marr` binary as a user runs it, against a real server.

mod common;

use std::process::{Command, Output};

use common::*;

fn marr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(args)
        .env_remove("MARR_TOKEN")
        .output()
        .expect("marr runs")
}

async fn marr_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || marr(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("marr task")
}

/// The shared data the demo reads: `geography-2025/` and `population/`.
fn shared_data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

const HEADER: &str = "agency_id,local_ref,subject_key,place_code,client_group,category,severity,status,assessed_at,source_updated_at,lawful_basis,note";

fn csv_line(local_ref: &str, place: &str, category: &str) -> String {
    format!(
        "{NEWCASTLE},{local_ref},{},{place},children_in_need,{category},medium,active,2026-01-05T09:00:00Z,2026-01-06T10:30:00Z,children_act_1989_s17,\"Seen at home, with sibling\"",
        subject(7)
    )
}

#[tokio::test]
async fn push_of_a_csv_with_bad_rows_writes_the_rejects_and_one_summary_line() {
    let (server, _connection) = TestServer::north_east().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("extract.csv");
    let text = [
        HEADER.to_string(),
        csv_line("C-1", NEWCASTLE_WARD, "neglect"),
        csv_line("C-2", NEWCASTLE_WARD, "bullying"),
        csv_line("C-3", HARTLEPOOL, "neglect"),
        csv_line("C-4", NEWCASTLE, "missing"),
    ]
    .join("\n");
    std::fs::write(&file, text).expect("write extract");

    let output = marr_async(vec![
        "push".into(),
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        agency_token(NEWCASTLE).into(),
        file.display().to_string(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "rejected rows mean exit status 1; {stdout}"
    );
    assert_eq!(
        stdout.trim(),
        "pushed 4 records: 2 accepted, 0 unchanged, 0 stale, 2 rejected"
    );

    let rejects =
        std::fs::read_to_string(dir.path().join("extract.csv.rejects.csv")).expect("rejects file");
    let mut reader = csv::Reader::from_reader(rejects.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][0], "3");
    assert_eq!(&rows[0][2], "C-2");
    assert_eq!(&rows[0][3], "category");
    // The reason names the field, not the value: a shifted column can put anything there.
    assert!(rows[0][4].contains("is not a"), "{:?}", &rows[0]);
    assert!(!rows[0][4].contains("bullying"), "{:?}", &rows[0]);
    assert_eq!(&rows[1][2], "C-3");
    assert_eq!(&rows[1][3], "place_code");

    // The note with a comma arrived whole.
    let stored = head_of(&_connection, NEWCASTLE, "C-1")
        .await
        .expect("stored");
    assert_eq!(
        stored.record.expect("record").note,
        "Seen at home, with sibling"
    );

    // A second push of the same file: the good rows are unchanged now.
    let output = marr_async(vec![
        "push".into(),
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        agency_token(NEWCASTLE).into(),
        file.display().to_string(),
    ])
    .await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "pushed 4 records: 0 accepted, 2 unchanged, 0 stale, 2 rejected"
    );
}

#[tokio::test]
async fn push_of_json_lines_names_unknown_columns_and_exits_zero_when_all_are_taken() {
    let (server, _connection) = TestServer::north_east().await;
    let dir = tempfile::tempdir().expect("dir");
    let good = serde_json::json!({
        "agency_id": NEWCASTLE, "local_ref": "J-1", "subject_key": subject(3), "place_code": NEWCASTLE_WARD,
        "client_group": "looked_after_child", "category": "missing", "severity": "critical", "status": "active",
        "assessed_at": "2026-02-01T08:00:00Z", "source_updated_at": "2026-02-01T08:00:00Z",
        "lawful_basis": "children_act_1989_s47", "note": null
    });
    let mut extra = good.clone();
    extra["local_ref"] = "J-2".into();
    extra["child_name"] = "should never be sent".into();
    let file = dir.path().join("extract.jsonl");
    std::fs::write(&file, format!("{good}\n{extra}\n")).expect("write");
    let output = marr_async(vec![
        "push".into(),
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        agency_token(NEWCASTLE).into(),
        file.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "pushed 2 records: 1 accepted, 0 unchanged, 0 stale, 1 rejected"
    );
    let rejects =
        std::fs::read_to_string(dir.path().join("extract.jsonl.rejects.csv")).expect("rejects");
    assert!(rejects.contains("child_name"), "{rejects}");

    std::fs::write(&file, format!("{good}\n")).expect("rewrite");
    let output = marr_async(vec![
        "push".into(),
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        agency_token(NEWCASTLE).into(),
        file.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0));
    assert!(
        !dir.path().join("extract.jsonl.rejects.csv").exists(),
        "no rejects, no stale rejects file"
    );
}

#[test]
fn an_unreachable_server_is_exit_status_2_with_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("extract.csv");
    std::fs::write(&file, HEADER).expect("write");
    // Port 9 (discard) is not listening here.
    let output = marr(&[
        "push",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        agency_token(NEWCASTLE),
        &file.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("marr: UNAVAILABLE: cannot reach the server"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_refusal_prints_its_code_name_first() {
    let (server, _c) = TestServer::north_east().await;
    for (token, code) in [
        ("not-a-token", "UNAUTHENTICATED"),
        (agency_token(NEWCASTLE), "PERMISSION_DENIED"),
    ] {
        let output = marr_async(vec![
            "view".into(),
            NEWCASTLE.into(),
            "--server".into(),
            server.url.clone(),
            "--token".into(),
            token.into(),
        ])
        .await;
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(&format!("marr: {code}: ")), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[tokio::test]
async fn an_empty_marr_variable_means_unset() {
    let (server, _c) = TestServer::north_east().await;
    let url = server.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_marr"))
            .args(["health", "--server", &url])
            .env("MARR_TOKEN", "")
            .env("MARR_CA", "")
            .env("MARR_CERT", "")
            .env("MARR_KEY", "")
            .env("MARR_WAIT", "")
            .output()
            .expect("marr runs")
    })
    .await
    .expect("task");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "SERVING");
}

#[tokio::test]
async fn client_commands_wait_for_a_server_still_opening_its_store() {
    let mut server = OpeningServer::start().await;
    let url = server.url.clone();
    let list = |wait: &str| {
        vec![
            "view".to_string(),
            ENGLAND.into(),
            "--server".into(),
            url.clone(),
            "--token".into(),
            INSPECTOR.into(),
            "--wait".into(),
            wait.into(),
        ]
    };
    // Without waiting, the answer is that the server is not ready.
    let output = marr_async(list("0")).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("marr: UNAVAILABLE: "), "{stderr}");
    // Waiting, it is answered once the store is open: here it says the place is unknown,
    // which only the opened register can say.
    let waiting = tokio::spawn(marr_async(list("60")));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished(), "it waited for the store to open");
    server.open();
    let output = waiting.await.expect("task");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("marr: NOT_FOUND: "), "{stderr}");
    server.stop().await;
}

#[tokio::test]
async fn places_import_and_agencies_register_from_the_command_line() {
    let server = TestServer::start().await;
    let output = marr_async(vec![
        "places".into(),
        "import".into(),
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        ADMIN.into(),
        geography_file(POLICE).display().to_string(),
        geography_file(WARDS).display().to_string(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ward") && stdout.contains("8887"),
        "{stdout}"
    );
    assert!(stdout.contains("0 rows skipped"), "{stdout}");

    let register = |footprint: &str| {
        vec![
            "agencies".into(),
            "register".into(),
            "--server".into(),
            server.url.clone(),
            "--token".into(),
            ADMIN.into(),
            "--id".into(),
            NORTHUMBRIA.into(),
            "--kind".into(),
            "police".into(),
            "--name".into(),
            "Northumbria Police".into(),
            "--footprint".into(),
            footprint.to_string(),
        ]
    };
    let output = marr_async(register(NORTHUMBRIA)).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = marr_async(register("E23999999")).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("E23999999"));
}

#[test]
fn serve_names_a_bad_config_key() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("marr.toml");
    std::fs::write(
        &config,
        "[[principal]]\nname = \"inspector-1\"\nrole = \"inspector\"\ntoken_sha256 = \"not-a-hash\"\n",
    )
    .expect("write");
    let output = marr(&["serve", "--config", &config.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("principal[0].token_sha256"), "{stderr}");
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm_and_keeps_what_it_acknowledged() {
    let data = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let config = data.path().join("marr.toml");
    // The file says one address; the flag wins.
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:1\"\n{}", principals_toml()),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args([
            "serve",
            "--config",
            &config.display().to_string(),
            "--listen",
            &listen,
        ])
        .arg("--data-dir")
        .arg(data.path().join("store"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let url = format!("http://{listen}");
    wait_until_serving(&url).await;
    let connection = Connection::open(&url).await.expect("connects");
    north_east_directory(&connection).await;
    let answers = push_all(&connection, vec![record("SIG-1", 1)]).await;
    assert_eq!(answers[0].outcome, marr::proto::Outcome::Accepted as i32);
    drop(connection);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("wait")
        .expect("exit");
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM drains, flushes and exits 0"
    );

    let store = marr::store::Store::open(&data.path().join("store")).expect("reopens");
    let key = marr::domain::RecordKey::parse(NEWCASTLE, "SIG-1").expect("key");
    assert_eq!(
        store.record(&key).expect("read").map(|r| r.sequence),
        Some(1)
    );
    store.close().await.expect("close");
}

#[tokio::test]
async fn the_demo_runs_on_englands_current_geography_with_rates_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let data = shared_data_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env_remove("MARR_DEMO_DATA")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, status) = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            let ready = line.starts_with("Serving until Ctrl-C");
            lines.push(line);
            if ready {
                let interrupt = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .expect("kill");
                assert!(interrupt.success());
            }
        }
        (lines, child.wait().expect("exit"))
    })
    .await
    .expect("demo task");
    let text = lines.join("\n");
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(
        text.contains("pushed 3000 records: 3000 accepted, 0 unchanged, 0 stale, 0 rejected"),
        "{text}"
    );
    // England as it is today, not a sample: every current ward, force area and ICB.
    let level = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(name)).then(|| words.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("a count of {name} places in {text}"))
    };
    assert!(level("ward") > 8000, "{text}");
    assert_eq!(level("police_force_area"), 43, "{text}");
    assert_eq!(level("integrated_care_board"), 42, "{text}");
    // Boundaries for maps, the force areas and safety partnerships dissolved from districts.
    assert!(
        text.lines()
            .any(|l| l.contains("shapes stored") && l.contains("357 dissolved from districts")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("figures stored for")
            && l.contains("(years 2022, 2023, 2024), 0 rows skipped")),
        "{text}"
    );
    assert!(text.contains("registered E23000007"), "{text}");
    // The story: a view, a subject three agencies know, the board's alerts, the public table.
    assert!(
        text.contains("Newcastle upon Tyne (E08000021, district)"),
        "{text}"
    );
    // The view gives rates beside the counts, and breaks Newcastle down by its wards.
    assert!(
        text.lines()
            .any(|l| l.starts_with("  children_in_need ") && l.ends_with("aged 0 to 17 in 2024")),
        "{text}"
    );
    let wards = text
        .lines()
        .filter(|l| l.starts_with("  ward      E05"))
        .count();
    assert!(wards >= 20, "Newcastle's wards hold records: {text}");
    // The comparison of the region's twelve upper-tier authorities, with rates.
    let compared: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("authority "))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(compared.len(), 12, "{text}");
    let newcastle = compared
        .iter()
        .find(|l| l.starts_with("Newcastle upon Tyne"))
        .unwrap_or_else(|| panic!("Newcastle's row in {compared:?}"));
    assert!(
        newcastle
            .split_whitespace()
            .any(|w| w.contains('.') && w.parse::<f64>().is_ok_and(|r| r > 0.0)),
        "a rate per 10,000 in {newcastle}"
    );
    // Newcastle beside its ten DfE neighbours, its region and England, with its standing.
    assert!(
        text.contains("neighbours stored for 153 authorities, 0 rows skipped"),
        "{text}"
    );
    let beside: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("# And Newcastle beside"))
        .skip_while(|l| !l.starts_with("authority "))
        .skip(2)
        .take_while(|l| !l.starts_with("Newcastle ranks"))
        .collect();
    assert_eq!(
        beside.len(),
        13,
        "the place, ten neighbours, region, England: {text}"
    );
    assert!(beside[0].starts_with("Newcastle upon Tyne"), "{beside:?}");
    assert!(beside[12].starts_with("England"), "{beside:?}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Newcastle ranks ") && l.contains(" of 11 (quartile ")),
        "{text}"
    );
    assert!(
        text.contains(
            "multi_agency high E08000021 youth_justice: one subject is now active at 2 agencies"
        ),
        "{text}"
    );
    assert!(
        text.contains("one subject is now active at 3 agencies: E08000021, E23000007, RTD"),
        "{text}"
    );
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("upper-tier authority"))
        .take(14)
        .collect();
    assert_eq!(table.len(), 14, "{text}");
    assert!(
        table.iter().any(|l| l.split_whitespace().any(|w| w == "c")),
        "{table:?}"
    );
    assert!(table[13].starts_with("North East"), "{table:?}");
    // Learning from reviews: two published reviews, an action past its due date that the
    // board is told of, the region's lessons by theme, and lines of enquiry for a place whose
    // statistical neighbours were reviewed.
    for id in [1, 2] {
        assert!(
            text.contains(&format!("review {id} revision 1: published ")),
            "{text}"
        );
    }
    assert!(
        text.lines().any(|l| l.starts_with('#')
            && l.contains(
                " overdue_action high E08000021: action 2.1.1 of review 1 (a priority action)"
            )),
        "{text}"
    );
    let lessons: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Lessons of North East (E12000001): 2 reviews"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .collect();
    let total: u64 = lessons
        .iter()
        .filter_map(|l| l.split_whitespace().nth(4)?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        total, 6,
        "every finding of both reviews counted once: {lessons:?}"
    );
    assert!(
        lessons
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["information_sharing", "0", "1", "1", "2", "0", "new"]),
        "{lessons:?}"
    );
    assert!(
        text.contains("Lines of enquiry for Middlesbrough (E06000002)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(" 1. information_sharing ")),
        "{text}"
    );
}

#[test]
fn the_demo_without_its_data_stops_with_one_line_naming_the_file_and_the_flag() {
    let empty = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("MARR_DEMO_DATA", empty.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("marr runs");
    // A demo that went on to serve would never exit by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().expect("kill");
            panic!("the demo ran on without its data");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let missing = empty.path().join("geography-2025/la-changes-2018-2025.csv");
    assert!(
        stderr.starts_with(&format!("marr demo: cannot find {}", missing.display())),
        "{stderr}"
    );
    assert!(stderr.contains("--data"), "{stderr}");
    // It stopped before serving anything.
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn view_and_follow_print_tables_and_json_lines() {
    let (server, connection) = TestServer::north_east().await;
    let mut police = record("P-1", 3);
    police.agency_id = NORTHUMBRIA.into();
    police.place_code = NEWCASTLE.into();
    police.lawful_basis = marr::proto::LawfulBasis::CrimeAndDisorderAct1998S115 as i32;
    let answers = push_all(
        &connection,
        vec![record("C-1", 5), record("C-2", 4), police],
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.outcome == marr::proto::Outcome::Accepted as i32)
    );

    let output = marr_async(vec![
        "view".into(),
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        INSPECTOR.into(),
        NEWCASTLE.into(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON object per line");
    let view: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(view["place_name"], "Newcastle upon Tyne");
    assert_eq!(view["total_active"], 3);
    assert_eq!(view["by_severity"]["high"], 3);
    assert_eq!(view["by_agency_kind"]["police"], 1);
    assert_eq!(view["subjects_at_two_or_more_agencies"], 1);

    let output = marr_async(vec![
        "view".into(),
        "--server".into(),
        server.url.clone(),
        "--token".into(),
        INSPECTOR.into(),
        NEWCASTLE.into(),
        "--client-group".into(),
        "youth_justice".into(),
    ])
    .await;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.starts_with("Newcastle upon Tyne (E08000021, district): 0 active records"),
        "{table}"
    );

    let follow = |purpose: &str| {
        vec![
            "follow".to_string(),
            "--server".into(),
            server.url.clone(),
            "--token".into(),
            INSPECTOR.into(),
            subject(1),
            "--purpose".into(),
            purpose.to_string(),
            "--format".into(),
            "json".into(),
        ]
    };
    let output = marr_async(follow("Joint inspection of exploitation pathways")).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["local_ref"], "C-1", "oldest version first");
    assert_eq!(lines[2]["agency_kind"], "police");

    let output = marr_async(follow("because")).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("purpose"));
}

/// Starts `marr watch` and hands back its output lines as they come.
fn spawn_watch(
    url: &str,
    cursor: &std::path::Path,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args([
            "watch",
            "--server",
            url,
            "--token",
            BOARD,
            "--place",
            NEWCASTLE,
            "--format",
            "json",
            "--cursor-file",
        ])
        .arg(cursor)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("watch starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    (child, receiver)
}

fn next_sequence(lines: &std::sync::mpsc::Receiver<String>) -> u64 {
    let line = lines
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("an alert line in time");
    let alert: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(alert["kind"], "critical_risk", "{line}");
    alert["sequence"].as_u64().expect("sequence")
}

#[tokio::test]
async fn watch_prints_alerts_keeps_its_cursor_and_resumes_without_duplicates() {
    let (server, connection) = TestServer::north_east().await;
    let critical = |local_ref: &str| {
        let mut r = record(local_ref, 3);
        r.severity = marr::proto::Severity::Critical as i32;
        r.subject_key = String::new();
        r
    };
    push_all(&connection, vec![critical("W-1"), critical("W-2")]).await;
    let dir = tempfile::tempdir().expect("dir");
    let cursor = dir.path().join("board.cursor");

    let url = server.url.clone();
    let cursor_path = cursor.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let (mut child, lines) = spawn_watch(&url, &cursor_path);
        let seen = (next_sequence(&lines), next_sequence(&lines));
        // The cursor is saved after each alert.
        for _ in 0..100 {
            if std::fs::read_to_string(&cursor_path)
                .map(|c| c.trim() == "2")
                .unwrap_or(false)
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        seen
    })
    .await
    .expect("first watch");
    assert_eq!((first, second), (1, 2));
    assert_eq!(
        std::fs::read_to_string(&cursor).expect("cursor").trim(),
        "2"
    );

    push_all(&connection, vec![critical("W-3")]).await;
    let url = server.url.clone();
    let cursor_path = cursor.clone();
    let third = tokio::task::spawn_blocking(move || {
        let (mut child, lines) = spawn_watch(&url, &cursor_path);
        let seen = next_sequence(&lines);
        let _ = child.kill();
        let _ = child.wait();
        seen
    })
    .await
    .expect("second watch");
    assert_eq!(third, 3, "resumed after the cursor: no duplicate, no gap");
}

#[test]
fn pseudonymise_writes_one_key_per_number_and_names_bad_lines_without_echoing_them() {
    let dir = tempfile::tempdir().expect("dir");
    let key = dir.path().join("linkage.key");
    std::fs::write(&key, "north-east-information-sharing-agreement-2026-key\n").expect("key");
    let numbers = dir.path().join("numbers.txt");
    std::fs::write(&numbers, "943 476 5919\n943 476 5918\n9434765919\n").expect("numbers");
    let output = marr(&[
        "pseudonymise",
        "--key-file",
        &key.display().to_string(),
        &numbers.display().to_string(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a refused line means exit status 1"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = "22aa41a38b05eca347caa074ad2f2c84bbc6bf5235615c4c9d4c4d8afde1786f";
    assert_eq!(
        lines,
        vec![expected, "", expected],
        "keys stay level with their numbers"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("modulus-11"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("5918"),
        "the number itself is never echoed: {stderr}"
    );

    std::fs::write(&key, "too short").expect("key");
    let output = marr(&[
        "pseudonymise",
        "--key-file",
        &key.display().to_string(),
        &numbers.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32 bytes"));
}

#[tokio::test]
async fn watch_reconnects_when_the_server_goes_away_and_misses_nothing() {
    let (server, connection) = TestServer::north_east().await;
    let critical = |local_ref: &str| {
        let mut r = record(local_ref, 3);
        r.severity = marr::proto::Severity::Critical as i32;
        r.subject_key = String::new();
        r
    };
    push_all(&connection, vec![critical("R-1")]).await;
    drop(connection);
    let dir = tempfile::tempdir().expect("dir");
    let cursor = dir.path().join("board.cursor");
    let (mut child, lines) = spawn_watch(&server.url, &cursor);
    let first = tokio::task::spawn_blocking(move || (next_sequence(&lines), lines))
        .await
        .expect("first alert");
    assert_eq!(first.0, 1);
    let lines = first.1;

    // The server goes down for a while, comes back on the same address, and raises more.
    let server = server
        .restart_in_place(std::time::Duration::from_millis(700))
        .await;
    let connection = server.connect().await;
    push_all(&connection, vec![critical("R-2"), critical("R-3")]).await;
    let (second, third) =
        tokio::task::spawn_blocking(move || (next_sequence(&lines), next_sequence(&lines)))
            .await
            .expect("alerts after the restart");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        (second, third),
        (2, 3),
        "resumed after reconnecting, nothing missed or repeated"
    );
}

#[tokio::test]
async fn serve_logs_one_json_object_per_line_when_asked() {
    use std::io::{BufRead, BufReader};
    let data = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(["serve", "--log-format", "json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data.path().join("store"))
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let pid = child.id().to_string();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("line");
            let serving = line.contains("serving marr.v1");
            lines.push(line);
            if serving {
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
            }
        }
        lines
    })
    .await
    .expect("reader");
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(0), "{lines:?}");
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let object: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(
            object["level"].is_string() && object["fields"]["message"].is_string(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("NOT_SERVING")), "{lines:?}");
}

#[tokio::test]
async fn health_answers_serving_for_probes() {
    let server = TestServer::start().await;
    let output = marr_async(vec!["health".into(), "--server".into(), server.url.clone()]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "SERVING");
    let output = marr_async(vec![
        "health".into(),
        "--server".into(),
        server.url.clone(),
        "--service".into(),
        "marr.v1.NoSuchService".into(),
    ])
    .await;
    assert_ne!(
        output.status.code(),
        Some(0),
        "an unknown service is not serving"
    );
}

/// The body of an HTTP GET, read over a plain socket.
fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("metrics port");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
}

#[tokio::test]
async fn serve_exports_prometheus_metrics_on_their_own_port() {
    let data = tempfile::tempdir().expect("dir");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .to_string()
    };
    let (listen, metrics) = (free(), free());
    let config = data.path().join("marr.toml");
    std::fs::write(&config, principals_toml()).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args([
            "serve",
            "--listen",
            &listen,
            "--metrics-listen",
            &metrics,
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(data.path().join("store"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let url = format!("http://{listen}");
    wait_until_serving(&url).await;
    let connection = Connection::open(&url).await.expect("connects");
    north_east_directory(&connection).await;
    let mut bad = record("M-2", 1);
    bad.place_code = HARTLEPOOL.into();
    let answers = push_all(&connection, vec![record("M-1", 1), bad]).await;
    assert_eq!(answers.len(), 2);

    let address = metrics.clone();
    let text = tokio::task::spawn_blocking(move || http_get(&address, "/metrics"))
        .await
        .expect("scrape");
    let _ = child.kill();
    let _ = child.wait();
    for expected in [
        "marr_records_total{outcome=\"accepted\"} 1",
        "marr_records_total{outcome=\"rejected\"} 1",
        "marr_requests_total{method=\"PushRecords\",code=\"Ok\"} 1",
        "marr_requests_total{method=\"ImportPlaces\",code=\"Ok\"} 1",
        "marr_writer_batch_records_bucket",
        "marr_writer_flush_seconds_bucket",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

/// The example review file, as the README records it.
fn example_review() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/review.toml")
}

/// Runs `marr` with `args` against `url` as the holder of `token` (none: the public).
async fn marr_as(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--server".to_string(), url.to_string()]);
    if let Some(token) = token {
        all.extend(["--token".to_string(), token.to_string()]);
    }
    marr_async(all).await
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_review_recorded_from_the_example_file_is_listed_counted_in_lessons_and_exported() {
    let (server, _connection) = TestServer::north_east().await;
    let file = example_review().display().to_string();
    let output = marr_as(&server.url, Some(INSPECTOR), &["reviews", "record", &file]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(
        stdout_of(&output).trim(),
        "review 1 revision 1: published 2026-05-01T09:00:00Z; 3 findings, 3 recommendations"
    );

    // Anyone lists it, without credentials.
    let output = marr_as(&server.url, None, &["reviews", "list"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let listed = stdout_of(&output);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].contains("joint_targeted_area_inspection")
            && lines[0].contains("Newcastle upon Tyne (E08000021)")
            && lines[0].contains("\"Joint targeted area inspection of the multi-agency response to child exploitation\""),
        "{listed}"
    );
    assert_eq!(lines[1], "1 reviews");

    // The lessons of the region count each of the file's findings once, by theme and judgement.
    let output = marr_as(
        &server.url,
        None,
        &[
            "lessons",
            "--area",
            NORTH_EAST,
            "--from",
            "2026-01-01",
            "--until",
            "2027-01-01",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let lessons: serde_json::Value =
        serde_json::from_str(stdout_of(&output).trim()).expect("one JSON object");
    assert_eq!(lessons["reviews"], 1);
    assert_eq!(lessons["findings"], 3);
    let count = |theme: &str, judgement: &str| -> u64 {
        lessons["themes"]
            .as_array()
            .expect("themes")
            .iter()
            .find(|t| t["theme"] == theme)
            .and_then(|t| t[judgement].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(count("child_criminal_exploitation", "strengths"), 1);
    assert_eq!(count("information_sharing", "priority_actions"), 1);
    assert_eq!(count("missing", "areas_for_improvement"), 1);
    let total: u64 = lessons["themes"]
        .as_array()
        .expect("themes")
        .iter()
        .map(|t| t["total"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 3, "{lessons}");

    // The findings table: one row per recommendation, one for the finding without any.
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("findings.csv");
    let output = marr_as(
        &server.url,
        None,
        &[
            "export",
            "--table",
            "findings",
            "--out",
            &out.display().to_string(),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let mut reader = csv::Reader::from_path(&out).expect("findings file");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header[0], "review_id");
    assert_eq!(header[14], "recommendation_text");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let cells: Vec<(String, String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r[7].to_string(),
                r[8].to_string(),
                r[10].to_string(),
                r[12].to_string(),
                r[13].to_string(),
            )
        })
        .collect();
    let expect = |f: &str, theme: &str, judgement: &str, r: &str, agency: &str| {
        (
            f.to_string(),
            theme.to_string(),
            judgement.to_string(),
            r.to_string(),
            agency.to_string(),
        )
    };
    assert_eq!(
        cells,
        vec![
            expect("1", "child_criminal_exploitation", "strength", "", ""),
            expect(
                "2",
                "information_sharing",
                "priority_action",
                "1",
                NORTHUMBRIA
            ),
            expect("2", "information_sharing", "priority_action", "2", "RTD"),
            expect("3", "missing", "area_for_improvement", "1", NEWCASTLE),
        ]
    );
    assert!(rows.iter().all(|r| &r[4] == NEWCASTLE
        && &r[5] == "Newcastle upon Tyne"
        && &r[6] == "2026-05-01T09:00:00Z"));
    assert_eq!(&rows[1][9], "practice");

    // The default table is still the comparative one, which needs its parent and level.
    let output = marr_as(
        &server.url,
        None,
        &["export", "--out", &out.display().to_string()],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("--parent and --level"),
        "{}",
        stderr_of(&output)
    );

    // A correction is a new revision made against the one it replaces; the first is kept.
    let correct = [
        "reviews",
        "record",
        &file,
        "--correct",
        "1",
        "--expected-revision",
        "1",
        "--note",
        "Finding 3 reworded",
    ];
    let output = marr_as(&server.url, Some(INSPECTOR), &correct).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).starts_with("review 1 revision 2: published "),
        "{}",
        stdout_of(&output)
    );
    let output = marr_as(&server.url, Some(INSPECTOR), &correct).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).starts_with("marr: FAILED_PRECONDITION: review 1 is at revision 2"),
        "{}",
        stderr_of(&output)
    );
    let output = marr_as(
        &server.url,
        None,
        &["reviews", "show", "1", "--revision", "1"],
    )
    .await;
    assert!(
        stdout_of(&output).starts_with("review 1 revision 1 of 2: "),
        "{}",
        stdout_of(&output)
    );
}

#[tokio::test]
async fn a_review_file_with_a_telephone_number_is_refused_naming_the_field_and_nothing_is_recorded()
{
    let (server, _connection) = TestServer::north_east().await;
    let text = std::fs::read_to_string(example_review()).expect("example");
    let leaked = text.replace(
        "Leaders share a clear strategy for exploitation and partners understand it.",
        "Leaders share a clear strategy; the lead can be called on 0191 498 0000.",
    );
    assert_ne!(text, leaked);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("review.toml");
    std::fs::write(&file, leaked).expect("write");
    let output = marr_as(
        &server.url,
        Some(INSPECTOR),
        &["reviews", "record", &file.display().to_string()],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("marr: INVALID_ARGUMENT: ")
            && stderr.contains("review.findings[0].summary: "),
        "{stderr}"
    );
    assert!(stderr.contains("telephone"), "{stderr}");
    assert!(
        !stderr.contains("0191"),
        "the refusal never repeats the text: {stderr}"
    );

    // A key the review has no field for is refused before anything is sent, naming its line.
    std::fs::write(&file, format!("{text}child_name = \"never sent\"\n")).expect("write");
    let output = marr_as(
        &server.url,
        Some(INSPECTOR),
        &["reviews", "record", &file.display().to_string()],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("marr: INVALID_ARGUMENT: ")
            && stderr.contains("unknown field `child_name`"),
        "{stderr}"
    );
    assert!(!stderr.contains("never sent"), "{stderr}");

    let output = marr_as(
        &server.url,
        Some(INSPECTOR),
        &["reviews", "list", "--unpublished"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(stdout_of(&output).trim(), "0 reviews");
}

#[tokio::test]
async fn only_the_accountable_agency_adds_and_updates_actions_from_the_command_line() {
    let (server, _connection) = TestServer::north_east().await;
    let file = example_review().display().to_string();
    let output = marr_as(&server.url, Some(INSPECTOR), &["reviews", "record", &file]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));

    // Recommendation 2.1 is addressed to Northumbria Police: Newcastle's council may not act on it.
    let add = [
        "actions",
        "add",
        "1",
        "2",
        "1",
        "--description",
        "Daily missing episode notification to the front door",
        "--owner",
        "Head of Public Protection",
        "--due",
        "2026-06-30",
    ];
    let output = marr_as(&server.url, Some(agency_token(NEWCASTLE)), &add).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).starts_with("marr: PERMISSION_DENIED: "),
        "{}",
        stderr_of(&output)
    );
    let output = marr_as(&server.url, None, &["actions", "list", "--review", "1"]).await;
    assert_eq!(stdout_of(&output).trim(), "0 actions, 0 overdue");

    let output = marr_as(&server.url, Some(agency_token(NORTHUMBRIA)), &add).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let added = stdout_of(&output);
    assert!(
        added.starts_with("review 1 action 2.1.1 r1  E23000007  planned")
            && added.contains("due 2026-06-30 OVERDUE"),
        "{added}"
    );

    // An update that gives only the status keeps the description, owner and due date.
    let output = marr_as(
        &server.url,
        Some(agency_token(NORTHUMBRIA)),
        &[
            "actions",
            "update",
            "1",
            "2",
            "1",
            "1",
            "--expected-revision",
            "1",
            "--status",
            "done",
            "--note",
            "Notifications run daily",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let output = marr_as(
        &server.url,
        None,
        &["actions", "list", "--review", "1", "--format", "json"],
    )
    .await;
    let action: serde_json::Value =
        serde_json::from_str(stdout_of(&output).trim()).expect("one action");
    assert_eq!(action["revision"], 2);
    assert_eq!(action["status"], "done");
    assert_eq!(action["overdue"], false);
    assert_eq!(
        action["description"],
        "Daily missing episode notification to the front door"
    );
    assert_eq!(action["owner"], "Head of Public Protection");
    assert_eq!(action["due"], "2026-06-30");

    // The same update again is made against a revision that has moved on.
    let output = marr_as(
        &server.url,
        Some(agency_token(NORTHUMBRIA)),
        &[
            "actions",
            "update",
            "1",
            "2",
            "1",
            "1",
            "--expected-revision",
            "1",
            "--status",
            "in_progress",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).starts_with("marr: FAILED_PRECONDITION: "),
        "{}",
        stderr_of(&output)
    );

    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("actions.csv");
    let output = marr_as(
        &server.url,
        None,
        &[
            "export",
            "--table",
            "actions",
            "--out",
            &out.display().to_string(),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let text = std::fs::read_to_string(&out).expect("actions file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "review_id,finding,recommendation,action,revision,agency_id,description,owner,due,status,overdue,updated_at"
    );
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].starts_with("1,2,1,1,2,E23000007,Daily missing episode notification to the front door,Head of Public Protection,2026-06-30,done,false,"),
        "{text}"
    );
}

#[tokio::test]
async fn a_review_held_back_is_published_on_request_once() {
    let (server, _connection) = TestServer::north_east().await;
    let text = std::fs::read_to_string(example_review()).expect("example");
    // Fieldwork just ended, publication set 100 days ahead (at most a year after fieldwork
    // ends is allowed), whenever the test runs.
    let today = time::OffsetDateTime::now_utc().date();
    let date = |d: time::Date| {
        d.format(time::macros::format_description!("[year]-[month]-[day]"))
            .expect("formats")
    };
    let publication = format!("{}T09:00:00Z", date(today + time::Duration::days(100)));
    let later = text
        .replace("2026-05-01T09:00:00Z", &publication)
        .replace("2026-03-02", &date(today - time::Duration::days(20)))
        .replace("2026-03-13", &date(today - time::Duration::days(10)));
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("review.toml");
    std::fs::write(&file, later).expect("write");
    let output = marr_as(
        &server.url,
        Some(INSPECTOR),
        &["reviews", "record", &file.display().to_string()],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).contains(&format!("not published until {publication}")),
        "{}",
        stdout_of(&output)
    );
    let output = marr_as(&server.url, None, &["reviews", "list"]).await;
    assert_eq!(stdout_of(&output).trim(), "0 reviews");

    let publish = ["reviews", "publish", "1", "--expected-revision", "1"];
    let output = marr_as(&server.url, Some(INSPECTOR), &publish).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        stdout_of(&output).starts_with("review 1 revision 2: published "),
        "{}",
        stdout_of(&output)
    );
    let output = marr_as(&server.url, None, &["reviews", "show", "1"]).await;
    let shown = stdout_of(&output);
    assert!(
        shown.starts_with("review 1 revision 2 of 2: Joint targeted area inspection"),
        "{shown}"
    );
    assert!(shown.contains("(note: Published on request)"), "{shown}");
    assert!(
        shown.contains("recommendation 2.1 to E23000007: Share every missing episode"),
        "{shown}"
    );

    // Published is for good: a second request is refused, and says why.
    let publish = ["reviews", "publish", "1", "--expected-revision", "2"];
    let output = marr_as(&server.url, Some(INSPECTOR), &publish).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).starts_with("marr: FAILED_PRECONDITION: review 1 is already published"),
        "{}",
        stderr_of(&output)
    );
}
