//! The web front in a real headless Chromium: an inspector signs in through the form, reads a
//! place, compares it with its statistical neighbours, follows a subject, lists risks, freezes a
//! snapshot and signs out, on a server with England's current geography, population and
//! neighbours. Every page is screenshotted to `target/screenshots/`, checked with axe-core for
//! serious and critical accessibility violations, and watched for Content Security Policy
//! violations.

mod common;

use common::browser::Browser;
use common::*;
use marr::cli::{neighbours, population};
use marr::domain::AgencyKind;
use marr::proto;

/// The purpose the inspector gives for following a subject.
const PURPOSE: &str = "Joint targeted area inspection: neglect";

/// England's current geography, the ONS population and the DfE's neighbours, three agencies,
/// and records at Newcastle: subject 1 known to the council and the police, subject 2 to the
/// council alone.
async fn england() -> (TestServer, Connection) {
    let server = TestServer::start().await;
    let connection = server.connect().await;
    marr::cli::places::import_tables(&connection, current_geography_tables())
        .await
        .expect("the current geography imports");
    population::import_tables(
        &connection.admin,
        population::read_tables(&[population_file(POPULATION_LA)]).expect("readable"),
    )
    .await
    .expect("the population imports");
    neighbours::import_tables(
        &connection.admin,
        neighbours::read_tables(&[neighbours_file(NEIGHBOURS_2025)]).expect("readable"),
    )
    .await
    .expect("the neighbours import");
    for (agency, kind, footprint) in [
        (NEWCASTLE, AgencyKind::ChildrenSocialCare, NEWCASTLE),
        (NORTHUMBRIA, AgencyKind::Police, NORTHUMBRIA),
        ("RTD", AgencyKind::Health, NORTH_EAST),
    ] {
        marr::cli::agencies::register(
            &connection,
            agency,
            kind,
            &format!("agency {agency}"),
            &[footprint.to_string()],
        )
        .await
        .expect("the agency registers");
    }
    let records = vec![
        rec(
            NEWCASTLE,
            "A-1",
            NEWCASTLE_WARD,
            1,
            proto::Severity::High,
            2,
        ),
        rec(NEWCASTLE, "A-2", NEWCASTLE, 2, proto::Severity::Critical, 3),
        rec(NEWCASTLE, "A-3", NEWCASTLE, 0, proto::Severity::Medium, 4),
        rec(
            NORTHUMBRIA,
            "P-1",
            NEWCASTLE_WARD,
            1,
            proto::Severity::High,
            1,
        ),
        rec("RTD", "H-1", NEWCASTLE, 3, proto::Severity::Low, 5),
    ];
    for answer in push_all(&connection, records).await {
        assert_eq!(
            answer.outcome,
            proto::Outcome::Accepted as i32,
            "{}",
            answer.reason
        );
    }
    (server, connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspector_reads_compares_follows_and_signs_out_in_a_real_browser() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let (server, connection) = england().await;
    let web = &server.web_url;

    // The start page and a missing page, as anyone sees them.
    browser.open(&format!("{web}/")).await;
    assert_eq!(browser.text("h1").await, "Multi-agency risk register");
    browser.check("start-signed-out").await;
    browser.open(&format!("{web}/no-such-page")).await;
    browser.check("not-found").await;

    // A wrong token first: the error summary shows, and the page is still accessible.
    browser.open(&format!("{web}/sign-in")).await;
    browser.check("sign-in").await;
    browser.fill("token", "not-a-token").await;
    browser.press("Sign in").await;
    assert_eq!(
        browser.text(".error-summary__title").await,
        "There is a problem"
    );
    assert_eq!(
        browser.text(".error-summary__list a").await,
        "Enter a token this register knows"
    );
    // Focus moves to the summary, so a keyboard or screen reader user starts at the problem.
    let focused = browser
        .client()
        .execute("return document.activeElement.className", vec![])
        .await
        .expect("the focused element");
    assert_eq!(focused, "error-summary");
    browser.check("sign-in-error").await;

    browser.fill("token", INSPECTOR).await;
    browser.press("Sign in").await;
    assert_eq!(browser.path().await, "/");
    assert!(
        browser
            .text(".lede")
            .await
            .contains("Signed in as inspector"),
        "the start page greets the inspector"
    );
    browser.check("start").await;

    // The place's headline figure is GetPlaceView's total for the same place.
    let view = connection
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: NEWCASTLE.into(),
            ..Default::default()
        })
        .await
        .expect("the place view")
        .into_inner()
        .view
        .expect("a view");
    assert_eq!(view.total_active, 5);
    browser.open(&format!("{web}/places/{NEWCASTLE}")).await;
    assert_eq!(browser.text("h1").await, "Newcastle upon Tyne");
    assert_eq!(
        browser.text(".summary-cards li:first-child .figure").await,
        view.total_active.to_string()
    );
    let wards = browser.texts("table tbody th[scope=row] a").await;
    assert!(
        wards.iter().any(|w| w == "Lemington"),
        "the child places list Lemington: {wards:?}"
    );
    browser.check("place").await;

    // A child place opens from its row.
    browser
        .click(&format!("a[href^='/places/{NEWCASTLE_WARD}']"))
        .await;
    assert_eq!(browser.text("h1").await, "Lemington");
    assert_eq!(
        browser.text(".summary-cards li:first-child .figure").await,
        "2",
        "the council's and the police's records at Lemington"
    );
    browser.check("ward").await;

    // The comparison lists Newcastle's statistical neighbours.
    browser
        .open(&format!(
            "{web}/places/{NEWCASTLE}/compare?rate_of=child_protection_plan"
        ))
        .await;
    let roles = browser.texts("table tbody td:first-of-type").await;
    assert_eq!(
        roles
            .iter()
            .filter(|r| *r == "Statistical neighbour")
            .count(),
        10,
        "{roles:?}"
    );
    browser.check("compare").await;

    // Following a subject with a purpose shows the trail and leaves the purpose in the chain.
    browser.open(&format!("{web}/subjects")).await;
    browser.check("subjects").await;
    browser.fill("subject_key", &subject(1)).await;
    browser.fill("purpose", PURPOSE).await;
    browser.press("Follow").await;
    let trail = browser.texts("table tbody tr").await;
    assert_eq!(trail.len(), 2, "the council's and the police's: {trail:?}");
    assert!(
        trail.iter().any(|row| row.contains("agency E23000007")),
        "{trail:?}"
    );
    browser.check("trail").await;
    let followed = connection
        .audit()
        .list_audit_events(proto::ListAuditEventsRequest {
            method: "FollowSubject".into(),
            ..Default::default()
        })
        .await
        .expect("the audit chain")
        .into_inner()
        .events;
    assert_eq!(followed.len(), 1, "{followed:?}");
    assert_eq!(followed[0].principal, "inspector");
    assert_eq!(followed[0].subject_key, subject(1));
    assert_eq!(followed[0].purpose, PURPOSE);

    // The risks under Newcastle, the latest written first.
    browser
        .open(&format!("{web}/places/{NEWCASTLE}/risks"))
        .await;
    let records = browser.texts("table tbody td:nth-child(2)").await;
    assert_eq!(records, ["H-1", "P-1", "A-3", "A-2", "A-1"]);
    // Subject keys and times wrap: the table stays within the page's column.
    let overflow = browser
        .client()
        .execute(
            "return document.querySelector('main table').getBoundingClientRect().right
               - document.querySelector('main').getBoundingClientRect().right",
            vec![],
        )
        .await
        .expect("the table's width");
    assert!(
        overflow.as_f64().is_some_and(|px| px <= 0.5),
        "the risks table runs {overflow}px past the page"
    );
    browser.check("risks").await;

    // A snapshot taken from the place page opens at its own address.
    browser.open(&format!("{web}/places/{NEWCASTLE}")).await;
    browser.fill("label", "Inspection of Newcastle").await;
    browser.press("Take a snapshot").await;
    assert!(
        browser.path().await.starts_with("/snapshots/"),
        "{}",
        browser.path().await
    );
    browser.check("snapshot").await;

    // Signed out, the place page sends the browser to sign in.
    browser.press("Sign out").await;
    assert_eq!(browser.path().await, "/");
    browser.open(&format!("{web}/places/{NEWCASTLE}")).await;
    assert_eq!(browser.path().await, "/sign-in");
    assert_eq!(browser.text("h1").await, "Sign in");

    browser.close().await;
}
