//! The current snapshot: one file, `<data-dir>/snapshots/current.snap`.
//!
//! The file is framed: a 4-byte big-endian length, the snapshot's meta as JSON, then the state
//! machine's document ([`super::state_machine`]). It is written as it is built, from the live
//! state straight into the file, and read back as a stream, so that no step holds a whole
//! snapshot in one buffer: with a million jobs the document is some 600 MB.
//!
//! These bytes are also what a leader sends a follower that needs them (openraft reads the file
//! in chunks) and what the follower writes to a file of its own as the chunks arrive, so an
//! installed snapshot is renamed into place rather than written again.
//!
//! A new snapshot is written beside the current one (`building.tmp`, `receiving.tmp`), synced,
//! and renamed over it, then the directory is synced: a crash leaves the old file or the new
//! one. A snapshot never replaces one of a later log position (a build that started before an
//! install finished is dropped), since the log before the later one may be purged already.
//!
//! Builds before this one kept the snapshot in sled (tree `snapshots`: key `current.v2`, the
//! same frame; before that, key `current`, a JSON document whose bytes were an array of
//! numbers). Opening the store moves such a record into the file and removes it from sled.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::{BasicNode, ErrorSubject, ErrorVerb, LogId, SnapshotMeta};
use serde::Deserialize;

use crate::flusher::Flusher;

use super::{io_err, NodeId, StorageError};

/// The framed record of the build before snapshots were files.
const SLED_FRAMED: &[u8] = b"current.v2";
/// The JSON record of the builds before that.
const SLED_JSON: &[u8] = b"current";
/// The current snapshot's file name.
const CURRENT: &str = "current.snap";
/// Where a snapshot being built is written.
const BUILDING: &str = "building.tmp";
/// Where a snapshot being received is written.
const RECEIVING: &str = "receiving.tmp";
/// Where a received document without a frame, or in a file of another's, is copied.
const FRAMING: &str = "framing.tmp";
/// Largest meta a frame may declare: a meta is a log id and a membership, well under this.
const MAX_META_BYTES: u32 = 16 * 1024 * 1024;
/// Buffer of the file writers and readers.
const BUFFER_BYTES: usize = 1 << 20;

/// A snapshot's meta.
pub type Meta = SnapshotMeta<NodeId, BasicNode>;

/// The record of the JSON builds.
#[derive(Deserialize)]
struct SledJson {
    meta: Meta,
    data: Vec<u8>,
}

/// Where the current snapshot is kept. Cheap to clone.
#[derive(Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    /// The log position of the current snapshot, held while one is put in place.
    current: Arc<Mutex<Option<LogId<NodeId>>>>,
    /// The current snapshot's size in bytes.
    size: Arc<AtomicU64>,
}

fn err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_err(subject, verb, std::io::Error::other(e.to_string()))
}

