//! The server's configuration: defaults, then the TOML file, then `MARR_*` environment
//! variables, then flags (the last two are layered by the command line parser).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::guard::{ClientAddresses, Limits};
use crate::domain::{AgencyId, PlaceCode};
use crate::rules::RuleSettings;

/// Where the server listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Where the server keeps its store when nothing says otherwise.
pub const DEFAULT_DATA_DIR: &str = "marr-data";

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

pub use crate::domain::Role;

/// A person or system that calls the register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// For agency principals: the agency they act for.
    pub agency: Option<String>,
    /// For inspectors and boards: the places and footprint areas in scope.
    #[serde(default)]
    pub places: Vec<String>,
    /// SHA-256 of the bearer token, as 64 lower-case hex characters; never the token itself.
    pub token_sha256: Option<String>,
    /// Common name of the principal's client certificate, for mutual TLS.
    pub cert_cn: Option<String>,
}

/// The configuration file's contents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Option<SocketAddr>,
    /// Where the web front listens; no web front when unset.
    pub http_listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// TLS for the gRPC server; mutual TLS when `client_ca` is set.
    pub tls: Option<TlsConfig>,
    #[serde(default, rename = "principal")]
    pub principals: Vec<Principal>,
    #[serde(default)]
    pub rules: RulesConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub open_data: OpenDataConfig,
    /// A TLS-terminating proxy in front of the server, whose header names the client.
    pub proxy: Option<ProxyConfig>,
    #[serde(default)]
    pub web: WebConfig,
}

/// The `[web]` table: how long a signed-in session lasts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Minutes a session may stay unused before it ends (default 30, at most 720).
    pub session_idle_minutes: Option<u64>,
    /// Hours a session lasts at most, however busy (default 12, at most 24).
    pub session_max_hours: Option<u64>,
}

/// The `[proxy]` table: where the client's address comes from behind a proxy that ends TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Addresses of the proxies whose header is believed; from any other peer it is ignored.
    pub trusted: Vec<std::net::IpAddr>,
    /// The header the proxy sets, e.g. `x-forwarded-for`; its last entry is the one the
    /// trusted proxy appended, so it is the one used.
    pub client_address_header: String,
}

/// The `[open_data]` table: when releases of the public table are cut.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenDataConfig {
    /// Cut releases on the schedule (default true); administrators can always cut one.
    pub scheduled_releases: Option<bool>,
    /// Day of the month releases are cut, 1 to 28 (default 1).
    pub release_day_of_month: Option<u32>,
    /// Hour of that day, UTC, 0 to 23 (default 0).
    pub release_hour: Option<u32>,
    /// How often the server looks whether a release is due, in seconds (default 60).
    pub release_check_seconds: Option<u64>,
}

/// Which engine keeps the register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// sled, embedded, in `data_dir`: one node.
    #[default]
    Sled,
    /// A PostgreSQL database at `[store] url`: one node or several sharing it.
    Postgres,
}

/// The `[store]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `"sled"` (default) or `"postgres"`.
    pub engine: Option<EngineChoice>,
    /// PostgreSQL: the connection URL, e.g.
    /// `postgresql://marr@db-a,db-b/marr?target_session_attrs=read-write` (or
    /// `MARR_DATABASE_URL`). Put the password in `password_file`, not here.
    pub url: Option<String>,
    /// PostgreSQL: PEM file of the CA that signs the database's certificate; with it every
    /// connection uses TLS and checks the certificate.
    pub ca: Option<PathBuf>,
    /// PostgreSQL: a file holding the password.
    pub password_file: Option<PathBuf>,
    /// PostgreSQL: connections held open (default 8, 1 to 256).
    pub connections: Option<usize>,
    /// PostgreSQL: seconds a node may go without knowing it holds the register's head (other
    /// nodes write it too) before its health says NOT_SERVING (default 10, 1 to 3600).
    pub max_lag_seconds: Option<u64>,
    /// fsync the store's file after every flush, so an acknowledged write survives a power cut
    /// and not only a crash of the process (default true).
    pub fsync: Option<bool>,
    /// MiB sled may keep in its page cache (default 256, at least 16).
    pub cache_mib: Option<u64>,
    /// Revisions between two checkpoints of the inspection counters (default 50000).
    pub checkpoint_every: Option<u64>,
    /// Log or index entries one page of risks (or alerts one page of alerts) may read before
    /// answering a short page with a token to resume (default 100000).
    pub page_read_limit: Option<usize>,
}

/// Seconds a node may lag the register's head unless the config says otherwise.
pub const DEFAULT_MAX_LAG_SECONDS: u64 = 10;

