//! The `marr` command: argument parsing and wiring only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use marr::cli::export::ExportTable;
use marr::cli::inspect::{self, Format};
use marr::cli::{
    ClientError, Connection, ServerArgs, agencies, boundaries, neighbours, places, population,
    push, reviews, watch,
};
use marr::config::Config;
use marr::domain::review::{ActionStatus, ReviewKind};
use marr::domain::{AgencyKind, AlertKind, ClientGroup, PlaceLevel, Severity, Vocabulary};
use marr::store::{Location, Store, StoreOptions};

#[derive(Parser)]
#[command(name = "marr", version, about = "The multi-agency risk register")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the register's gRPC server.
    Serve {
        /// TOML config file.
        #[arg(long, env = "MARR_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:50051].
        #[arg(long, env = "MARR_LISTEN")]
        listen: Option<SocketAddr>,
        /// Directory of the store [default: marr-data].
        #[arg(long, env = "MARR_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// PostgreSQL connection URL; sets `[store] engine = "postgres"` and its `url`.
        #[arg(long, env = "MARR_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Allow listening on a non-loopback address without TLS (only where TLS ends in front).
        #[arg(long)]
        insecure: bool,
        /// Log lines as text for people, or as JSON objects for a log collector.
        #[arg(long, value_enum, env = "MARR_LOG_FORMAT", default_value = "text")]
        log_format: LogFormat,
        /// Serve Prometheus metrics at http://ADDR/metrics (a separate port from gRPC).
        #[arg(long, env = "MARR_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Serve the web pages on this address (a separate port from gRPC; HTTPS under [tls]).
        #[arg(long, env = "MARR_HTTP_LISTEN")]
        http_listen: Option<SocketAddr>,
    },
    /// Writes a local CA, a server certificate for localhost and client certificates, for
    /// trying mutual TLS on one machine.
    DevCerts {
        /// Where to write the PEM files.
        dir: PathBuf,
        /// One client certificate per principal of this config (common name = principal name).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Checks the audit chain: on a running server (administrators), or offline on a stopped
    /// server's data directory, where every projection is checked against the log too.
    Verify {
        #[command(flatten)]
        server: ServerArgs,
        /// Check this data directory offline instead of asking a server.
        #[arg(long, conflicts_with = "config")]
        data_dir: Option<PathBuf>,
        /// Check the store this config's `[store]` names (sled or PostgreSQL) offline.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only the audit chain.
        #[arg(long)]
        audit: bool,
        /// Offline: rewrite projections that disagree with the log from the log.
        #[arg(long, conflicts_with = "audit")]
        repair: bool,
    },
    /// Asks a server whether it is serving (for probes): exit 0 when SERVING, 1 otherwise.
    Health {
        #[command(flatten)]
        server: ServerArgs,
        /// One service, e.g. marr.v1.RiskRegister; the whole server when absent.
        #[arg(long, default_value = "")]
        service: String,
    },
    /// Takes a consistent backup from a running server (administrators) into a file.
    Backup {
        #[command(flatten)]
        server: ServerArgs,
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Builds a store in a new data directory (or an empty PostgreSQL database) from a backup
    /// file, and checks it.
    Restore {
        /// The data directory to create; it must not hold a store.
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        data_dir: Option<PathBuf>,
        /// Restore into the store this config's `[store]` names (sled or PostgreSQL).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The backup file.
        file: PathBuf,
    },
    /// Copies a stopped register from one engine to another (sled into PostgreSQL, or back):
    /// each side a data directory or a config file whose `[store]` names the store. The copy
    /// is rebuilt and checked as a restore is; the source is left as it was.
    Move {
        /// The store to copy: a sled data directory, or a `.toml` config.
        #[arg(long)]
        from: PathBuf,
        /// Where to copy it (holding no register yet): a data directory, or a `.toml` config.
        #[arg(long)]
        to: PathBuf,
    },
    /// Runs a server on England's current geography and population, with three North East
    /// agencies and synthetic records.
    Demo {
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Where the demo serves its web pages.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http_listen: SocketAddr,
        /// The directory holding `geography-2025/`, `population/`, `statistical-neighbours/`
        /// and `boundaries/` (relative to the working directory).
        #[arg(long, env = "MARR_DEMO_DATA", default_value = "../shared/data")]
        data: PathBuf,
    },
    /// Pushes a CSV or JSON Lines extract through PushRecords.
    Push {
        #[command(flatten)]
        server: ServerArgs,
        /// The extract (`.csv`, or `.jsonl` for JSON Lines).
        file: PathBuf,
    },
    /// Reads a place's view across every agency: breakdowns and child places.
    View {
        #[command(flatten)]
        server: ServerArgs,
        /// A place or footprint code (GSS), such as E08000021 or E23000007.
        place: String,
        #[command(flatten)]
        filter: inspect::FilterArgs,
        /// The view as it was when this log sequence was written.
        #[arg(long)]
        as_of: Option<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Writes the public comparative table of a parent's places, disclosure-controlled, as a
    /// CSV file in the tidy layout of official statistics (no credentials needed); or, with
    /// `--table findings` or `--table actions`, published reviews' findings or action plans.
    Export {
        #[command(flatten)]
        server: ServerArgs,
        /// Which table: the comparative table, or published reviews' findings or actions.
        #[arg(long, value_enum, default_value = "comparative")]
        table: ExportTable,
        /// The parent place or footprint area, e.g. E12000001 (North East); for findings and
        /// actions, only reviews of places within it (all when left out).
        #[arg(long)]
        parent: Option<String>,
        /// The level of the rows: country, region, county (upper-tier authorities), district,
        /// or a footprint level (the comparative table only).
        #[arg(long)]
        level: Option<PlaceLevel>,
        /// The CSV file to write.
        #[arg(long)]
        out: PathBuf,
        /// The release to export, by number (`ListReleases`); the latest when left out.
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        release: u64,
    },
    /// Follows one pseudonymous subject's trail across agencies.
    Follow {
        #[command(flatten)]
        server: ServerArgs,
        /// The subject key: 64 lower-case hex characters.
        subject_key: String,
        /// Why you follow this subject (at least 10 characters); kept with the access.
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        as_of: Option<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Streams alerts for an area, live, resuming from a cursor across drops and restarts.
    Watch {
        #[command(flatten)]
        server: ServerArgs,
        /// A place or footprint code: alerts anywhere in it.
        #[arg(long)]
        place: Option<String>,
        /// Only this client group (repeatable).
        #[arg(long = "client-group")]
        client_groups: Vec<ClientGroup>,
        /// Only this kind of alert (repeatable).
        #[arg(long = "kind")]
        kinds: Vec<AlertKind>,
        #[arg(long)]
        min_severity: Option<Severity>,
        /// Keeps the last alert sequence seen; watching resumes from it.
        #[arg(long)]
        cursor_file: Option<PathBuf>,
        /// Start after this alert sequence when there is no cursor file [default: 0, all].
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Turns NHS numbers (one per line, spaces allowed) into subject keys, offline.
    Pseudonymise {
        /// The linkage key of the information sharing agreement (at least 32 bytes).
        #[arg(long)]
        key_file: PathBuf,
        /// NHS numbers, one per line [default: standard input].
        input: Option<PathBuf>,
    },
    /// Reviews of places: record one from a file, publish, list and show them.
    Reviews {
        #[command(subcommand)]
        command: ReviewsCommand,
    },
    /// Action plans answering reviews' recommendations.
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// The collective lessons of an area: how often each theme appears among the findings of
    /// reviews published in a period, by judgement, against the period before (no credentials
    /// needed).
    Lessons {
        #[command(flatten)]
        server: ServerArgs,
        /// A region, a country or any place or footprint area [default: England].
        #[arg(long, default_value = "")]
        area: String,
        /// First publication date counted, YYYY-MM-DD [default: a year before --until].
        #[arg(long, default_value = "")]
        from: String,
        /// The day after the last counted, YYYY-MM-DD [default: tomorrow].
        #[arg(long, default_value = "")]
        until: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Ranked lines of enquiry for the next review of a place (inspectors and boards): themes
    /// recurring in its statistical neighbours' and region's published findings, each with its
    /// evidence.
    Enquiries {
        #[command(flatten)]
        server: ServerArgs,
        /// An upper-tier authority or other place in your places, such as E06000002.
        place: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Geography.
    Places {
        #[command(subcommand)]
        command: PlacesCommand,
    },
    /// Partner agencies.
    Agencies {
        #[command(subcommand)]
        command: AgenciesCommand,
    },
    /// Population denominators, for rates per 10,000.
    Population {
        #[command(subcommand)]
        command: PopulationCommand,
    },
    /// The Department for Education's children's services statistical neighbours.
    Neighbours {
        #[command(subcommand)]
        command: NeighboursCommand,
    },
    /// Place boundaries, for drawing maps.
    Boundaries {
        #[command(subcommand)]
        command: BoundariesCommand,
    },
}

#[derive(Subcommand)]
enum ReviewsCommand {
    /// Records a review from a TOML file (or JSON, by a `.json` extension; see
    /// examples/review.toml), as an inspector; or, with --correct, a correction of one.
    Record {
        #[command(flatten)]
        server: ServerArgs,
        /// The review file.
        file: PathBuf,
        /// Record the file as a correction of this review.
        #[arg(long, value_name = "ID", requires_all = ["expected_revision", "note"])]
        correct: Option<u64>,
        /// The revision the correction was made against.
        #[arg(long, value_name = "N", requires = "correct")]
        expected_revision: Option<u32>,
        /// What the correction changes (published with it).
        #[arg(long, requires = "correct")]
        note: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Publishes a review now that was set to be published later: a correction setting its
    /// publication time to now. A published review stays published, at its time.
    Publish {
        #[command(flatten)]
        server: ServerArgs,
        id: u64,
        /// The revision it is made against (`marr reviews show ID`).
        #[arg(long, value_name = "N")]
        expected_revision: u32,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Lists published reviews (inspectors: with --unpublished, those of their places too).
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Only reviews of places within this place or footprint area.
        #[arg(long)]
        place: Option<String>,
        /// Only reviews of this kind, such as joint_targeted_area_inspection.
        #[arg(long)]
        kind: Option<ReviewKind>,
        /// Only reviews with a finding of this theme, such as information_sharing.
        #[arg(long)]
        theme: Option<String>,
        /// Inspectors: unpublished reviews of your places as well.
        #[arg(long)]
        unpublished: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Shows one review, its findings and recommendations, and its action plan.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: u64,
        /// A revision to show [default: the latest].
        #[arg(long, value_name = "N")]
        revision: Option<u32>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum ActionsCommand {
    /// Plans an action under a recommendation addressed to your agency (REVIEW FINDING
    /// RECOMMENDATION, as `marr reviews show` numbers them).
    Add {
        #[command(flatten)]
        server: ServerArgs,
        review: u64,
        finding: u32,
        recommendation: u32,
        /// What will be done (published; screened like a record's note).
        #[arg(long)]
        description: String,
        /// The post accountable for it, never a person's name.
        #[arg(long)]
        owner: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        due: String,
        #[arg(long, default_value = "planned")]
        status: ActionStatus,
        #[arg(long)]
        note: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Records the next revision of one of your agency's actions; what is not given keeps its
    /// current value.
    Update {
        #[command(flatten)]
        server: ServerArgs,
        review: u64,
        finding: u32,
        recommendation: u32,
        number: u32,
        /// The revision the update was made against (`marr actions list`).
        #[arg(long, value_name = "N")]
        expected_revision: u32,
        /// planned, in_progress, done or overdue.
        #[arg(long)]
        status: Option<ActionStatus>,
        /// YYYY-MM-DD.
        #[arg(long)]
        due: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// What the update changes.
        #[arg(long)]
        note: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Lists actions of published reviews' plans, as they stand.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Only this review's.
        #[arg(long)]
        review: Option<u64>,
        /// Only this accountable agency's.
        #[arg(long)]
        agency: Option<String>,
        /// Only reviews of places within this place or footprint area.
        #[arg(long)]
        place: Option<String>,
        /// Only actions past their due date and not done.
        #[arg(long)]
        overdue: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum BoundariesCommand {
    /// Imports GeoJSON or TopoJSON boundary files (longitude and latitude; each feature's code
    /// read from `areacd` or a property ending in CD, such as LAD24CD); police force areas and
    /// community safety partnerships get the outline of their districts.
    Import {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NeighboursCommand {
    /// Imports DfE statistical neighbours CSVs (old_la_code, SN_1…SN_10, SN_1P…SN_10P), each
    /// DfE number resolved through the imported geography; an authority already held has its
    /// neighbours replaced.
    Import {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PopulationCommand {
    /// Imports ONS mid-year population estimate CSVs (area_code, year, population_0_17,
    /// population_18_plus, population_65_plus, population_all); a place-year already held is
    /// replaced.
    Import {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PlacesCommand {
    /// Imports ONS lookup CSVs (any vintage, any order) into the place tree and footprints.
    Import {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgenciesCommand {
    /// Registers an agency, or updates its name, kind or footprint.
    Register {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        id: String,
        /// One of: children_social_care, adult_social_care, police, health, education, housing,
        /// probation, youth_justice, other.
        #[arg(long)]
        kind: AgencyKind,
        #[arg(long)]
        name: String,
        /// Place or footprint codes the agency may report on, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        footprint: Vec<String>,
    },
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn serve(
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    insecure: bool,
) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => Config::load(&path)?,
        None => Config::default(),
    };
    // Flags and MARR_* variables (layered by clap) win over the file.
    config.listen = listen.or(config.listen);
    config.http_listen = http_listen.or(config.http_listen);
    config.data_dir = data_dir.or(config.data_dir);
    if let Some(url) = database_url {
        config.store.engine = Some(marr::config::EngineChoice::Postgres);
        config.store.url = Some(url);
    }
    let location = config.store_location()?;
    let address = config.listen();
    for address in std::iter::once(address).chain(config.http_listen) {
        if !address.ip().is_loopback() && config.tls.is_none() && !insecure {
            anyhow::bail!(
                "refusing to listen on {address} without TLS: safeguarding records would cross the network in clear. \
                 Configure [tls], listen on a loopback address, or pass --insecure where TLS ends in front of marr"
            );
        }
    }
    tracing::info!(store = %location, "opening the register");
    let options = StoreOptions {
        rules: config.rule_settings()?,
        fsync: config.store.fsync.unwrap_or(true),
        cache_bytes: config.cache_bytes()?,
        checkpoint_every: config.checkpoint_every()?,
        page_read_limit: config.page_read_limit()?,
        serving: true,
        ..StoreOptions::default()
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let web = match config.http_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for the web pages"))?,
        ),
        None => None,
    };
    // Listening first lets probes see NOT_SERVING while the log is replayed.
    marr::serve_opening(
        listener,
        web,
        move || Store::open_at(&location, options),
        config,
        shutdown_signal(),
    )
    .await
    .context("cannot serve")?;
    Ok(())
}

/// Prints one line of output; a reader that has gone away (`| head`) ends the command quietly,
/// as other command-line tools do, instead of a panic.
fn emit(text: impl std::fmt::Display) {
    use std::io::Write;
    if writeln!(std::io::stdout().lock(), "{text}").is_err() {
        std::process::exit(0);
    }
}

async fn push(server: ServerArgs, file: PathBuf) -> Result<ExitCode, ClientError> {
    let connection = Connection::open(&server).await?;
    let summary = push::push_file(&connection, &file).await?;
    emit(&summary);
    if summary.rejected > 0 {
        eprintln!(
            "rejected rows and reasons: {}",
            push::rejects_path(&file).display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

async fn import_places(server: ServerArgs, files: Vec<PathBuf>) -> Result<ExitCode, ClientError> {
    let tables = places::read_tables(&files)?;
    let connection = Connection::open(&server).await?;
    let report = places::import_tables(&connection, tables).await?;
    for line in places::report_lines(&report) {
        emit(&line);
    }
    Ok(ExitCode::SUCCESS)
}

async fn import_population(
    server: ServerArgs,
    files: Vec<PathBuf>,
) -> Result<ExitCode, ClientError> {
    let tables = places::read_tables(&files)?;
    let connection = Connection::open(&server).await?;
    let report = population::import_tables(&connection, tables).await?;
    for line in population::report_lines(&report) {
        emit(&line);
    }
    Ok(ExitCode::SUCCESS)
}

async fn import_neighbours(
    server: ServerArgs,
    files: Vec<PathBuf>,
) -> Result<ExitCode, ClientError> {
    let tables = places::read_tables(&files)?;
    let connection = Connection::open(&server).await?;
    let report = neighbours::import_tables(&connection, tables).await?;
    for line in neighbours::report_lines(&report) {
        emit(&line);
    }
    Ok(ExitCode::SUCCESS)
}

async fn import_boundaries(
    server: ServerArgs,
    files: Vec<PathBuf>,
) -> Result<ExitCode, ClientError> {
    let files = boundaries::read_files(&files)?;
    let connection = Connection::open(&server).await?;
    let report = boundaries::import_files(&connection, files).await?;
    for line in boundaries::report_lines(&report) {
        emit(&line);
    }
    Ok(ExitCode::SUCCESS)
}

async fn register_agency(
    server: ServerArgs,
    id: String,
    kind: AgencyKind,
    name: String,
    footprint: Vec<String>,
) -> Result<ExitCode, ClientError> {
    let connection = Connection::open(&server).await?;
    let answer = agencies::register(&connection, &id, kind, &name, &footprint).await?;
    let done = if answer.changed {
        "registered"
    } else {
        "unchanged:"
    };
    emit(format!("{done} agency {id}"));
    Ok(ExitCode::SUCCESS)
}

async fn view(
    server: ServerArgs,
    place: String,
    filter: marr::proto::ViewFilter,
    as_of: Option<u64>,
    format: Format,
) -> Result<ExitCode, ClientError> {
    let connection = Connection::open(&server).await?;
    let view = inspect::view(&connection, &place, filter, as_of.unwrap_or(0)).await?;
    match format {
        Format::Table => emit(inspect::view_table(&view).trim_end()),
        Format::Json => emit(inspect::view_json(&view)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn follow(
    server: ServerArgs,
    subject_key: String,
    purpose: String,
    as_of: Option<u64>,
    format: Format,
) -> Result<ExitCode, ClientError> {
    let connection = Connection::open(&server).await?;
    let answer = inspect::follow(&connection, &subject_key, &purpose, as_of.unwrap_or(0)).await?;
    for entry in &answer.trail {
        match format {
            Format::Table => emit(inspect::trail_line(entry)),
            Format::Json => emit(inspect::trail_json(entry)),
        }
    }
    if format == Format::Table {
        emit(format!(
            "{} revisions, consistent at sequence {}",
            answer.trail.len(),
            answer.consistent_at_sequence
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn pseudonymise(key_file: &Path, input: Option<&Path>) -> Result<ExitCode, ClientError> {
    let key = marr::cli::pseudonymise::read_key(key_file)?;
    let reading = |path: &Path, e: std::io::Error| ClientError::Input {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let refused = match input {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| reading(path, e))?;
            marr::cli::pseudonymise::pseudonymise(
                &key,
                std::io::BufReader::new(file),
                std::io::stdout().lock(),
                std::io::stderr(),
            )
            .map_err(|e| reading(path, e))?
        }
        None => marr::cli::pseudonymise::pseudonymise(
            &key,
            std::io::stdin().lock(),
            std::io::stdout().lock(),
            std::io::stderr(),
        )
        .map_err(|e| reading(Path::new("standard input"), e))?,
    };
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn dev_certs(dir: &Path, config: Option<&Path>) -> Result<ExitCode, ClientError> {
    let principals = match config {
        Some(path) => {
            Config::load(path)
                .map_err(|e| ClientError::Input {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
                .principals
        }
        None => Vec::new(),
    };
    let mut names: Vec<String> = principals
        .iter()
        .map(|p| p.cert_cn.clone().unwrap_or_else(|| p.name.clone()))
        .collect();
    if config.is_none() {
        names.push("dev-client".to_string());
    }
    let written = marr::cli::dev_certs::write(dir, &names)?;
    emit(format!("CA certificate:      {}", written.ca.display()));
    emit(format!(
        "server certificate:  {} (localhost, 127.0.0.1, ::1)",
        written.server_cert.display()
    ));
    emit(format!(
        "server key:          {}",
        written.server_key.display()
    ));
    for (name, cert, key) in &written.clients {
        emit(format!(
            "client {name}: {} {}",
            cert.display(),
            key.display()
        ));
    }
    // Only a principal with a cert_cn can be reached by certificate.
    for principal in principals.iter().filter(|p| p.cert_cn.is_none()) {
        emit(format!(
            "note: principal {0} has no cert_cn; add cert_cn = \"{0}\" to let it use its certificate",
            principal.name
        ));
    }
    emit(format!(
        "\nIn the server's config:\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"",
        written.server_cert.display(),
        written.server_key.display(),
        written.ca.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// A client subcommand that could not reach or be served by the server exits with status 2.
async fn verify(
    server: ServerArgs,
    offline: Option<Location>,
    audit_only: bool,
    repair: bool,
) -> Result<ExitCode, ClientError> {
    let findings = match offline {
        Some(location) => marr::cli::verify::offline(&location, audit_only, repair).await?,
        None if repair => {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "--repair works offline: name the store with --data-dir or --config",
                )
                .exit()
        }
        None => marr::cli::verify::audit_online(&Connection::open(&server).await?).await?,
    };
    for line in &findings.lines {
        emit(line);
    }
    Ok(if findings.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn export(
    server: ServerArgs,
    table: ExportTable,
    parent: Option<String>,
    level: Option<PlaceLevel>,
    release: u64,
    out: PathBuf,
) -> Result<ExitCode, ClientError> {
    use marr::cli::export;
    let comparative = match (table, parent.as_deref(), level) {
        (ExportTable::Comparative, Some(parent), Some(level)) => Some((parent, level)),
        (ExportTable::Comparative, _, _) => {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "the comparative table needs --parent and --level",
                )
                .exit()
        }
        _ => None,
    };
    let connection = Connection::open(&server).await?;
    match comparative {
        Some((parent, level)) => {
            let rows = export::export(&connection, parent, level, release, &out).await?;
            emit(format!(
                "wrote {rows} rows to {} (counts of 1 to 4 shown as c, the rest rounded to the nearest 5)",
                out.display()
            ));
        }
        None if table == ExportTable::Findings => {
            let rows = export::export_findings(&connection, parent.as_deref(), &out).await?;
            emit(format!(
                "wrote {rows} rows to {} (one per recommendation of each published finding)",
                out.display()
            ));
        }
        None => {
            let rows = export::export_actions(&connection, parent.as_deref(), &out).await?;
            emit(format!(
                "wrote {rows} rows to {} (one per action of each published review's plan)",
                out.display()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_reviews(command: ReviewsCommand) -> Result<ExitCode, ClientError> {
    match command {
        ReviewsCommand::Record {
            server,
            file,
            correct,
            expected_revision,
            note,
            format,
        } => {
            let review = reviews::read_review_file(&file)?;
            let connection = Connection::open(&server).await?;
            let correcting = correct.map(|id| {
                (
                    id,
                    expected_revision.unwrap_or_default(),
                    note.unwrap_or_default(),
                )
            });
            let review = reviews::record(&connection, review, correcting).await?;
            emit_review(&review, format);
        }
        ReviewsCommand::Publish {
            server,
            id,
            expected_revision,
            format,
        } => {
            let connection = Connection::open(&server).await?;
            let review = reviews::publish(&connection, id, expected_revision).await?;
            emit_review(&review, format);
        }
        ReviewsCommand::List {
            server,
            place,
            kind,
            theme,
            unpublished,
            format,
        } => {
            let connection = Connection::open(&server).await?;
            let query = reviews::ReviewQuery {
                place,
                kind,
                theme,
                include_unpublished: unpublished,
            };
            let listed = reviews::list(&connection, &query).await?;
            for review in &listed {
                match format {
                    Format::Table => emit(reviews::review_line(review)),
                    Format::Json => emit(reviews::review_json(review)),
                }
            }
            if format == Format::Table {
                emit(format!("{} reviews", listed.len()));
            }
        }
        ReviewsCommand::Show {
            server,
            id,
            revision,
            format,
        } => {
            let connection = Connection::open(&server).await?;
            let answer = reviews::get(&connection, id, revision.unwrap_or(0)).await?;
            match format {
                Format::Table => emit(reviews::review_table(&answer).trim_end()),
                Format::Json => emit(reviews::review_answer_json(&answer)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn emit_review(review: &marr::proto::Review, format: Format) {
    match format {
        Format::Table => emit(reviews::recorded_line(review)),
        Format::Json => emit(reviews::review_json(review)),
    }
}

fn emit_action(action: &marr::proto::Action, format: Format) {
    match format {
        Format::Table => emit(reviews::action_line(action)),
        Format::Json => emit(reviews::action_json(action)),
    }
}

async fn run_actions(command: ActionsCommand) -> Result<ExitCode, ClientError> {
    match command {
        ActionsCommand::Add {
            server,
            review,
            finding,
            recommendation,
            description,
            owner,
            due,
            status,
            note,
            format,
        } => {
            let connection = Connection::open(&server).await?;
            let action = reviews::add_action(
                &connection,
                reviews::NewAction {
                    review,
                    finding,
                    recommendation,
                    description,
                    owner,
                    due,
                    status,
                    note: note.unwrap_or_default(),
                },
            )
            .await?;
            emit_action(&action, format);
        }
        ActionsCommand::Update {
            server,
            review,
            finding,
            recommendation,
            number,
            expected_revision,
            status,
            due,
            owner,
            description,
            note,
            format,
        } => {
            let connection = Connection::open(&server).await?;
            let action = reviews::update_action(
                &connection,
                (review, finding, recommendation, number),
                expected_revision,
                reviews::ActionChanges {
                    status,
                    due,
                    owner,
                    description,
                    note,
                },
            )
            .await?;
            emit_action(&action, format);
        }
        ActionsCommand::List {
            server,
            review,
            agency,
            place,
            overdue,
            format,
        } => {
            let connection = Connection::open(&server).await?;
            let actions = reviews::list_actions(
                &connection,
                marr::proto::ListActionsRequest {
                    review_id: review.unwrap_or(0),
                    agency_id: agency.unwrap_or_default(),
                    place_code: place.unwrap_or_default(),
                    overdue_only: overdue,
                    ..Default::default()
                },
            )
            .await?;
            for action in &actions {
                emit_action(action, format);
            }
            if format == Format::Table {
                let late = actions.iter().filter(|a| a.overdue).count();
                emit(format!("{} actions, {late} overdue", actions.len()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn lessons(
    server: ServerArgs,
    area: String,
    from: String,
    until: String,
    format: Format,
) -> Result<ExitCode, ClientError> {
    let connection = Connection::open(&server).await?;
    let answer = reviews::lessons(&connection, &area, &from, &until).await?;
    match format {
        Format::Table => emit(reviews::lessons_table(&answer).trim_end()),
        Format::Json => emit(reviews::lessons_json(&answer)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn enquiries(
    server: ServerArgs,
    place: String,
    format: Format,
) -> Result<ExitCode, ClientError> {
    let connection = Connection::open(&server).await?;
    let answer = reviews::enquiries(&connection, &place).await?;
    match format {
        Format::Table => emit(reviews::enquiries_table(&answer).trim_end()),
        Format::Json => emit(reviews::enquiries_json(&answer)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn health(mut server: ServerArgs, service: String) -> Result<ExitCode, ClientError> {
    use tonic_health::pb::health_check_response::ServingStatus;
    // A probe reports what it finds; it never waits for the store to open.
    server.wait = 0;
    let connection = Connection::open(&server).await?;
    let status = connection
        .client(tonic_health::pb::health_client::HealthClient::new)
        .check(tonic_health::pb::HealthCheckRequest { service })
        .await?
        .into_inner()
        .status();
    emit(status.as_str_name());
    Ok(if status == ServingStatus::Serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn backup(server: ServerArgs, out: PathBuf) -> Result<ExitCode, ClientError> {
    let connection = Connection::open(&server).await?;
    let (summary, bytes) = marr::cli::backup::backup(&connection, &out).await?;
    emit(format!(
        "backed up {summary} to {} ({bytes} bytes)",
        out.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// The store a data directory or a config file names.
fn location_of(path: &Path) -> Result<Location, ClientError> {
    if path
        .extension()
        .is_some_and(|extension| extension == "toml")
    {
        location_in_config(path)
    } else {
        Ok(Location::Sled(path.to_path_buf()))
    }
}

/// The store a config file's `[store]` names.
fn location_in_config(path: &Path) -> Result<Location, ClientError> {
    let unusable = |reason: String| ClientError::Input {
        path: path.display().to_string(),
        reason,
    };
    let config = Config::load(path).map_err(|e| unusable(e.to_string()))?;
    config.store_location().map_err(|e| unusable(e.to_string()))
}

/// The store named by `--data-dir` or by `--config`'s `[store]`.
fn location_from(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<Option<Location>, ClientError> {
    match (data_dir, config) {
        (Some(dir), _) => Ok(Some(Location::Sled(dir))),
        (None, Some(config)) => location_in_config(&config).map(Some),
        (None, None) => Ok(None),
    }
}

async fn restore(location: Location, file: PathBuf) -> Result<ExitCode, ClientError> {
    let target = location.clone();
    let summary = tokio::task::spawn_blocking(move || marr::cli::backup::restore(&target, &file))
        .await
        .map_err(|e| ClientError::Input {
            path: location.to_string(),
            reason: e.to_string(),
        })??;
    emit(format!(
        "restored {summary} into the {location}; every projection rebuilt and checked, the audit chain intact"
    ));
    Ok(ExitCode::SUCCESS)
}

async fn move_register(from: PathBuf, to: PathBuf) -> Result<ExitCode, ClientError> {
    let (from, to) = (location_of(&from)?, location_of(&to)?);
    let summary = marr::cli::backup::move_register(&from, &to).await?;
    emit(format!(
        "moved {summary} from the {from} into the {to}; every projection rebuilt and checked, the audit chain intact"
    ));
    Ok(ExitCode::SUCCESS)
}

fn client_exit(result: Result<ExitCode, ClientError>) -> ExitCode {
    result.unwrap_or_else(|error| {
        eprintln!("marr: {error}");
        ExitCode::from(2)
    })
}

/// How the server writes its logs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to standard error at the level `RUST_LOG` sets (default info): text, coloured on a
/// terminal, or one JSON object per line.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}

/// sled allocates and frees a node's worth of memory on every write; the system allocator
/// spent a quarter of the writer's time on it (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // An empty MARR_* variable means unset, as if it were not there. Removed before any
    // other thread exists, which is what makes changing the environment sound.
    for (name, value) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MARR_") && value.is_empty() {
            // SAFETY: the process has one thread here; the runtime starts below.
            unsafe { std::env::remove_var(&name) };
        }
    }
    let cli = Cli::parse();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("marr: INTERNAL: cannot start the runtime: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            database_url,
            insecure,
            log_format,
            metrics_listen,
            http_listen,
        } => {
            init_logging(log_format);
            if let Some(address) = metrics_listen {
                if let Err(error) = marr::telemetry::install(address) {
                    eprintln!("marr serve: cannot serve metrics on {address}: {error}");
                    return ExitCode::from(2);
                }
                tracing::info!(%address, "serving Prometheus metrics at /metrics");
            }
            match serve(
                config,
                listen,
                http_listen,
                data_dir,
                database_url,
                insecure,
            )
            .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("marr serve: {error:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo {
            listen,
            http_listen,
            data,
        } => match marr::cli::demo::run(listen, http_listen, &data, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("marr demo: {error}");
                ExitCode::from(2)
            }
        },
        Command::Push { server, file } => client_exit(push(server, file).await),
        Command::Backup { server, out } => client_exit(backup(server, out).await),
        Command::Health { server, service } => client_exit(health(server, service).await),
        Command::Restore {
            data_dir,
            config,
            file,
        } => client_exit(match location_from(data_dir, config) {
            Ok(Some(location)) => restore(location, file).await,
            Ok(None) => unreachable!("clap requires --data-dir or --config"),
            Err(error) => Err(error),
        }),
        Command::Move { from, to } => client_exit(move_register(from, to).await),
        Command::Verify {
            server,
            data_dir,
            config,
            audit,
            repair,
        } => client_exit(match location_from(data_dir, config) {
            Ok(offline) => verify(server, offline, audit, repair).await,
            Err(error) => Err(error),
        }),
        Command::DevCerts { dir, config } => client_exit(dev_certs(&dir, config.as_deref())),
        Command::Pseudonymise { key_file, input } => {
            client_exit(pseudonymise(&key_file, input.as_deref()))
        }
        Command::Watch {
            server,
            place,
            client_groups,
            kinds,
            min_severity,
            cursor_file,
            from,
            format,
        } => {
            let plan = watch::WatchPlan {
                filter: marr::proto::AlertFilter {
                    place_code: place.unwrap_or_default(),
                    client_groups: client_groups.iter().map(|g| g.number()).collect(),
                    kinds: kinds.iter().map(|k| k.number()).collect(),
                    min_severity: min_severity.map_or(0, |s| s.number()),
                },
                cursor_file,
                from,
                format,
            };
            tokio::select! {
                result = watch::watch(&server, plan, emit) => client_exit(result.map(|()| ExitCode::SUCCESS)),
                _ = shutdown_signal() => ExitCode::SUCCESS,
            }
        }
        Command::Export {
            server,
            table,
            parent,
            level,
            out,
            release,
        } => client_exit(export(server, table, parent, level, release, out).await),
        Command::Reviews { command } => client_exit(run_reviews(command).await),
        Command::Actions { command } => client_exit(run_actions(command).await),
        Command::Lessons {
            server,
            area,
            from,
            until,
            format,
        } => client_exit(lessons(server, area, from, until, format).await),
        Command::Enquiries {
            server,
            place,
            format,
        } => client_exit(enquiries(server, place, format).await),
        Command::View {
            server,
            place,
            filter,
            as_of,
            format,
        } => client_exit(view(server, place, filter.to_proto(), as_of, format).await),
        Command::Follow {
            server,
            subject_key,
            purpose,
            as_of,
            format,
        } => client_exit(follow(server, subject_key, purpose, as_of, format).await),
        Command::Places {
            command: PlacesCommand::Import { server, files },
        } => client_exit(import_places(server, files).await),
        Command::Population {
            command: PopulationCommand::Import { server, files },
        } => client_exit(import_population(server, files).await),
        Command::Neighbours {
            command: NeighboursCommand::Import { server, files },
        } => client_exit(import_neighbours(server, files).await),
        Command::Boundaries {
            command: BoundariesCommand::Import { server, files },
        } => client_exit(import_boundaries(server, files).await),
        Command::Agencies {
            command:
                AgenciesCommand::Register {
                    server,
                    id,
                    kind,
                    name,
                    footprint,
                },
        } => client_exit(register_agency(server, id, kind, name, footprint).await),
    }
}