impl SnapshotStore {
    /// The store in `dir` (created if missing), after moving a snapshot that an earlier build
    /// kept in `db` into it. Unfinished files of a build or a receipt cut short are removed.
    pub async fn open(db: &sled::Db, dir: &Path, flusher: &Flusher) -> Result<SnapshotStore, StorageError> {
        let failed = |verb, e: std::io::Error| err(ErrorSubject::Snapshot(None), verb, e);
        fs::create_dir_all(dir).map_err(|e| failed(ErrorVerb::Write, e))?;
        for stale in [BUILDING, RECEIVING, FRAMING] {
            match fs::remove_file(dir.join(stale)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(ErrorVerb::Delete, e)),
                _ => {}
            }
        }
        let store = SnapshotStore {
            dir: dir.to_path_buf(),
            current: Arc::new(Mutex::new(None)),
            size: Arc::new(AtomicU64::new(0)),
        };
        store.move_from_sled(db, flusher).await?;
        if let Some((meta, file)) = store.open_current()? {
            *store.lock() = meta.last_log_id;
            store.size.store(file.metadata().map_or(0, |m| m.len()), Ordering::Relaxed);
        }
        Ok(store)
    }

    /// The current snapshot's size in bytes (0 without one), kept up to date.
    pub fn size(&self) -> Arc<AtomicU64> {
        self.size.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<LogId<NodeId>>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Moves a snapshot record of an earlier build into the file, unless a file is there.
    async fn move_from_sled(&self, db: &sled::Db, flusher: &Flusher) -> Result<(), StorageError> {
        let subject = || ErrorSubject::Snapshot(None);
        let tree = db.open_tree("snapshots").map_err(|e| err(subject(), ErrorVerb::Read, e))?;
        let framed = tree.get(SLED_FRAMED).map_err(|e| err(subject(), ErrorVerb::Read, e))?;
        let json = tree.get(SLED_JSON).map_err(|e| err(subject(), ErrorVerb::Read, e))?;
        if framed.is_none() && json.is_none() {
            return Ok(());
        }
        if !self.path(CURRENT).exists() {
            let tmp = self.path(BUILDING);
            let mut out = BufWriter::new(File::create(&tmp).map_err(|e| err(subject(), ErrorVerb::Write, e))?);
            match (&framed, &json) {
                (Some(record), _) => out.write_all(record),
                (None, Some(record)) => {
                    let old: SledJson =
                        serde_json::from_slice(record).map_err(|e| err(subject(), ErrorVerb::Read, e))?;
                    write_header(&mut out, &old.meta).and_then(|()| out.write_all(&old.data))
                }
                (None, None) => Ok(()),
            }
            .map_err(|e| err(subject(), ErrorVerb::Write, e))?;
            finish(out).map_err(|e| err(subject(), ErrorVerb::Write, e))?;
            self.rename_into_place(&tmp).map_err(|e| err(subject(), ErrorVerb::Write, e))?;
        }
        for key in [SLED_FRAMED, SLED_JSON] {
            tree.remove(key).map_err(|e| err(subject(), ErrorVerb::Delete, e))?;
        }
        flusher.flush().await.map_err(|e| err(subject(), ErrorVerb::Write, e))?;
        Ok(())
    }

    /// The current snapshot's meta and its file, positioned at the document.
    pub fn open_current(&self) -> Result<Option<(Meta, File)>, StorageError> {
        self.open_current_file()
    }

    /// The current snapshot's meta and a buffered reader of its document.
    pub fn read_current(&self) -> Result<Option<(Meta, BufReader<File>)>, StorageError> {
        Ok(self.open_current_file()?.map(|(meta, file)| (meta, BufReader::with_capacity(BUFFER_BYTES, file))))
    }

    fn open_current_file(&self) -> Result<Option<(Meta, File)>, StorageError> {
        let subject = ErrorSubject::Snapshot(None);
        let mut file = match File::open(self.path(CURRENT)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(subject, ErrorVerb::Read, e)),
        };
        let meta = read_header(&mut file).map_err(|e| err(subject, ErrorVerb::Read, e))?;
        Ok(Some((meta, file)))
    }

    /// The current snapshot's meta and its whole file from the first byte, as openraft sends it.
    pub async fn current_for_sending(&self) -> Result<Option<(Meta, tokio::fs::File)>, StorageError> {
        let Some((meta, mut file)) = self.open_current()? else {
            return Ok(None);
        };
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        file.seek(SeekFrom::Start(0)).map_err(|e| err(subject, ErrorVerb::Seek, e))?;
        Ok(Some((meta, tokio::fs::File::from_std(file))))
    }

    /// Writes a snapshot with `meta`, its document written by `body`, and puts it in place.
    /// Returns the file from its first byte. Blocking: run it off the async threads.
    pub fn build(
        &self,
        meta: &Meta,
        body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<File, StorageError> {
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let tmp = self.path(BUILDING);
        let written = (|| {
            let mut out = BufWriter::with_capacity(BUFFER_BYTES, File::create(&tmp)?);
            write_header(&mut out, meta)?;
            body(&mut out)?;
            finish(out)
        })();
        written.map_err(|e| err(subject(), ErrorVerb::Write, e))?;
        self.put_in_place(&tmp, meta).map_err(|e| err(subject(), ErrorVerb::Write, e))
    }

    /// A new, empty file for a snapshot being received (read back at install).
    pub fn begin_receiving(&self) -> Result<File, StorageError> {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path(RECEIVING))
            .map_err(|e| err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))
    }

    /// Checks the received file against `meta` and hands its document to `restore`; once that
    /// succeeds, puts the file in place. A document without a frame (sent by a leader whose
    /// snapshots were not files yet), or one handed over in a file other than the one
    /// [`SnapshotStore::begin_receiving`] made, is first copied into a file of this store's.
    pub fn install_received<T>(
        &self,
        meta: &Meta,
        mut received: File,
        restore: impl FnOnce(BufReader<File>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        received.sync_all().map_err(|e| err(subject(), ErrorVerb::Write, e))?;
        let mut first = [0u8; 1];
        received.seek(SeekFrom::Start(0)).map_err(|e| err(subject(), ErrorVerb::Seek, e))?;
        received.read_exact(&mut first).map_err(|e| err(subject(), ErrorVerb::Read, e))?;
        received.seek(SeekFrom::Start(0)).map_err(|e| err(subject(), ErrorVerb::Seek, e))?;
        let framed = first[0] != b'{';
        let tmp = if framed && self.is_receiving(&received) {
            self.path(RECEIVING)
        } else {
            self.copy_in(meta, &mut received, framed).map_err(|e| err(subject(), ErrorVerb::Write, e))?
        };
        let mut file = File::open(&tmp).map_err(|e| err(subject(), ErrorVerb::Read, e))?;
        let header = read_header(&mut file).map_err(|e| err(subject(), ErrorVerb::Read, e))?;
        if header.last_log_id != meta.last_log_id {
            let why = format!("the received file is of {:?}, not {:?}", header.last_log_id, meta.last_log_id);
            return Err(err(subject(), ErrorVerb::Read, why));
        }
        let restored = restore(BufReader::with_capacity(BUFFER_BYTES, file))?;
        self.put_in_place(&tmp, meta).map_err(|e| err(subject(), ErrorVerb::Write, e))?;
        Ok(restored)
    }

    /// Whether `file` is the one [`SnapshotStore::begin_receiving`] made.
    fn is_receiving(&self, file: &File) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(self.path(RECEIVING))) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }

    /// Copies `source` into a file of its own, with `meta`'s frame first unless it is `framed`.
    fn copy_in(&self, meta: &Meta, source: &mut File, framed: bool) -> std::io::Result<PathBuf> {
        let tmp = self.path(FRAMING);
        let mut out = BufWriter::with_capacity(BUFFER_BYTES, File::create(&tmp)?);
        if !framed {
            write_header(&mut out, meta)?;
        }
        std::io::copy(source, &mut out)?;
        finish(out)?;
        Ok(tmp)
    }

    /// Renames `tmp` over the current snapshot unless that one is of a later log position
    /// (then `tmp` is removed). Returns the file `tmp` held, from its first byte.
    fn put_in_place(&self, tmp: &Path, meta: &Meta) -> std::io::Result<File> {
        let file = File::open(tmp)?;
        let mut current = self.lock();
        if *current > meta.last_log_id {
            tracing::info!(kept = ?*current, dropped = ?meta.last_log_id, "a later snapshot is in place; dropping this one");
            fs::remove_file(tmp)?;
            return Ok(file);
        }
        self.rename_into_place(tmp)?;
        *current = meta.last_log_id;
        self.size.store(file.metadata()?.len(), Ordering::Relaxed);
        Ok(file)
    }

    fn rename_into_place(&self, tmp: &Path) -> std::io::Result<()> {
        fs::rename(tmp, self.path(CURRENT))?;
        File::open(&self.dir)?.sync_all()
    }
}

/// Writes the frame's length and meta.
fn write_header(out: &mut impl Write, meta: &Meta) -> std::io::Result<()> {
    let meta = serde_json::to_vec(meta)?;
    let len = u32::try_from(meta.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(&meta)
}

/// Reads the frame's length and meta, leaving `input` at the document.
fn read_header(input: &mut impl Read) -> Result<Meta, String> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(|e| format!("snapshot frame cut short: {e}"))?;
    let len = u32::from_be_bytes(len);
    if len > MAX_META_BYTES {
        return Err(format!("snapshot frame declares a meta of {len} bytes"));
    }
    let mut meta = vec![0u8; len as usize];
    input.read_exact(&mut meta).map_err(|e| format!("snapshot meta cut short: {e}"))?;
    serde_json::from_slice(&meta).map_err(|e| format!("bad snapshot meta: {e}"))
}

/// Flushes and syncs a written file.
fn finish(out: BufWriter<File>) -> std::io::Result<()> {
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

#[cfg(test)]
#[path = "snapshot_store_tests.rs"]
mod tests;
