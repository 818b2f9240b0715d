//! `marr push`: streams an extract through `PushRecords` and accounts for every row.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::extract::{self, ExtractRow};
use super::{ClientError, Connection};
use crate::domain::FieldViolation;
use crate::proto::{self, Outcome};

/// Rows that may be sent ahead of their answers.
const WINDOW: usize = 16_384;

/// What happened to every row of a push.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushSummary {
    pub pushed: u64,
    pub accepted: u64,
    pub unchanged: u64,
    pub stale: u64,
    pub rejected: u64,
}

impl std::ops::AddAssign for PushSummary {
    fn add_assign(&mut self, other: Self) {
        self.pushed += other.pushed;
        self.accepted += other.accepted;
        self.unchanged += other.unchanged;
        self.stale += other.stale;
        self.rejected += other.rejected;
    }
}

impl std::fmt::Display for PushSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pushed {} records: {} accepted, {} unchanged, {} stale, {} rejected",
            self.pushed, self.accepted, self.unchanged, self.stale, self.rejected
        )
    }
}

/// A row the register did not take, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub line: u64,
    pub agency_id: String,
    pub local_ref: String,
    pub field: String,
    pub reason: String,
}

impl Reject {
    /// A reject for the rejects file. A key field that was refused, or that would be refused
    /// (a row is refused for its first bad field), is left out: it may hold an identifier,
    /// and the line number finds the row.
    fn new(line: u64, agency_id: String, local_ref: String, field: String, reason: String) -> Self {
        let keep = |name: &str, value: String, acceptable: bool| {
            if field == name || !acceptable {
                String::new()
            } else {
                value
            }
        };
        let agency_ok = crate::domain::free_text::check_local_ref(&agency_id).is_ok();
        let local_ok = crate::domain::free_text::check_local_ref(&local_ref).is_ok();
        Self {
            line,
            agency_id: keep("agency_id", agency_id, agency_ok),
            local_ref: keep("local_ref", local_ref, local_ok),
            field,
            reason,
        }
    }
}

/// A row on its way: either sent to the server or refused before sending.
enum Sent {
    Record {
        line: u64,
        agency_id: String,
        local_ref: String,
    },
    Refused {
        line: u64,
        agency_id: String,
        local_ref: String,
        violation: FieldViolation,
    },
}

/// Pushes rows through one `PushRecords` stream, matching each answer to its row.
pub async fn push_rows(
    connection: &Connection,
    rows: impl Iterator<Item = ExtractRow> + Send + 'static,
    progress: &ProgressBar,
) -> Result<(PushSummary, Vec<Reject>), ClientError> {
    let (requests, outgoing) = mpsc::channel::<proto::PushRecordsRequest>(1024);
    let (sent_tx, mut sent) = mpsc::channel::<Sent>(WINDOW);
    let producer = tokio::task::spawn_blocking(move || {
        for row in rows {
            let (announce, request) = match row.record {
                Ok(record) => (
                    Sent::Record {
                        line: row.line,
                        agency_id: row.agency_id,
                        local_ref: row.local_ref,
                    },
                    Some(proto::PushRecordsRequest {
                        record: Some(record),
                    }),
                ),
                Err(violation) => (
                    Sent::Refused {
                        line: row.line,
                        agency_id: row.agency_id,
                        local_ref: row.local_ref,
                        violation,
                    },
                    None,
                ),
            };
            if sent_tx.blocking_send(announce).is_err() {
                return;
            }
            if let Some(request) = request
                && requests.blocking_send(request).is_err()
            {
                return;
            }
        }
    });
    let mut answers = connection
        .risk_register()
        .push_records(ReceiverStream::new(outgoing))
        .await?
        .into_inner();
    let mut summary = PushSummary::default();
    let mut rejects = Vec::new();
    while let Some(next) = sent.recv().await {
        summary.pushed += 1;
        progress.inc(1);
        match next {
            Sent::Refused {
                line,
                agency_id,
                local_ref,
                violation,
            } => {
                summary.rejected += 1;
                rejects.push(Reject::new(
                    line,
                    agency_id,
                    local_ref,
                    violation.field,
                    violation.reason,
                ));
            }
            Sent::Record {
                line,
                agency_id,
                local_ref,
            } => {
                let answer = answers.next().await.ok_or_else(|| {
                    ClientError::Refused(tonic::Status::unavailable(
                        "the server ended the stream before answering every record",
                    ))
                })??;
                match Outcome::try_from(answer.outcome) {
                    Ok(Outcome::Accepted) => summary.accepted += 1,
                    Ok(Outcome::Unchanged) => summary.unchanged += 1,
                    Ok(Outcome::Stale) => summary.stale += 1,
                    Ok(Outcome::Rejected | Outcome::Unspecified) | Err(_) => {
                        summary.rejected += 1;
                        rejects.push(Reject::new(
                            line,
                            agency_id,
                            local_ref,
                            answer.field,
                            answer.reason,
                        ));
                    }
                }
            }
        }
    }
    // The producer only stops early when the stream is gone, which the loop has reported.
    let _ = producer.await;
    Ok((summary, rejects))
}

/// Where the rejects of `file` are written: `FILE.rejects.csv` beside it.
pub fn rejects_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".rejects.csv");
    PathBuf::from(name)
}

/// Writes the rejects file, or removes an old one when nothing was rejected.
pub fn write_rejects(path: &Path, rejects: &[Reject]) -> Result<(), ClientError> {
    let input = |e: &dyn std::error::Error| ClientError::Input {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if rejects.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(input(&e)),
            _ => Ok(()),
        };
    }
    let mut writer = csv::Writer::from_path(path).map_err(|e| input(&e))?;
    writer
        .write_record(["line", "agency_id", "local_ref", "field", "reason"])
        .map_err(|e| input(&e))?;
    for reject in rejects {
        writer
            .write_record([
                reject.line.to_string().as_str(),
                &reject.agency_id,
                &reject.local_ref,
                &reject.field,
                &reject.reason,
            ])
            .map_err(|e| input(&e))?;
    }
    writer.flush().map_err(|e| input(&e))
}

/// A progress line on a terminal; hidden when standard error is not one.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} records pushed ({per_sec})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// `marr push FILE`: pushes the extract, writes the rejects file, returns the summary.
pub async fn push_file(connection: &Connection, file: &Path) -> Result<PushSummary, ClientError> {
    let rows = extract::read(file).map_err(|e| ClientError::Input {
        path: file.display().to_string(),
        reason: e.to_string(),
    })?;
    let progress = progress_bar();
    let (summary, rejects) = push_rows(connection, rows, &progress).await?;
    progress.finish_and_clear();
    write_rejects(&rejects_path(file), &rejects)?;
    Ok(summary)
}