/// The `[limits]` table: what one call, and one principal, may ask of the server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Seconds a call may take to produce its answer (default 30).
    pub deadline_seconds: Option<u64>,
    /// Calls worked on at once; more are refused with RESOURCE_EXHAUSTED (default 512).
    pub max_concurrent_calls: Option<usize>,
    /// Calls per second each principal may make on average (default 200).
    pub calls_per_second: Option<u32>,
    /// Calls a principal may make at once after a quiet spell (default 400).
    pub burst: Option<u32>,
    /// Seconds a stopping server waits for open calls before it closes them (default 10).
    pub drain_seconds: Option<u64>,
}

/// The `[tls]` table: PEM files of the server's certificate and key, and of the CA that signs
/// client certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With it, every client must present a certificate this CA signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// The `[rules]` table: alert rule settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Distinct agencies at which one subject raises `multi_agency` (default 2).
    pub multi_agency_min_agencies: Option<usize>,
    /// Default `place_threshold` for every district; 0 turns it off (default 50).
    pub district_threshold: Option<u64>,
    /// Thresholds for particular places or footprint areas, by GSS code.
    #[serde(default)]
    pub place_thresholds: std::collections::BTreeMap<String, u64>,
    /// Days without a new revision before a high or critical record is stale (default 30).
    pub stale_high_risk_days: Option<u32>,
    /// How often the staleness sweep runs, in seconds (default 3600).
    pub sweep_interval_seconds: Option<u64>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        config.check()?;
        Ok(config)
    }

    /// The address to listen on, after the file and the default.
    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| {
            DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 50051)))
        })
    }

    /// The data directory, after the file and the default.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The alert rule settings, checked.
    pub fn rule_settings(&self) -> Result<RuleSettings, ConfigError> {
        let rules = &self.rules;
        let defaults = RuleSettings::default();
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("rules.{key}"),
            reason: reason.to_string(),
        };
        let multi_agency_min_agencies = rules
            .multi_agency_min_agencies
            .unwrap_or(defaults.multi_agency_min_agencies);
        if multi_agency_min_agencies < 2 {
            return Err(invalid("multi_agency_min_agencies", "must be at least 2"));
        }
        let mut place_thresholds = std::collections::BTreeMap::new();
        for (code, threshold) in &rules.place_thresholds {
            let place = PlaceCode::parse(code)
                .map_err(|reason| invalid(&format!("place_thresholds.{code}"), &reason))?;
            if *threshold == 0 {
                return Err(invalid(
                    &format!("place_thresholds.{code}"),
                    "must be at least 1",
                ));
            }
            place_thresholds.insert(place, *threshold);
        }
        let stale_days = rules.stale_high_risk_days.unwrap_or(30);
        if stale_days == 0 {
            return Err(invalid("stale_high_risk_days", "must be at least 1"));
        }
        if rules.sweep_interval_seconds == Some(0) {
            return Err(invalid("sweep_interval_seconds", "must be at least 1"));
        }
        Ok(RuleSettings {
            multi_agency_min_agencies,
            district_threshold: match rules.district_threshold {
                Some(0) => None,
                Some(n) => Some(n),
                None => defaults.district_threshold,
            },
            place_thresholds,
            stale_after: time::Duration::days(i64::from(stale_days)),
        })
    }

    /// The release schedule, checked; `None` when scheduled releases are off.
    pub fn release_schedule(
        &self,
    ) -> Result<Option<crate::domain::release::ReleaseSchedule>, ConfigError> {
        let open_data = &self.open_data;
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: format!("open_data.{key}"),
            reason,
        };
        if open_data.release_check_seconds == Some(0) {
            return Err(invalid(
                "release_check_seconds",
                "must be at least 1".into(),
            ));
        }
        let day = open_data.release_day_of_month.unwrap_or(1);
        let hour = open_data.release_hour.unwrap_or(0);
        let day = u8::try_from(day).map_err(|_| {
            invalid(
                "release_day_of_month",
                format!("{day} is not a day every month has (1 to 28)"),
            )
        })?;
        let hour = u8::try_from(hour)
            .map_err(|_| invalid("release_hour", format!("{hour} is not an hour (0 to 23)")))?;
        let schedule = crate::domain::release::ReleaseSchedule::new(day, hour)
            .map_err(|(key, reason)| invalid(key, reason))?;
        Ok(open_data
            .scheduled_releases
            .unwrap_or(true)
            .then_some(schedule))
    }

    /// How often the server looks whether a release is due.
    pub fn release_check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.open_data.release_check_seconds.unwrap_or(60).max(1))
    }

    /// How often the staleness sweep runs.
    pub fn sweep_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.rules.sweep_interval_seconds.unwrap_or(3600).max(1))
    }

    /// The limits, checked.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let limits = &self.limits;
        let invalid = |key: &str| ConfigError::Invalid {
            key: format!("limits.{key}"),
            reason: "must be at least 1".into(),
        };
        let at_least_one = |value: Option<u32>, default: u32, key: &str| {
            NonZeroU32::new(value.unwrap_or(default)).ok_or_else(|| invalid(key))
        };
        let deadline = limits.deadline_seconds.unwrap_or(30);
        if deadline == 0 {
            return Err(invalid("deadline_seconds"));
        }
        let max_concurrent = limits.max_concurrent_calls.unwrap_or(512);
        if max_concurrent == 0 {
            return Err(invalid("max_concurrent_calls"));
        }
        let drain = limits.drain_seconds.unwrap_or(10);
        if drain == 0 {
            return Err(invalid("drain_seconds"));
        }
        Ok(Limits {
            drain: std::time::Duration::from_secs(drain),
            deadline: std::time::Duration::from_secs(deadline),
            max_concurrent,
            per_principal_per_second: at_least_one(
                limits.calls_per_second,
                200,
                "calls_per_second",
            )?,
            per_principal_burst: at_least_one(limits.burst, 400, "burst")?,
        })
    }

    /// Where the register lives: sled in `data_dir`, or the PostgreSQL database of
    /// `[store] url`, checked.
    pub fn store_location(&self) -> Result<crate::store::Location, ConfigError> {
        let store = &self.store;
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("store.{key}"),
            reason: reason.to_string(),
        };
        match store.engine.unwrap_or_default() {
            EngineChoice::Sled => {
                for (key, set) in [
                    ("url", store.url.is_some()),
                    ("ca", store.ca.is_some()),
                    ("password_file", store.password_file.is_some()),
                    ("connections", store.connections.is_some()),
                    ("max_lag_seconds", store.max_lag_seconds.is_some()),
                ] {
                    if set {
                        return Err(invalid(key, "applies to engine = \"postgres\" only"));
                    }
                }
                Ok(crate::store::Location::Sled(self.data_dir()))
            }
            EngineChoice::Postgres => {
                let url = store
                    .url
                    .clone()
                    .ok_or_else(|| invalid("url", "engine = \"postgres\" needs a url"))?;
                if url.parse::<postgres::Config>().is_err() {
                    return Err(invalid(
                        "url",
                        "is not a PostgreSQL connection URL (postgresql://user@host/database)",
                    ));
                }
                let connections = store
                    .connections
                    .unwrap_or(crate::store::DEFAULT_CONNECTIONS);
                if !(1..=256).contains(&connections) {
                    return Err(invalid("connections", "must be from 1 to 256"));
                }
                if !(1..=3600).contains(&self.max_lag().as_secs()) {
                    return Err(invalid("max_lag_seconds", "must be from 1 to 3600"));
                }
                Ok(crate::store::Location::Postgres(
                    crate::store::PostgresOptions {
                        url,
                        ca: store.ca.clone(),
                        password_file: store.password_file.clone(),
                        connections,
                    },
                ))
            }
        }
    }

    /// How far behind the register's head a node may fall before its health says
    /// NOT_SERVING (checked with [`Config::store_location`]).
    pub fn max_lag(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.store
                .max_lag_seconds
                .unwrap_or(DEFAULT_MAX_LAG_SECONDS),
        )
    }

    /// Bytes of sled's page cache, checked.
    pub fn cache_bytes(&self) -> Result<u64, ConfigError> {
        let mib = self
            .store
            .cache_mib
            .unwrap_or(crate::store::DEFAULT_CACHE_MIB);
        if !(16..=1024 * 1024).contains(&mib) {
            return Err(ConfigError::Invalid {
                key: "store.cache_mib".into(),
                reason: "must be from 16 to 1048576 (MiB)".into(),
            });
        }
        Ok(mib * 1024 * 1024)
    }

    /// Revisions between checkpoints of the counters, checked.
    pub fn checkpoint_every(&self) -> Result<u64, ConfigError> {
        let every = self
            .store
            .checkpoint_every
            .unwrap_or(crate::store::DEFAULT_CHECKPOINT_EVERY);
        if !(1_000..=10_000_000).contains(&every) {
            return Err(ConfigError::Invalid {
                key: "store.checkpoint_every".into(),
                reason: "must be from 1000 to 10000000 (revisions)".into(),
            });
        }
        Ok(every)
    }

    /// Entries one page of risks may read, checked.
    pub fn page_read_limit(&self) -> Result<usize, ConfigError> {
        let limit = self
            .store
            .page_read_limit
            .unwrap_or(crate::store::DEFAULT_PAGE_READ_LIMIT);
        if !(1_000..=10_000_000).contains(&limit) {
            return Err(ConfigError::Invalid {
                key: "store.page_read_limit".into(),
                reason: "must be from 1000 to 10000000 (entries)".into(),
            });
        }
        Ok(limit)
    }

    /// How long web sessions last, checked.
    pub fn session_limits(&self) -> Result<crate::web::session::SessionLimits, ConfigError> {
        let idle = self.web.session_idle_minutes.unwrap_or(30);
        if !(1..=720).contains(&idle) {
            return Err(ConfigError::Invalid {
                key: "web.session_idle_minutes".into(),
                reason: "must be from 1 to 720 (minutes)".into(),
            });
        }
        let most = self.web.session_max_hours.unwrap_or(12);
        if !(1..=24).contains(&most) {
            return Err(ConfigError::Invalid {
                key: "web.session_max_hours".into(),
                reason: "must be from 1 to 24 (hours)".into(),
            });
        }
        Ok(crate::web::session::SessionLimits {
            idle: std::time::Duration::from_secs(idle * 60),
            absolute: std::time::Duration::from_secs(most * 60 * 60),
            ..Default::default()
        })
    }

    /// Where callers' addresses come from: the TCP peer, or a trusted proxy's header.
    pub fn client_addresses(&self) -> Result<ClientAddresses, ConfigError> {
        let Some(proxy) = &self.proxy else {
            return Ok(ClientAddresses::default());
        };
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("proxy.{key}"),
            reason: reason.into(),
        };
        if proxy.trusted.is_empty() {
            return Err(invalid("trusted", "must name at least one proxy address"));
        }
        let header = http::HeaderName::from_bytes(proxy.client_address_header.as_bytes())
            .map_err(|_| invalid("client_address_header", "is not a header name"))?;
        Ok(ClientAddresses {
            trusted_proxies: proxy.trusted.clone(),
            header: Some(header),
        })
    }

    /// Checks every principal, naming the first bad key.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.rule_settings()?;
        self.limits()?;
        self.cache_bytes()?;
        self.store_location()?;
        self.checkpoint_every()?;
        self.page_read_limit()?;
        self.client_addresses()?;
        self.release_schedule()?;
        let mut names = HashSet::new();
        let mut certificate_names = HashSet::new();
        let mut token_hashes = HashSet::new();
        for (i, principal) in self.principals.iter().enumerate() {
            let invalid = |field: &str, reason: String| ConfigError::Invalid {
                key: format!("principal[{i}].{field}"),
                reason,
            };
            if principal.name.trim().is_empty() {
                return Err(invalid("name", "must not be empty".into()));
            }
            if !names.insert(principal.name.as_str()) {
                return Err(invalid(
                    "name",
                    format!("`{}` is used by two principals", principal.name),
                ));
            }
            if let Some(name) = &principal.cert_cn
                && !certificate_names.insert(name.as_str())
            {
                return Err(invalid(
                    "cert_cn",
                    format!("`{name}` is used by two principals"),
                ));
            }
            if let Some(hash) = &principal.token_sha256
                && !token_hashes.insert(hash.as_str())
            {
                return Err(invalid(
                    "token_sha256",
                    "the same token hash is given to two principals".into(),
                ));
            }
            if let Some(hash) = &principal.token_sha256 {
                let shaped = hash.len() == 64
                    && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                if !shaped {
                    return Err(invalid(
                        "token_sha256",
                        "must be 64 lower-case hex characters (the SHA-256 of the token)".into(),
                    ));
                }
            }
            match (&principal.agency, principal.role) {
                (None, Role::Agency) => {
                    return Err(invalid("agency", "is required for role agency".into()));
                }
                (Some(agency), _) => {
                    AgencyId::parse(agency).map_err(|reason| invalid("agency", reason))?;
                }
                (None, _) => {}
            }
            for place in &principal.places {
                PlaceCode::parse(place).map_err(|reason| invalid("places", reason))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/marr.example.toml");
        let config = Config::load(&path).expect("the shipped example is valid");
        assert_eq!(config.principals.len(), 2);
        assert_eq!(config.data_dir(), PathBuf::from("/var/lib/marr"));
    }

    #[test]
    fn a_release_schedule_no_month_can_keep_is_refused_naming_the_key() {
        for (text, key) in [
            (
                "[open_data]\nrelease_day_of_month = 31",
                "open_data.release_day_of_month",
            ),
            (
                "[open_data]\nrelease_day_of_month = 0",
                "open_data.release_day_of_month",
            ),
            (
                "[open_data]\nrelease_day_of_month = 4000",
                "open_data.release_day_of_month",
            ),
            ("[open_data]\nrelease_hour = 24", "open_data.release_hour"),
            (
                "[open_data]\nrelease_check_seconds = 0",
                "open_data.release_check_seconds",
            ),
        ] {
            let config: Config = toml::from_str(text).expect("parses");
            match config.check() {
                Err(ConfigError::Invalid { key: named, .. }) => assert_eq!(named, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let config: Config =
            toml::from_str("[open_data]\nrelease_day_of_month = 15\nrelease_hour = 7")
                .expect("parses");
        let schedule = config.release_schedule().expect("valid");
        assert_eq!(schedule.map(|s| (s.day_of_month, s.hour)), Some((15, 7)));
        let off: Config =
            toml::from_str("[open_data]\nscheduled_releases = false").expect("parses");
        assert_eq!(off.release_schedule().expect("valid"), None);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let error = toml::from_str::<Config>("listne = \"127.0.0.1:1\"").expect_err("unknown key");
        assert!(error.to_string().contains("listne"), "{error}");
    }

    #[test]
    fn two_principals_may_not_share_a_certificate_name_or_a_token() {
        let hash = "a".repeat(64);
        for (key, shared) in [
            ("cert_cn", "cert_cn = \"shared\""),
            ("token_sha256", &*format!("token_sha256 = \"{hash}\"")),
        ] {
            let text = format!(
                "[[principal]]\nname = \"a\"\nrole = \"admin\"\n{shared}\n\
                 [[principal]]\nname = \"b\"\nrole = \"board\"\n{shared}\n"
            );
            let config: Config = toml::from_str(&text).expect("parses");
            let error = config.check().expect_err("shared");
            assert!(
                error.to_string().contains(&format!("principal[1].{key}")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_cache_too_small_to_work_in_is_named() {
        let config: Config = toml::from_str("[store]\ncache_mib = 1\n").expect("parses");
        let error = config.check().expect_err("too small");
        assert!(error.to_string().contains("store.cache_mib"), "{error}");
        let config: Config = toml::from_str("[store]\ncache_mib = 64\n").expect("parses");
        assert_eq!(config.cache_bytes().expect("valid"), 64 * 1024 * 1024);
    }

    #[test]
    fn the_engine_and_its_settings_are_checked_by_name() {
        let postgres = |rest: &str| -> Config {
            toml::from_str(&format!("[store]\nengine = \"postgres\"\n{rest}")).expect("parses")
        };
        for (config, key) in [
            (postgres(""), "store.url"),
            (postgres("url = \"host=db port=oops\"\n"), "store.url"),
            (
                postgres("url = \"postgresql://marr@db/marr\"\nconnections = 0\n"),
                "store.connections",
            ),
            (
                postgres("url = \"postgresql://marr@db/marr\"\nmax_lag_seconds = 0\n"),
                "store.max_lag_seconds",
            ),
            (
                toml::from_str("[store]\nmax_lag_seconds = 5\n").expect("parses"),
                "store.max_lag_seconds",
            ),
            (
                toml::from_str("[store]\nurl = \"postgresql://marr@db/marr\"\n").expect("parses"),
                "store.url",
            ),
        ] {
            let error = config.check().expect_err("refused");
            assert!(error.to_string().contains(key), "{key}: {error}");
        }
        let config = postgres(
            "url = \"postgresql://marr@db-a,db-b/marr?target_session_attrs=read-write\"\n",
        );
        match config.store_location().expect("valid") {
            crate::store::Location::Postgres(options) => {
                assert_eq!(options.connections, crate::store::DEFAULT_CONNECTIONS);
                assert!(options.url.contains("db-b"));
            }
            other => panic!("{other:?}"),
        }
        let error = toml::from_str::<Config>("[store]\nengine = \"mysql\"\n").expect_err("unknown");
        assert!(error.to_string().contains("mysql"), "{error}");
    }

    #[test]
    fn an_agency_principal_needs_its_agency() {
        let config: Config =
            toml::from_str("[[principal]]\nname = \"x\"\nrole = \"agency\"\n").expect("parses");
        let error = config.check().expect_err("agency missing");
        assert!(error.to_string().contains("principal[0].agency"), "{error}");
    }
}
