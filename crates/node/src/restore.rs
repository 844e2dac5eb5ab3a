//! Backups and restores. A backup is the applied state at a linearizable read point
//! (`GET /v1/backup`). A restore is staged into a new node's data dir (`belfry restore`) and
//! committed through the log once that node's cluster has a leader, as one `Restore` entry,
//! so every member applies it and an existing cluster's state can never be overwritten.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use belfry_core::api::{rfc3339, Backup};
use belfry_core::{Command, Response};

use crate::context::{ClusterError, Context};

/// The staged backup's file name inside a data dir.
const STAGED: &str = "restore.json";
/// What a staged backup is renamed to once committed.
const DONE: &str = "restore.json.applied";

/// A consistent copy of the state, as of every write committed before the call.
pub async fn backup(ctx: &Context) -> Result<Backup, ClusterError> {
    ctx.linearize().await?;
    let applied = ctx.shared.read();
    Ok(Backup {
        format: Backup::FORMAT.into(),
        taken_at: rfc3339(chrono::Utc::now()),
        node: ctx.id(),
        applied_index: applied.last_applied.map(|l| l.index).unwrap_or(0),
        data: applied.state.data().clone(),
    })
}

/// Reads and checks a backup file.
pub fn read_backup(file: &Path) -> anyhow::Result<Backup> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let backup: Backup =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a belfry backup", file.display()))?;
    if backup.format != Backup::FORMAT {
        bail!("{}: format {:?}, expected {:?}", file.display(), backup.format, Backup::FORMAT);
    }
    Ok(backup)
}

/// Stages `file` in `data_dir` for the node that will start there. Refuses a data dir that
/// already holds a node's state.
pub fn stage(file: &Path, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let backup = read_backup(file)?;
    if data_dir.join("sled").exists() {
        bail!("{} already holds a node's state; restore into an empty data dir", data_dir.display());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let staged = data_dir.join(STAGED);
    let tmp = data_dir.join(format!("{STAGED}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(&backup)?)?;
    std::fs::rename(&tmp, &staged)?;
    tracing::info!(jobs = backup.data.jobs.len(), fires = backup.data.fires.len(), "backup staged");
    Ok(staged)
}

/// If a backup is staged in this node's data dir, commits it once there is a leader.
pub fn apply_staged(ctx: &Arc<Context>) -> anyhow::Result<()> {
    let staged = ctx.config.data_dir.join(STAGED);
    if !staged.exists() {
        return Ok(());
    }
    let backup = read_backup(&staged)?;
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let command = Command::Restore { data: Box::new(backup.data) };
        loop {
            match ctx.propose(command.clone()).await {
                Ok((index, Response::None)) => {
                    tracing::info!(index, "backup restored");
                    break;
                }
                Ok((_, Response::Rejected { error })) => {
                    tracing::error!(error = %error, "backup not restored");
                    break;
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::info!(error = %e, "waiting for a leader to restore the backup");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if let Err(e) = std::fs::rename(&staged, ctx.config.data_dir.join(DONE)) {
            tracing::warn!(error = %e, "could not mark the staged backup as applied");
        }
    });
    Ok(())
}
