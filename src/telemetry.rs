//! Prometheus metrics on a separate HTTP port. The code records through the `metrics` macros
//! wherever the thing happens; without `--metrics-listen` no recorder is installed and they
//! cost next to nothing.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Calls answered, by method and the status they started with.
pub const REQUESTS: &str = "marr_requests_total";
/// Records submitted, by outcome: accepted, unchanged, stale, rejected.
pub const RECORDS: &str = "marr_records_total";
/// Records in each batch the writer commits.
pub const BATCH_SIZE: &str = "marr_writer_batch_records";
/// Seconds each of the writer's flushes (and fsyncs) takes.
pub const FLUSH_SECONDS: &str = "marr_writer_flush_seconds";
/// Alert watch streams open now.
pub const WATCHERS: &str = "marr_alert_watchers";
/// How far behind the durable alert head a watcher is when it wakes.
pub const WATCHER_LAG: &str = "marr_alert_watcher_lag";
/// Bytes the store occupies on disk.
pub const STORE_BYTES: &str = "marr_store_bytes";
/// Sequence of the last durable revision.
pub const LOG_HEAD: &str = "marr_log_head";

/// Serves `/metrics` in the Prometheus text format on `address`. Call once, from within the
/// runtime.
pub fn install(address: SocketAddr) -> Result<(), String> {
    let batch_buckets: Vec<f64> = (0..=12).map(|p| f64::from(1u32 << p)).collect();
    let flush_buckets = [
        0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ];
    let lag_buckets = [0.0, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];
    PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &batch_buckets)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(FLUSH_SECONDS.into()), &flush_buckets))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(WATCHER_LAG.into()), &lag_buckets))
        .and_then(PrometheusBuilder::install)
        .map_err(|e| e.to_string())?;
    metrics::describe_counter!(REQUESTS, "Calls answered, by method and starting status");
    metrics::describe_counter!(RECORDS, "Records submitted, by outcome");
    metrics::describe_histogram!(BATCH_SIZE, "Records per writer batch");
    metrics::describe_histogram!(FLUSH_SECONDS, "Seconds per writer flush, fsync included");
    metrics::describe_gauge!(WATCHERS, "Alert watch streams open");
    metrics::describe_histogram!(
        WATCHER_LAG,
        "Alerts a watcher is behind the durable head when it wakes"
    );
    metrics::describe_gauge!(STORE_BYTES, "Bytes the store occupies on disk");
    metrics::describe_gauge!(LOG_HEAD, "Sequence of the last durable revision");
    Ok(())
}
