//! Delivery signing keys (docs/SECURITY.md, "Signing keys"): `Belfry-Signature:
//! t=<unix>,v1=<hex a>,v1=<hex b>`, one HMAC-SHA256 of `t + "." + body` per key, as Stripe
//! signs webhooks, so that a receiver can rotate: it accepts a delivery when any `v1` matches
//! a key it knows.
//!
//! Keys come from `--signing-secret-file` (one per line; the first is the newest), read at
//! start and again on SIGHUP. A reload that fails keeps the keys in use. Logs name keys by
//! their id (the first 8 hex digits of the key's SHA-256), never by the key.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Most keys a file may list: two are enough to rotate; a few more allow a staged rollout,
/// while the header stays short (about 70 bytes per key).
pub const MAX_SIGNING_KEYS: usize = 8;
/// Shortest key read from a file, in bytes: 128 bits, so that a key cannot be guessed.
pub const MIN_KEY_BYTES: usize = 16;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest key file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Why keys could not be loaded; the message names the file and the line, never a key.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The file could not be read.
    #[error("--signing-secret-file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// A line is not an acceptable key, or the file as a whole is not.
    #[error("--signing-secret-file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the line number.
        message: String,
    },
}

/// One key and its id.
struct Key {
    secret: Vec<u8>,
    id: String,
}

impl Key {
    fn new(secret: Vec<u8>) -> Key {
        let id = hex::encode(&Sha256::digest(&secret)[..4]);
        Key { secret, id }
    }
}

/// The signing keys of a node; clones share them, and [`Signer::reload`] changes them for all.
#[derive(Clone)]
pub struct Signer {
    keys: Arc<RwLock<Vec<Key>>>,
    file: Option<PathBuf>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("key_ids", &self.key_ids()).field("file", &self.file).finish()
    }
}

/// Reads keys from a key file's text: one per line, surrounding whitespace trimmed, blank
/// lines and lines starting with `#` skipped; 1 to [`MAX_SIGNING_KEYS`] keys of
/// [`MIN_KEY_BYTES`] to [`MAX_KEY_BYTES`] bytes each, no key twice.
pub fn parse_keys(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&line.len()) {
            return Err(format!("line {number}: a key is {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes"));
        }
        if keys.iter().any(|k| k == line.as_bytes()) {
            return Err(format!("line {number}: the same key is listed twice"));
        }
        keys.push(line.as_bytes().to_vec());
    }
    match keys.len() {
        0 => Err("no keys (one per line; blank lines and # comments are skipped)".into()),
        n if n > MAX_SIGNING_KEYS => Err(format!("{n} keys; at most {MAX_SIGNING_KEYS}")),
        _ => Ok(keys),
    }
}

fn read_keys(path: &Path) -> Result<Vec<Key>, SigningError> {
    let shown = path.display().to_string();
    let read = |source| SigningError::Read { path: shown.clone(), source };
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(read)?;
    warn_if_readable_by_others(&file, &shown);
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(read)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(SigningError::Invalid { path: shown, message: format!("larger than {MAX_FILE_BYTES} bytes") });
    }
    let keys = parse_keys(&text).map_err(|message| SigningError::Invalid { path: shown, message })?;
    Ok(keys.into_iter().map(Key::new).collect())
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &std::fs::File, shown: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = file.metadata() {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %shown, "the signing key file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &std::fs::File, _: &str) {}

impl Signer {
    /// Loads the keys of `path` (see [`parse_keys`]).
    pub fn from_file(path: &Path) -> Result<Signer, SigningError> {
        let keys = read_keys(path)?;
        Ok(Signer { keys: Arc::new(RwLock::new(keys)), file: Some(path.to_path_buf()) })
    }

    /// A signer with one fixed key (`BELFRY_SIGNING_SECRET`, or the deprecated
    /// `--signing-secret`); any length is taken, as before key files existed.
    pub fn from_secret(secret: &str) -> Signer {
        Signer { keys: Arc::new(RwLock::new(vec![Key::new(secret.as_bytes().to_vec())])), file: None }
    }

    /// The ids of the keys, signing key first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).iter().map(|k| k.id.clone()).collect()
    }

    /// Reads the key file again and, when it is acceptable, signs with its keys from now on;
    /// returns the new key ids. A signer without a file keeps its key.
    pub fn reload(&self) -> Result<Vec<String>, SigningError> {
        if let Some(path) = &self.file {
            let keys = read_keys(path)?;
            *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        }
        Ok(self.key_ids())
    }

    /// `t=<unix>,v1=<hex hmac-sha256(key, t + "." + body)>` for every key, signing key first.
    pub fn sign(&self, unix: i64, body: &[u8]) -> String {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut header = format!("t={unix}");
        for key in keys.iter() {
            header.push_str(",v1=");
            header.push_str(&mac_hex(&key.secret, unix, body));
        }
        header
    }

    /// Reloads the key file on every SIGHUP for as long as the process runs, logging the key
    /// ids in use (or why the file was refused). Does nothing for a signer without a file.
    pub fn reload_on_sighup(&self) {
        let Some(path) = self.file.clone() else { return };
        #[cfg(unix)]
        {
            let signer = self.clone();
            let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGHUP handler: signing keys are read at start only");
                    return;
                }
            };
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    match signer.reload() {
                        Ok(ids) => tracing::info!(file = %path.display(), keys = ?ids, "signing keys reloaded"),
                        Err(e) => tracing::error!(error = %e, "signing keys not reloaded; keeping the current ones"),
                    }
                }
            });
        }
        #[cfg(not(unix))]
        let _ = path;
    }
}

/// Hex HMAC-SHA256 of `unix + "." + body` under `key`.
pub(super) fn mac_hex(key: &[u8], unix: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
