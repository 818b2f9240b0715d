//! `marr backup` and `marr restore`.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::{ClientError, Connection};
use crate::proto;
use crate::store::{BackupSummary, Location, Store, StoreError, StoreOptions};

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

/// Builds the register at `location` (sled or PostgreSQL, holding none yet) from a backup file
/// and checks it. Blocking.
pub fn restore(location: &Location, backup: &Path) -> Result<BackupSummary, ClientError> {
    let file = std::fs::File::open(backup).map_err(|e| failed(backup, e))?;
    Store::restore_at(location, BufReader::new(file)).map_err(|e| failed(backup, e))
}

/// Copies the register at `from` into `to`, which must hold none: a backup of the source
/// streamed through a pipe into a restore, so the copy is rebuilt and checked as any restore
/// is, and nothing is written to disk on the way. The source is only read; every server of
/// either store must be stopped.
pub async fn move_register(from: &Location, to: &Location) -> Result<BackupSummary, ClientError> {
    let source_failed = |error: StoreError| ClientError::Input {
        path: from.to_string(),
        reason: error.to_string(),
    };
    let target_failed = |reason: String| ClientError::Input {
        path: to.to_string(),
        reason,
    };
    if from == to {
        return Err(target_failed("is the store being moved".into()));
    }
    let at = from.clone();
    let source = tokio::task::spawn_blocking(move || Store::open_at(&at, StoreOptions::default()))
        .await
        .map_err(|e| target_failed(e.to_string()))?
        .map_err(source_failed)?;
    let cut = source.backup_cut().await.map_err(source_failed)?;
    let (reader, writer) = std::io::pipe().map_err(|e| target_failed(e.to_string()))?;
    let reading = source.clone();
    let backup = tokio::task::spawn_blocking(move || {
        let written = reading.write_backup(&cut, std::io::BufWriter::new(writer));
        reading.close_blocking().and(written)
    });
    let target = to.clone();
    let restore = tokio::task::spawn_blocking(move || {
        Store::restore_at(&target, std::io::BufReader::new(reader))
    });
    let (written, restored) = tokio::join!(backup, restore);
    let restored = restored.map_err(|e| target_failed(e.to_string()))?;
    let written = written.map_err(|e| target_failed(e.to_string()))?;
    match (restored, written) {
        (Ok(summary), Ok(_)) => Ok(summary),
        (Err(refused), Ok(_)) => Err(target_failed(refused.to_string())),
        (Ok(_), Err(unread)) => Err(source_failed(unread)),
        // A restore that stopped early breaks the pipe: its own reason comes first.
        (Err(refused), Err(unread)) => Err(target_failed(format!(
            "{refused} (reading the source: {unread})"
        ))),
    }
}
