//! A real headless Chromium driven over WebDriver, for the web front's pages: open, fill,
//! click and read as a person would, save a screenshot of each page to
//! `target/screenshots/NAME.png`, and check each page with axe-core for serious and critical
//! accessibility violations and with the browser's own log for Content Security Policy
//! violations.
//!
//! Needs Debian's `chromium` and `chromium-driver` and axe-core from npm in `target/tools`,
//! which `.ci/run` installs. Where they are missing a test skips with a note, unless `CI` is
//! set: there the browser tests are part of the suite and a missing tool fails them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value as Json, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The crate's root, where `target/` lives.
fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// axe-core as `.ci/run` installs it from npm.
pub fn axe_script() -> PathBuf {
    crate_root().join("target/tools/node_modules/axe-core/axe.min.js")
}

/// Where screenshots land.
pub fn screenshots_dir() -> PathBuf {
    crate_root().join("target/screenshots")
}

/// Flags for Chromium headless on a closed network: no sandbox (CI runs as root), no GPU, and
/// none of the background connections (updates, sync, QUIC) that a closed network refuses.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1024",
];

/// Paths that [`Browser::links_answer`] does not follow: none at present, since every page a
/// link leads to exists and answers whoever is shown the link.
pub const NOT_FOLLOWED: &[&str] = &[];

/// How long the harness waits for chromedriver to listen and for an element to appear.
const PATIENCE: Duration = Duration::from_secs(20);

/// chromedriver in a process group of its own, so that the browsers it started go with it.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started, should a test have
        // failed before the session was closed.
        if let Ok(group) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group and touches no
            // memory of ours; the group is chromedriver's own, made when it was spawned.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One headless Chromium session, with its chromedriver and a fresh profile.
