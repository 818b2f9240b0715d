//! `marr backup` and `marr restore`.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::{ClientError, Connection};
use crate::proto;
use crate::store::{BackupSummary, Store};

fn failed(path: &Path, reason: impl std::fmt::Display) -> ClientError {
    ClientError::Input {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Streams a consistent backup from the server into `out`. The file takes its name only once
/// it has been read back whole and its checksum holds; until then it is `out.partial`.
pub async fn backup(
    connection: &Connection,
    out: &Path,
) -> Result<(BackupSummary, u64), ClientError> {
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| failed(&partial, e))?;
    let mut chunks = connection
        .operations()
        .backup(proto::BackupRequest {})
        .await?
        .into_inner();
    let mut bytes = 0u64;
    while let Some(chunk) = chunks.message().await? {
        file.write_all(&chunk.data)
            .await
            .map_err(|e| failed(&partial, e))?;
        bytes += chunk.data.len() as u64;
    }
    file.sync_all().await.map_err(|e| failed(&partial, e))?;
    drop(file);
    let checking = partial.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&checking).map_err(|e| failed(&checking, e))?;
        Store::check_backup(BufReader::new(file)).map_err(|e| failed(&checking, e))
    })
    .await
    .map_err(|e| failed(&partial, e))??;
    std::fs::rename(&partial, out).map_err(|e| failed(out, e))?;
    Ok((summary, bytes))
}

/// Builds a store in `dir` from a backup file and checks it. Blocking.
pub fn restore(dir: &Path, backup: &Path) -> Result<BackupSummary, ClientError> {
    let file = std::fs::File::open(backup).map_err(|e| failed(backup, e))?;
    Store::restore(dir, BufReader::new(file)).map_err(|e| failed(backup, e))
}
