//! The wire form of a snapshot chunk: its header as JSON, its bytes as they are.
//!
//! Every other raft payload is JSON; a chunk's bytes would be a JSON array of numbers, up to
//! four bytes on the wire per byte of snapshot and the slowest part of streaming a snapshot
//! of tens of MiB. A frame is `MAGIC`, the header's length (u32, big-endian), the header
//! (vote, snapshot meta, offset, done) as JSON, then the bytes. It cannot be mistaken for
//! JSON, so a receiver still takes a JSON chunk from a node that predates the frame.

use openraft::raft::InstallSnapshotRequest;
use openraft::{BasicNode, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};

/// First byte of a framed chunk; never the first byte of a JSON document.
pub const MAGIC: u8 = 0xB5;

#[derive(Serialize)]
struct HeaderRef<'a> {
    vote: &'a Vote<NodeId>,
    meta: &'a SnapshotMeta<NodeId, BasicNode>,
    offset: u64,
    done: bool,
}

#[derive(Deserialize)]
struct Header {
    vote: Vote<NodeId>,
    meta: SnapshotMeta<NodeId, BasicNode>,
    offset: u64,
    done: bool,
}

/// Frames `req`.
pub fn encode(req: &InstallSnapshotRequest<TypeConfig>) -> Result<Vec<u8>, serde_json::Error> {
    let header =
        serde_json::to_vec(&HeaderRef { vote: &req.vote, meta: &req.meta, offset: req.offset, done: req.done })?;
    let len = u32::try_from(header.len()).map_err(serde::ser::Error::custom)?;
    let mut frame = Vec::with_capacity(5 + header.len() + req.data.len());
    frame.push(MAGIC);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&req.data);
    Ok(frame)
}

/// Reads a chunk: a frame, or the JSON an older node sends.
pub fn decode(bytes: &[u8]) -> Result<InstallSnapshotRequest<TypeConfig>, String> {
    let Some((&MAGIC, rest)) = bytes.split_first() else {
        return serde_json::from_slice(bytes).map_err(|e| format!("bad snapshot chunk: {e}"));
    };
    let (len, rest) = rest.split_first_chunk::<4>().ok_or("snapshot chunk frame cut short")?;
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|e| e.to_string())?;
    let header = rest.get(..len).ok_or("snapshot chunk header cut short")?;
    let data = rest.get(len..).unwrap_or_default().to_vec();
    let header: Header = serde_json::from_slice(header).map_err(|e| format!("bad snapshot chunk header: {e}"))?;
    Ok(InstallSnapshotRequest { vote: header.vote, meta: header.meta, offset: header.offset, data, done: header.done })
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId};

    use super::*;

    fn chunk() -> InstallSnapshotRequest<TypeConfig> {
        InstallSnapshotRequest {
            vote: Vote::new_committed(3, 2),
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 2), 250)),
                last_membership: Default::default(),
                snapshot_id: "3-2-250".into(),
            },
            offset: 1 << 20,
            data: (0..=255u8).cycle().take(4096).collect(),
            done: true,
        }
    }

    fn same(a: &InstallSnapshotRequest<TypeConfig>, b: &InstallSnapshotRequest<TypeConfig>) -> bool {
        a.vote == b.vote && a.meta == b.meta && a.offset == b.offset && a.data == b.data && a.done == b.done
    }

    #[test]
    fn a_frame_carries_the_bytes_as_they_are() {
        let frame = encode(&chunk()).expect("encode");
        assert!(frame.len() < 4096 + 512, "{} bytes on the wire for 4096 of snapshot", frame.len());
        assert!(same(&decode(&frame).expect("decode"), &chunk()));
    }

    #[test]
    fn a_json_chunk_from_an_older_node_still_reads() {
        let json = serde_json::to_vec(&chunk()).expect("json");
        assert!(same(&decode(&json).expect("decode"), &chunk()));
    }

    #[test]
    fn a_cut_frame_is_an_error_not_a_panic() {
        let frame = encode(&chunk()).expect("encode");
        for cut in [0, 1, 3, 5, 20] {
            assert!(decode(&frame[..cut]).is_err(), "cut at {cut}");
        }
        let mut lying = frame.clone();
        lying[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&lying).is_err());
    }
}
