//! Files only their owner may read: private keys (`belfry certs`) and backups, which hold
//! every job's target credentials.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` (created or truncated) with mode 0600, and fsyncs it.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
