//! `marr watch`: a board's live feed of alerts that survives network drops and restarts by
//! resuming from a cursor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tonic::Code;

use super::inspect::Format;
use super::{ClientError, Connection, ServerArgs};
use crate::domain::{AlertKind, ClientGroup, Severity, Vocabulary};
use crate::proto::{self, watch_response::Event};

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What to watch and where to keep the cursor.
pub struct WatchPlan {
    pub filter: proto::AlertFilter,
    pub cursor_file: Option<PathBuf>,
    /// Where to start without a cursor file.
    pub from: u64,
    pub format: Format,
}

fn word<V: Vocabulary>(number: i32) -> &'static str {
    V::from_number(number).map_or("", Vocabulary::word)
}

/// An alert as one readable line.
pub fn alert_line(alert: &proto::Alert) -> String {
    // An alert about an action plan has no client group: no gap where one would stand.
    let group = match word::<ClientGroup>(alert.client_group) {
        "" => String::new(),
        group => format!(" {group}"),
    };
    format!(
        "#{} {} {} {}{group}: {}",
        alert.sequence,
        word::<AlertKind>(alert.kind),
        word::<Severity>(alert.severity),
        alert.place_code,
        alert.detail
    )
}

/// An alert as one JSON object.
pub fn alert_json(alert: &proto::Alert) -> serde_json::Value {
    json!({
        "sequence": alert.sequence,
        "kind": word::<AlertKind>(alert.kind),
        "severity": word::<Severity>(alert.severity),
        "place_code": alert.place_code,
        "client_group": word::<ClientGroup>(alert.client_group),
        "records": alert.records.iter().map(|r| json!({"agency_id": r.agency_id, "local_ref": r.local_ref})).collect::<Vec<_>>(),
        "agency_ids": alert.agency_ids,
        "place_codes": alert.place_codes,
        "subject_key": alert.subject_key,
        "raised_by_sequence": alert.raised_by_sequence,
        "detail": alert.detail,
    })
}

/// The cursor saved in `path`, if there is one.
pub fn read_cursor(path: &Path) -> Result<Option<u64>, ClientError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ClientError::Input {
                path: path.display().to_string(),
                reason: "is not a cursor (one alert sequence number)".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::Input {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Saves the cursor so a crash never leaves a half-written file: write beside, then rename.
fn save_cursor(path: &Path, cursor: u64) -> Result<(), ClientError> {
    let input = |e: std::io::Error| ClientError::Input {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, format!("{cursor}\n")).map_err(input)?;
    std::fs::rename(&temporary, path).map_err(input)
}

/// Whether a failure is worth reconnecting for, rather than a refusal to report.
fn retriable(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. } => true,
        ClientError::Refused(status) => matches!(
            status.code(),
            Code::Unavailable
                | Code::Unknown
                | Code::Internal
                | Code::Cancelled
                | Code::DeadlineExceeded
        ),
        ClientError::Input { .. } | ClientError::BadToken => false,
    }
}

/// One connection's worth of watching: returns when the stream ends or fails.
async fn watch_once(
    server: &ServerArgs,
    plan: &WatchPlan,
    cursor: &mut u64,
    emit: &mut impl FnMut(String),
) -> Result<(), ClientError> {
    let connection = Connection::open(server).await?;
    let mut stream = connection
        .alerts()
        .watch(proto::WatchRequest {
            from_sequence: *cursor,
            filter: Some(plan.filter.clone()),
        })
        .await?
        .into_inner();
    while let Some(message) = stream.message().await? {
        match message.event {
            Some(Event::Alert(alert)) => {
                emit(match plan.format {
                    Format::Table => alert_line(&alert),
                    Format::Json => alert_json(&alert).to_string(),
                });
                *cursor = alert.sequence;
            }
            Some(Event::Heartbeat(beat)) => *cursor = beat.head_sequence.max(*cursor),
            None => continue,
        }
        if let Some(path) = &plan.cursor_file {
            save_cursor(path, *cursor)?;
        }
    }
    Ok(())
}

/// Watches until the process is stopped, reconnecting with backoff when the server goes away.
/// Returns only for a refusal that reconnecting cannot mend.
pub async fn watch(
    server: &ServerArgs,
    plan: WatchPlan,
    mut emit: impl FnMut(String),
) -> Result<(), ClientError> {
    let mut cursor = match &plan.cursor_file {
        Some(path) => read_cursor(path)?.unwrap_or(plan.from),
        None => plan.from,
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        let before = cursor;
        match watch_once(server, &plan, &mut cursor, &mut emit).await {
            Err(error) if !retriable(&error) => return Err(error),
            Err(error) => eprintln!(
                "marr watch: {error}; reconnecting in {} ms from #{cursor}",
                backoff.as_millis()
            ),
            Ok(()) => {
                eprintln!("marr watch: the server ended the stream; reconnecting from #{cursor}")
            }
        }
        if cursor > before {
            backoff = FIRST_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