pub struct Browser {
    client: Client,
    axe: String,
    /// Whether the browser's log can be read (chromedriver's `se/log`).
    log_readable: bool,
    // Dropped after the client: the driver is killed, then the profile removed.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// The browser's console log, as chromedriver serves it.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// A free loopback port (free a moment ago: chromedriver binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. `None` (with a note) when a tool is
    /// missing outside CI; in CI a missing tool fails the test.
    pub async fn launch() -> Option<Self> {
        let missing: Vec<String> = [PathBuf::from(CHROMIUM), PathBuf::from(CHROMEDRIVER)]
            .into_iter()
            .chain([axe_script()])
            .filter(|path| !path.exists())
            .map(|path| path.display().to_string())
            .collect();
        if !missing.is_empty() {
            let note = format!(
                "the browser tests need {}: .ci/run installs Chromium and ChromeDriver from \
                 Debian's packages and axe-core from npm",
                missing.join(", ")
            );
            assert!(std::env::var_os("CI").is_none(), "{note}");
            eprintln!("skipping the browser tests: {note}");
            return None;
        }
        let axe = std::fs::read_to_string(axe_script()).expect("axe-core reads");
        // A free port can be taken by another test between our choosing it and chromedriver
        // binding it; then the session cannot start, and a fresh driver on another port is
        // tried.
        let mut attempt = 0;
        let (client, driver, profile) = loop {
            attempt += 1;
            let port = free_port();
            let mut command = Command::new(CHROMEDRIVER);
            command
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let driver = Driver(command.spawn().expect("chromedriver starts"));
            let started = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    started.elapsed() < PATIENCE,
                    "chromedriver never listened on {port}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let profile = tempfile::tempdir().expect("a profile directory");
            let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
            args.push(format!("--user-data-dir={}", profile.path().display()));
            let mut capabilities = serde_json::Map::new();
            capabilities.insert("browserName".into(), json!("chrome"));
            capabilities.insert(
                "goog:chromeOptions".into(),
                json!({"binary": CHROMIUM, "args": args}),
            );
            capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break (client, driver, profile),
                Err(error) if attempt < 3 => {
                    eprintln!("a Chromium session did not start ({error}); trying again");
                }
                Err(error) => panic!("a Chromium session starts: {error}"),
            }
        };
        let log_readable = client.issue_cmd(BrowserLog).await.is_ok();
        if !log_readable {
            eprintln!("the browser's log cannot be read: the CSP check is skipped");
        }
        Some(Self {
            client,
            axe,
            log_readable,
            _driver: driver,
            _profile: profile,
        })
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{url} opens: {e}"));
    }

    /// The path (and query) of the page shown.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Types `text` into the field with this id, replacing what it held.
    pub async fn fill(&self, id: &str, text: &str) {
        let field = self.find(&format!("#{id}")).await;
        field.clear().await.expect("the field clears");
        field.send_keys(text).await.expect("the field takes text");
    }

    /// Clicks the button whose text is `text` (one that submits a form), and waits for the page
    /// it leads to.
    pub async fn press(&self, text: &str) {
        let xpath = format!("//button[normalize-space(.)='{text}']");
        let button = match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
        {
            Ok(button) => button,
            Err(e) => panic!("no button {text:?} on {}: {e}", self.here().await),
        };
        self.mark().await;
        button.click().await.expect("the button clicks");
        self.settle().await;
    }

    /// Clicks the element matching this CSS selector (a link or a submit button), and waits for
    /// the page it leads to.
    pub async fn click(&self, selector: &str) {
        let element = self.find(selector).await;
        self.mark().await;
        element.click().await.expect("the element clicks");
        self.settle().await;
    }

    /// Marks the document shown, so that [`Browser::settle`] can tell when another replaces it.
    async fn mark(&self) {
        self.client
            .execute("window.marrLeaving = true", vec![])
            .await
            .expect("the page takes a mark");
    }

    /// Waits until a new document (one without the mark) has loaded: a click that submits a
    /// form or follows a link navigates, and the old page may still answer for a moment.
    async fn settle(&self) {
        let started = Instant::now();
        loop {
            let arrived = self
                .client
                .execute(
                    "return window.marrLeaving !== true && document.readyState === 'complete'",
                    vec![],
                )
                .await
                .unwrap_or(Json::Bool(false));
            if arrived == Json::Bool(true) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no new page loaded after the click on {}",
                self.here().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn here(&self) -> String {
        self.client
            .current_url()
            .await
            .map_or_else(|_| "an unknown page".into(), |u| u.to_string())
    }

    async fn find(&self, selector: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(selector))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("no {selector} on {}: {e}", self.here().await),
        }
    }

    /// The visible text of the first element matching this CSS selector.
    pub async fn text(&self, selector: &str) -> String {
        self.find(selector)
            .await
            .text()
            .await
            .expect("the element's text")
    }

    /// The visible text of every element matching this CSS selector (none if there are none).
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let mut out = Vec::new();
        for element in self
            .client
            .find_all(Locator::Css(selector))
            .await
            .expect("a search")
        {
            out.push(element.text().await.expect("the element's text"));
        }
        out
    }

    /// Saves the page as `target/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("the screenshots directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot saves");
    }

    /// Runs axe-core on the page and fails listing every serious or critical violation.
    pub async fn axe(&self, page: &str) {
        self.client
            .execute(&self.axe, vec![])
            .await
            .expect("axe-core loads into the page");
        let answer = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(JSON.stringify(r.violations)))
                   .catch(e => done(JSON.stringify({ error: String(e) })));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        let text = answer.as_str().unwrap_or_default();
        let answer: Json = serde_json::from_str(text).expect("axe-core's answer is JSON");
        if let Some(error) = answer.get("error") {
            panic!("axe-core failed on the {page} page: {error}");
        }
        let describe = |v: &Json| {
            let targets: Vec<String> = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| n["target"].to_string())
                .collect();
            format!(
                "{} ({}): {} at {}",
                v["id"].as_str().unwrap_or_default(),
                v["impact"].as_str().unwrap_or_default(),
                v["help"].as_str().unwrap_or_default(),
                targets.join(", ")
            )
        };
        let (violations, lesser): (Vec<&Json>, Vec<&Json>) = answer
            .as_array()
            .into_iter()
            .flatten()
            .partition(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")));
        // Moderate and minor findings are shown, not failed on.
        for finding in lesser {
            eprintln!("axe-core on the {page} page: {}", describe(finding));
        }
        let violations: Vec<String> = violations.into_iter().map(describe).collect();
        assert!(
            violations.is_empty(),
            "the {page} page has serious accessibility violations:\n{}",
            violations.join("\n")
        );
    }

    /// The browser's console messages since the last call, as `LEVEL: message`; empty where
    /// the log cannot be read.
    pub async fn console(&self) -> Vec<String> {
        if !self.log_readable {
            return Vec::new();
        }
        let entries = self.client.issue_cmd(BrowserLog).await.expect("the log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["level"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    /// Fails if the browser reported a Content Security Policy violation since the last look.
    pub async fn csp_holds(&self, page: &str) {
        let blocked: Vec<String> = self
            .console()
            .await
            .into_iter()
            .filter(|line| line.contains("Content Security Policy"))
            .collect();
        assert!(
            blocked.is_empty(),
            "the {page} page broke its Content Security Policy:\n{}",
            blocked.join("\n")
        );
    }

    /// Fails naming every same-site link on the page (other than [`NOT_FOLLOWED`]) that does
    /// not end in a page answering 200 to a GET made by the page itself, with its session.
    /// Links to the page itself are not followed: opening the sign-in page again would plant
    /// a new form token and expire the form on screen.
    pub async fn links_answer(&self, page: &str) {
        let answer = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const skip = arguments[0];
                 const hrefs = [...new Set([...document.querySelectorAll('a[href]')]
                   .map(a => new URL(a.href, location.href))
                   .filter(u => u.origin === location.origin && u.pathname !== location.pathname
                     && !skip.includes(u.pathname))
                   .map(u => u.pathname + u.search))];
                 Promise.all(hrefs.map(h => fetch(h)
                   .then(r => [h, r.status]).catch(e => [h, String(e)])))
                   .then(all => done(all.filter(([, s]) => s !== 200)
                     .map(([h, s]) => h + ' answered ' + s)));",
                vec![json!(NOT_FOLLOWED)],
            )
            .await
            .expect("the links are fetched");
        let broken: Vec<&str> = answer
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        assert!(
            broken.is_empty(),
            "broken links on the {page} page:\n{}",
            broken.join("\n")
        );
    }

    /// Everything a page is held to: a screenshot, no serious accessibility violations, no
    /// CSP violations and no broken links.
    pub async fn check(&self, page: &str) {
        self.screenshot(page).await;
        self.axe(page).await;
        self.csp_holds(page).await;
        self.links_answer(page).await;
    }

    /// Ends the session (Chromium quits); chromedriver is killed when the browser drops.
    pub async fn close(self) {
        let Self {
            client,
            _driver,
            _profile,
            ..
        } = self;
        let _ = client.close().await;
    }
}
