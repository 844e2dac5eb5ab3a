use std::io::Read;

use openraft::{CommittedLeaderId, StoredMembership};

use super::*;

fn meta(index: u64) -> Meta {
    Meta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), index)),
        last_membership: StoredMembership::default(),
        snapshot_id: format!("3-1-{index}"),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    db: sled::Db,
    flusher: Flusher,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new().temporary(true).flush_every_ms(None).open().expect("temporary sled");
    let flusher = Flusher::new(db.clone());
    Fixture { path: dir.path().join("snapshots"), _dir: dir, db, flusher }
}

impl Fixture {
    async fn open(&self) -> SnapshotStore {
        SnapshotStore::open(&self.db, &self.path, &self.flusher).await.expect("open")
    }
}

fn document(store: &SnapshotStore) -> Option<(Meta, Vec<u8>)> {
    let (meta, mut file) = store.open_current().expect("read")?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).expect("read");
    Some((meta, bytes))
}

fn build(store: &SnapshotStore, index: u64, doc: &[u8]) -> File {
    store.build(&meta(index), |out| out.write_all(doc)).expect("build")
}

#[tokio::test]
async fn a_built_snapshot_reads_back_as_it_was_and_replaces_the_one_before() {
    let fx = fixture();
    let store = fx.open().await;
    assert!(document(&store).is_none());
    build(&store, 10, b"first");
    let doc: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    build(&store, 20, &doc);
    assert_eq!(document(&store), Some((meta(20), doc.clone())));
    // Reopened, as after a restart.
    assert_eq!(document(&fx.open().await), Some((meta(20), doc)));
    let names: Vec<_> = fs::read_dir(&fx.path).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from(CURRENT)], "nothing but the current snapshot is left");
}

#[tokio::test]
async fn a_snapshot_never_replaces_one_of_a_later_log_position() {
    let fx = fixture();
    let store = fx.open().await;
    build(&store, 50, b"later");
    let mut returned = build(&store, 40, b"earlier");
    assert_eq!(document(&store), Some((meta(50), b"later".to_vec())));
    // The build still hands back its own file.
    assert_eq!(read_header(&mut returned).unwrap(), meta(40));
}

#[tokio::test]
async fn the_file_sent_is_the_whole_frame_and_installs_as_received() {
    let fx = fixture();
    let leader = fx.open().await;
    build(&leader, 30, br#"{"state":1}"#);
    let (sent_meta, file) = leader.current_for_sending().await.expect("read").expect("a snapshot");
    let mut sent = Vec::new();
    file.into_std().await.read_to_end(&mut sent).unwrap();

    let follower_fx = fixture();
    let follower = follower_fx.open().await;
    let mut received = follower.begin_receiving().unwrap();
    received.write_all(&sent).unwrap();
    let restored = follower
        .install_received(&sent_meta, received, |mut doc| {
            let mut text = String::new();
            doc.read_to_string(&mut text).unwrap();
            Ok(text)
        })
        .expect("install");
    assert_eq!(restored, r#"{"state":1}"#);
    assert_eq!(document(&follower), Some((meta(30), br#"{"state":1}"#.to_vec())));
}

#[tokio::test]
async fn a_document_without_a_frame_is_framed_on_install() {
    let fx = fixture();
    let store = fx.open().await;
    let mut received = store.begin_receiving().unwrap();
    received.write_all(br#"{"old":true}"#).unwrap();
    let restored = store
        .install_received(&meta(7), received, |mut doc| {
            let mut bytes = Vec::new();
            doc.read_to_end(&mut bytes).unwrap();
            Ok(bytes)
        })
        .expect("install");
    assert_eq!(restored, br#"{"old":true}"#);
    assert_eq!(document(&store), Some((meta(7), br#"{"old":true}"#.to_vec())));
}

#[tokio::test]
async fn a_received_file_of_another_snapshot_or_one_that_fails_to_restore_changes_nothing() {
    let fx = fixture();
    let store = fx.open().await;
    build(&store, 5, b"kept");
    let other = fixture();
    let source = other.open().await;
    let mut sent = Vec::new();
    build(&source, 9, b"nine").read_to_end(&mut sent).unwrap();

    let mut received = store.begin_receiving().unwrap();
    received.write_all(&sent).unwrap();
    let mismatch = store.install_received(&meta(8), received, |_| Ok(()));
    assert!(mismatch.is_err(), "meta 8 against a file of 9");

    let mut received = store.begin_receiving().unwrap();
    received.write_all(&sent).unwrap();
    let failed: Result<(), _> = store.install_received(&meta(9), received, |_| {
        Err(io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, std::io::Error::other("bad document")))
    });
    assert!(failed.is_err());
    assert_eq!(document(&store), Some((meta(5), b"kept".to_vec())));
}

#[tokio::test]
async fn a_snapshot_an_earlier_build_kept_in_sled_moves_into_the_file() {
    for framed in [true, false] {
        let fx = fixture();
        let tree = fx.db.open_tree("snapshots").unwrap();
        if framed {
            let mut record = Vec::new();
            write_header(&mut record, &meta(12)).unwrap();
            record.extend_from_slice(b"framed state");
            tree.insert(SLED_FRAMED, record).unwrap();
        } else {
            let old = serde_json::json!({ "meta": meta(12), "data": b"framed state".to_vec() });
            tree.insert(SLED_JSON, serde_json::to_vec(&old).unwrap()).unwrap();
        }
        let store = fx.open().await;
        assert_eq!(document(&store), Some((meta(12), b"framed state".to_vec())), "framed: {framed}");
        assert!(tree.get(SLED_FRAMED).unwrap().is_none() && tree.get(SLED_JSON).unwrap().is_none());
    }
}

#[test]
fn a_cut_or_oversized_frame_is_an_error_not_a_panic() {
    let mut record = Vec::new();
    write_header(&mut record, &meta(1)).unwrap();
    for end in 0..record.len() {
        assert!(read_header(&mut &record[..end]).is_err(), "cut at {end}");
    }
    assert_eq!(read_header(&mut &record[..]).unwrap(), meta(1));
    let huge = u32::MAX.to_be_bytes();
    assert!(read_header(&mut &huge[..]).is_err());
}
