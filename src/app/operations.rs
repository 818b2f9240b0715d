//! Operations: consistent online backups, for administrators.

use std::io::Write;

use super::{AppError, Application};
use crate::auth::Caller;
use crate::store::{BackupCut, BackupSummary, Store};

/// A backup cut at one consistent point, not yet written. It is handed out only once the
/// call is concluded, so the read is recorded before a byte leaves.
pub struct Backup {
    store: Store,
    cut: BackupCut,
}

impl Application {
    /// Cuts a backup at the store's head while writes go on.
    pub async fn backup(&self, _caller: &Caller) -> Result<Backup, AppError> {
        let cut = self.store.backup_cut().await?;
        Ok(Backup {
            store: self.store.clone(),
            cut,
        })
    }
}

impl Backup {
    /// Writes the backup to `out`; blocking, so run it off the async workers.
    pub fn write_to(self, out: impl Write) -> Result<BackupSummary, AppError> {
        Ok(self.store.write_backup(&self.cut, out)?)
    }
}
