//! PostgreSQL clusters owned by the tests: the distribution's server binaries, a data
//! directory of their own, a loopback port, stopped when the test process ends. Root may not
//! run the server, so as root every server command runs as the `postgres` user the package
//! creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use marr::store::{Location, PostgresOptions};

/// Whether the suites run against PostgreSQL (`MARR_TEST_ENGINE=postgres`) rather than sled.
pub fn selected() -> bool {
    std::env::var("MARR_TEST_ENGINE").is_ok_and(|engine| engine == "postgres")
}

/// The directory of the newest server binaries installed.
fn binaries() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)"
        )
    })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A server command, run as `postgres` when the tests run as root.
fn server_command(program: &str) -> Command {
    let program = binaries().join(program);
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// One PostgreSQL server: its data directory and port.
pub struct Cluster {
    root: PathBuf,
    pub port: u16,
}

impl Cluster {
    /// A new cluster, started, with a superuser `marr` trusted on loopback.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with_files(extra, &[])
    }

    /// A cluster whose directory also holds these files (as NAME, readable by the server
    /// only), for settings that name them: a certificate and key for TLS.
    pub fn start_with_files(extra: &[&str], files: &[(&Path, &str)]) -> Self {
        let cluster = Self::create();
        for (source, name) in files {
            let mut install = Command::new("install");
            if running_as_root() {
                install.args(["-o", "postgres"]);
            }
            install
                .args(["-m", "600"])
                .arg(source)
                .arg(cluster.root.join(name));
            run(install, "install");
        }
        run(
            {
                let mut initdb = server_command("initdb");
                initdb
                    .args(["-A", "trust", "-U", "marr", "--no-sync", "-D"])
                    .arg(cluster.data());
                initdb
            },
            "initdb",
        );
        cluster.configure(extra);
        cluster.start_server();
        cluster
    }

    /// A streaming standby of this server, started: a base backup of it, following its WAL.
    /// With `synchronous_standby_names = '*'` on this server, a commit here waits for the
    /// standby to have it on disk.
    pub fn standby(&self) -> Self {
        let standby = Self::create();
        let mut basebackup = server_command("pg_basebackup");
        basebackup
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "marr",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg("-D")
            .arg(standby.data());
        run(basebackup, "pg_basebackup");
        standby.configure(&[]);
        standby.start_server();
        standby
    }

    /// Kills the server outright (SIGKILL to the postmaster), as a lost machine would.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_string))
            .expect("the server's pid");
        let status = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .expect("kill");
        assert!(status.success(), "the server is killed");
    }

    /// Promotes a standby to primary and waits until it takes writes.
    pub fn promote(&self) {
        let mut promote = server_command("pg_ctl");
        promote
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("promote");
        run(promote, "pg_ctl promote");
    }

    /// A directory the server's user owns, removed by the watchdog when the test process
    /// ends, with the server stopped first.
    fn create() -> Self {
        let mut mktemp = Command::new("mktemp");
        mktemp.args(["-d", "/tmp/marr-pg-XXXXXX"]);
        if running_as_root() {
            mktemp = Command::new("runuser");
            mktemp.args([
                "-u",
                "postgres",
                "--",
                "mktemp",
                "-d",
                "/tmp/marr-pg-XXXXXX",
            ]);
        }
        let output = mktemp.output().expect("mktemp");
        assert!(output.status.success(), "mktemp failed");
        let root = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let cluster = Self {
            root,
            port: free_port(),
        };
        cluster.watch_test_process();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Settings for loopback only, this port and a socket in the cluster's own directory.
    fn configure(&self, extra: &[&str]) {
        let mut settings = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 400\nfsync = on\n",
            self.port,
            self.root.display()
        );
        for line in extra {
            settings.push_str(line);
            settings.push('\n');
        }
        let config = self.data().join("postgresql.conf");
        let mut append = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", "tee", "-a"]);
            command
        } else {
            let mut command = Command::new("tee");
            command.arg("-a");
            command
        };
        let mut child = append
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("tee");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(settings.as_bytes())
            .expect("settings written");
        assert!(child.wait().expect("tee").success());
    }

    fn start_server(&self) {
        let output = self.pg_ctl_start();
        assert!(
            output.status.success(),
            "the server did not start: {}",
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    /// Starts the server again after [`Cluster::kill`], once the killed server's backends
    /// have gone (until then its data directory is still in use).
    pub fn restart_after_kill(&self) {
        for _ in 0..100 {
            if self.pg_ctl_start().status.success() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!(
            "the server did not start again: {}",
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    /// `pg_ctl start`, waiting until the server takes calls.
    fn pg_ctl_start(&self) -> std::process::Output {
        let mut pg_ctl = server_command("pg_ctl");
        pg_ctl
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .arg("start");
        pg_ctl.stdin(Stdio::null()).output().expect("pg_ctl runs")
    }

    /// Stops the server when the test process is gone (a static is never dropped), then
    /// removes its directory.
    fn watch_test_process(&self) {
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {root}",
            pid = std::process::id(),
            pg_ctl = binaries().join("pg_ctl").display(),
            data = self.data().display(),
            root = self.root.display(),
        );
        let mut watchdog = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", "sh", "-c", &script]);
            command
        } else {
            let mut command = Command::new("sh");
            command.args(["-c", &script]);
            command
        };
        // Left to run on after the test process: it is what stops the server.
        #[allow(clippy::zombie_processes)]
        watchdog
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the cluster's watchdog starts");
    }

    /// A URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://marr@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database on this server, as the register's location.
    pub fn database(&self) -> Location {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "marr_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.create_database(&name);
        Location::Postgres(PostgresOptions::new(self.url(&name)))
    }

    /// Creates a database of this name.
    pub fn create_database(&self, name: &str) {
        let mut createdb = Command::new(binaries().join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-U", "marr", "-p"])
            .arg(self.port.to_string())
            .arg(name);
        run(createdb, "createdb");
    }

    /// The server's log, for a failing test's message.
    pub fn log(&self) -> PathBuf {
        self.root.join("server.log")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Runs one SQL command against `url` with psql; panics with psql's message if it fails.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new(binaries().join("psql"))
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The cluster every test of this process shares, each test with databases of its own.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| Cluster::start(&[]))
}

/// Where a test's register lives: a new sled directory inside `dir`, or with
/// `MARR_TEST_ENGINE=postgres` a new database on the shared cluster.
pub fn location_in(dir: &Path) -> Location {
    if selected() {
        shared().database()
    } else {
        Location::Sled(dir.to_path_buf())
    }
}

/// The engine under a stopped server's register, opened directly, as someone with access to
/// its disk or its database would.
pub fn engine_at(location: &Location) -> Box<dyn marr::store::engine::Engine> {
    match location {
        Location::Sled(dir) => Box::new(
            marr::store::engine::Sled::open(dir, 16 << 20, true).expect("the stopped store opens"),
        ),
        Location::Postgres(options) => Box::new(
            marr::store::engine::Postgres::open(options, marr::store::engine::Hold::Alone)
                .expect("the database opens"),
        ),
    }
}

/// Command-line arguments that name the register at `location` to an offline command
/// (`verify`, `restore`): `--data-dir DIR`, or `--config FILE` with a config naming the
/// database, written into `scratch`.
pub fn store_args(location: &Location, scratch: &Path) -> Vec<std::ffi::OsString> {
    match location {
        Location::Sled(dir) => vec!["--data-dir".into(), dir.clone().into_os_string()],
        Location::Postgres(options) => {
            let config = scratch.join("store.toml");
            std::fs::write(
                &config,
                format!(
                    "[store]\nengine = \"postgres\"\nurl = \"{}\"\n",
                    options.url
                ),
            )
            .expect("config written");
            vec!["--config".into(), config.into_os_string()]
        }
    }
}

/// The stopped register's entries, as someone with access to its disk or database sees them.
pub struct Tree(Box<dyn marr::store::engine::Engine>);

impl Tree {
    pub fn open(location: &Location) -> Self {
        Self(engine_at(location))
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, marr::store::StoreError> {
        self.0.get(key.as_ref())
    }

    /// Answers the value it replaced, as sled's tree does.
    pub fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>, marr::store::StoreError> {
        let old = self.0.get(key.as_ref())?;
        let mut batch = marr::store::engine::WriteBatch::default();
        batch.insert(key.as_ref().to_vec(), value.as_ref().to_vec());
        self.0.apply(batch)?;
        Ok(old)
    }

    pub fn remove(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>, marr::store::StoreError> {
        let old = self.0.get(key.as_ref())?;
        let mut batch = marr::store::engine::WriteBatch::default();
        batch.remove(key.as_ref().to_vec());
        self.0.apply(batch)?;
        Ok(old)
    }

    pub fn scan_prefix(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> Vec<Result<marr::store::engine::Entry, marr::store::StoreError>> {
        self.0.scan_prefix(prefix.as_ref()).collect()
    }

    pub fn flush(&self) {
        self.0.flush().expect("flush");
    }
}
