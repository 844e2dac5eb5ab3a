//! `belfry backup` and `belfry restore`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

/// Flags of `belfry backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Where to write the backup.
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags of `belfry restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// A file written by `belfry backup`.
    pub file: PathBuf,
    /// The empty data dir of the node that will seed the new cluster.
    #[arg(long, env = "BELFRY_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Takes a consistent backup through `endpoint` (with `token`, which needs the operator role;
/// trusting the CA certificates of `ca_pem` for https) and writes it atomically to `out`.
pub async fn backup(
    endpoint: &str,
    token: Option<&str>,
    ca_pem: Option<&[u8]>,
    args: BackupArgs,
) -> anyhow::Result<()> {
    let url = format!("{}/v1/backup", endpoint.trim_end_matches('/'));
    let mut http = reqwest::Client::builder();
    for cert in
        ca_pem.map(reqwest::Certificate::from_pem_bundle).transpose().context("--ca-cert")?.into_iter().flatten()
    {
        http = http.add_root_certificate(cert);
    }
    let mut request = http.build()?.get(&url);
    if let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("reaching {url}"))?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        anyhow::bail!("{url}: {status}: {}", String::from_utf8_lossy(&bytes));
    }
    let backup: belfry_core::api::Backup = serde_json::from_slice(&bytes).context("the answer is not a backup")?;
    let tmp = args.out.with_extension("tmp");
    crate::private_file::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out)?;
    println!(
        "backup of {} jobs and {} fires at index {} written to {}",
        backup.data.jobs.len(),
        backup.data.fires.len(),
        backup.applied_index,
        args.out.display()
    );
    Ok(())
}

/// Stages a backup in an empty data dir; the node started there commits it.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let staged = belfry_node::restore::stage(&args.file, &args.data_dir)?;
    println!(
        "staged {}; start a node with --data-dir {} (alone or with --initial-cluster) and it restores the state \
         into its new cluster",
        staged.display(),
        args.data_dir.display()
    );
    Ok(())
}
