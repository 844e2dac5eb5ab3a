//! Followers that know they lack committed entries do not call elections.
//!
//! A follower far behind (back after a long outage, or waiting while the leader reads the
//! snapshot it needs) can go an election timeout without hearing from the leader. Its
//! election cannot succeed: the entry at the highest commit index it has been sent is on a
//! majority, every node holding it has a log at least as up to date, and refuses the vote
//! (Raft §5.4.1). But its higher term deposes the healthy leader at the next AppendEntries
//! reply, the next leader meets the same follower, and the cluster churns for as long as the
//! follower stays behind. openraft 0.9 has no pre-vote, so belfry switches the timeout-based
//! elections of such a follower off until its log reaches that commit index, and on again
//! after. It still votes, and a node that could win an election never has them off.
//!
//! Elections are back on at the latest [`FAILSAFE`] after the last message from a leader,
//! whatever this node believes about its log, so a mistaken belief cannot keep it quiet.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Raft;

/// How long after the last message from a leader a follower calls elections again even
/// while it believes it lacks committed entries.
pub const FAILSAFE: Duration = Duration::from_secs(30);

/// Whether this node's elections are switched off, and why.
#[derive(Debug)]
pub struct CampaignGate {
    // A std Mutex: held only to read and update, never across an `.await`.
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    commit_seen: u64,
    off: bool,
    contact: Instant,
}

impl Default for CampaignGate {
    fn default() -> CampaignGate {
        CampaignGate { state: Mutex::new(State { commit_seen: 0, off: false, contact: Instant::now() }) }
    }
}

/// Whether a node whose log ends at `last` (its snapshot included), told that `commit_seen`
/// is committed and last contacted by a leader `since_contact` ago, keeps its elections off.
pub fn stays_quiet(last: u64, commit_seen: u64, since_contact: Duration) -> bool {
    last < commit_seen && since_contact < FAILSAFE
}

impl CampaignGate {
    /// Records a message from a leader: `committed` is the commit index it carried, `holds`
    /// an index this node's reply proves it has. Then decides.
    pub fn observe(&self, raft: &Raft, committed: Option<u64>, holds: Option<u64>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.commit_seen = state.commit_seen.max(committed.unwrap_or(0));
        state.contact = Instant::now();
        Self::decide(&mut state, raft, holds.unwrap_or(0));
    }

    /// Decides again from this node's metrics (its log may have grown since a message).
    fn recheck(&self, raft: &Raft) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self::decide(&mut state, raft, 0);
    }

    fn decide(state: &mut State, raft: &Raft, holds: u64) {
        let last = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            m.last_log_index.unwrap_or(0).max(m.snapshot.map(|s| s.index).unwrap_or(0)).max(holds)
        };
        let quiet = stays_quiet(last, state.commit_seen, state.contact.elapsed());
        if quiet == state.off {
            return;
        }
        state.off = quiet;
        raft.runtime_config().elect(!quiet);
        let commit_seen = state.commit_seen;
        if quiet {
            tracing::info!(last, commit_seen, "elections off: this node lacks committed entries");
        } else {
            tracing::info!(last, commit_seen, "elections on");
        }
    }

    /// Re-decides whenever this node's raft metrics change, and at least every second (for
    /// [`FAILSAFE`]), until raft stops.
    pub fn watch(self: &Arc<Self>, raft: Raft) {
        let gate = self.clone();
        tokio::spawn(async move {
            let mut metrics = raft.metrics();
            loop {
                if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(1), metrics.changed()).await {
                    return;
                }
                gate.recheck(&raft);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_log_short_of_the_commit_index_keeps_elections_off_and_not_forever() {
        let recent = Duration::from_millis(100);
        assert!(stays_quiet(3, 260, recent));
        assert!(!stays_quiet(260, 260, recent));
        assert!(!stays_quiet(300, 260, recent));
        assert!(!stays_quiet(0, 0, recent));
        assert!(!stays_quiet(3, 260, FAILSAFE), "a leaderless stretch ends the quiet");
    }
}
