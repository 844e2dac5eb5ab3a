//! The distributed half of the fire protocol as pure decisions (docs/DESIGN.md, "The fire
//! protocol": the steps dispatch, admit, hold, complete and settle).
//!
//! Time, membership, health, replies and ledger answers are parameters; nothing here sends,
//! waits or reads a clock. The node crate's dispatcher and worker gather the inputs, call these
//! functions and carry out what they return, so every decision the exactly-once argument rests
//! on is tested here (unit tests below, golden scripts in `tests/protocol-scripts`).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::fire::{Attempt, Fire, FireStatus, NodeId};

/// Why a worker refused a `Deliver` without sending anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The request's term is not the worker's current term: a deposed leader sent it (a
    /// zombie), or one the worker has not heard of.
    StaleTerm,
    /// The sender is not the leader of the worker's current term.
    NotLeader,
    /// The worker's replica does not hold the attempt as dispatched to it in that term (or has
    /// not applied the entry the request names in time).
    NotDispatched,
    /// The lease ran out before the send could start.
    LeaseExpired,
    /// The worker is sending this attempt right now.
    InProgress,
    /// The worker is shutting down and starts no new sends.
    ShuttingDown,
    /// The worker's ledger could not be read or written, so nothing was sent.
    LedgerError,
}

impl Refusal {
    /// Every refusal, for tables and tests.
    pub const ALL: [Refusal; 7] = [
        Refusal::StaleTerm,
        Refusal::NotLeader,
        Refusal::NotDispatched,
        Refusal::LeaseExpired,
        Refusal::InProgress,
        Refusal::ShuttingDown,
        Refusal::LedgerError,
    ];

    /// The refusal's name, as logged and shown in golden scripts.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::StaleTerm => "stale_term",
            Refusal::NotLeader => "not_leader",
            Refusal::NotDispatched => "not_dispatched",
            Refusal::LeaseExpired => "lease_expired",
            Refusal::InProgress => "in_progress",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::LedgerError => "ledger_error",
        }
    }

    /// The refusal named `name`.
    pub fn from_name(name: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.name() == name)
    }
}

// ---- placement (dispatch) ----

/// The worker for a new dispatch: the `turn`-th of the members other than `me` that are
/// `healthy` (answered raft recently and did not fail an RPC lately), in order; `me` only when
/// none is. A paused or dead follower would hold a `Deliver` until its lease ran out.
pub fn place(me: NodeId, members: &[NodeId], healthy: impl Fn(NodeId) -> bool, turn: usize) -> NodeId {
    let candidates: Vec<NodeId> = members.iter().copied().filter(|id| *id != me && healthy(*id)).collect();
    if candidates.is_empty() {
        me
    } else {
        candidates[turn % candidates.len()]
    }
}

// ---- backpressure (claim) ----

/// What the leader knows of its sends when it claims (docs/DESIGN.md, "Backpressure").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Dispatches of this leader awaiting their reply: held for their instant, queued on a
    /// worker, or being sent.
    pub outstanding: usize,
    /// Replies per second the workers have been giving lately: what they can finish.
    pub replies_per_sec: f64,
    /// The lease a dispatch gets, in seconds: a send still queued when it runs out is refused
    /// unsent and dispatched again.
    pub lease_secs: f64,
    /// Outstanding dispatches allowed whatever the rate (enough to fill every worker's send
    /// slots twice, so an idle cluster takes a burst at once).
    pub floor: usize,
    /// Outstanding dispatches never exceeded.
    pub cap: usize,
}

/// How many fires the leader may claim now. Outstanding dispatches are kept to what the
/// workers finish in half a lease at the rate they have been replying (never below `floor`,
/// never above `cap`), so that a send queued behind them starts well inside its lease:
/// overload leaves fires unclaimed, and late, instead of claimed, expired and dispatched
/// again.
pub fn claim_budget(b: &Backlog) -> usize {
    let rate = if b.replies_per_sec.is_finite() { b.replies_per_sec.max(0.0) } else { 0.0 };
    let lease = if b.lease_secs.is_finite() { b.lease_secs.max(0.0) } else { 0.0 };
    // A float-to-int cast saturates: no rate or lease can overflow it.
    let drainable = (rate * lease / 2.0) as usize;
    drainable.max(b.floor).min(b.cap).saturating_sub(b.outstanding)
}

// ---- the leader's reaction to a Deliver reply (dispatch → complete) ----

/// What came back from a `Deliver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverResult {
    /// The attempt finished (now, or earlier: the worker's recorded outcome).
    Outcome(Attempt),
    /// Refused before any send.
    Refused(Refusal),
    /// The connection could not be made: the request certainly never left.
    NotSent,
    /// The RPC failed after it may have reached the worker.
    Unknown,
}

/// What the leader does with a [`DeliverResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyAction {
    /// Commit the outcome (`Command::Complete`).
    Commit(Attempt),
    /// Nothing was sent: pass the worker over for a while and dispatch the same attempt to
    /// another worker at once.
    Redispatch,
    /// The send may still happen or has happened: leave the fire to the settle loop, which asks
    /// the worker's ledger once the lease has run out. `mark_unhealthy` passes the worker over
    /// for new dispatches meanwhile.
    Settle {
        /// Whether the worker is passed over for a while.
        mark_unhealthy: bool,
    },
}

/// The leader's reaction to a `Deliver` reply; `current`: whether the dispatch it answers is
/// still the fire's current one in the leader's state (same attempt, worker and lease).
///
/// An outcome is committed whatever dispatch it answers: the send happened. Anything else about
/// a dispatch that has been replaced says nothing about the current one, which may be in
/// flight on another worker: it is left to the settle loop, never redispatched (that would
/// hand one attempt to two workers at once). For the current dispatch, a stale-term refusal
/// means this leader was deposed (its successor settles the fire), and an in-progress one that
/// the worker is sending it: neither may be sent elsewhere. Every other refusal comes before
/// any send, so the attempt can go to another worker at once.
pub fn on_reply(result: DeliverResult, current: bool) -> ReplyAction {
    match result {
        DeliverResult::Outcome(attempt) => ReplyAction::Commit(attempt),
        DeliverResult::Refused(_) | DeliverResult::NotSent if !current => ReplyAction::Settle { mark_unhealthy: false },
        DeliverResult::Refused(Refusal::StaleTerm | Refusal::InProgress) => {
            ReplyAction::Settle { mark_unhealthy: false }
        }
        DeliverResult::Refused(_) | DeliverResult::NotSent => ReplyAction::Redispatch,
        DeliverResult::Unknown => ReplyAction::Settle { mark_unhealthy: true },
    }
}

// ---- settle ----

/// What a worker's ledger said of an attempt (`QueryDelivery`), or that it could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerAnswer {
    /// Finished, with its outcome (`None`: a reply that named none).
    Finished(Option<Attempt>),
    /// Recorded as started and not finished; `in_flight`: the worker process is sending it.
    Started {
        /// Whether the worker is still sending it.
        in_flight: bool,
    },
    /// No record: never started there; `in_flight` when it is being started right now.
    Unknown {
        /// Whether the worker has just claimed it.
        in_flight: bool,
    },
    /// The worker did not answer.
    Unreachable,
}

/// A dispatched fire no task of this leader is sending, as the settle loop sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    /// The dispatch's lease: no send starts after it.
    pub lease_until: Option<DateTime<Utc>>,
    /// The job's attempt timeout: no send lasts longer.
    pub attempt_timeout: Duration,
    /// The largest clock difference assumed between nodes.
    pub max_clock_skew: Duration,
}

impl Unsettled {
    /// Whether, by this leader's clock `now`, no send can still start: the lease and the skew
    /// margin have passed. An end past chrono's range never passes (stored leases are clamped
    /// to year 9999, so it does not happen).
    pub fn lease_passed(&self, now: DateTime<Utc>) -> bool {
        match self.lease_until {
            None => true,
            Some(lease) => lease.checked_add_signed(self.max_clock_skew).is_some_and(|end| end < now),
        }
    }

    /// Whether, by `now`, no send can still be running either: lease, attempt timeout and skew.
    pub fn all_sends_over(&self, now: DateTime<Utc>) -> bool {
        let lease = self.lease_until.unwrap_or_default();
        let end =
            lease.checked_add_signed(self.attempt_timeout).and_then(|t| t.checked_add_signed(self.max_clock_skew));
        end.is_some_and(|end| now > end)
    }
}

/// The settle decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleAction {
    /// The attempt finished: commit its outcome, send nothing.
    Commit(Attempt),
    /// Dispatch the same attempt again through the same worker, at once: it never started it,
    /// and its ledger admits one send per attempt, so this cannot send twice.
    ResendSameWorker,
    /// Dispatch the same attempt again, to the next healthy worker: no send can still start
    /// (or, for a worker that died mid-send, the one duplicate the protocol allows).
    ResendElsewhere {
        /// Whether the worker is passed over for a while (it did not answer).
        mark_unhealthy: bool,
    },
    /// Nothing yet: a send may be running or may still start. Asked again next round.
    Wait,
}

/// Decides a dispatched fire whose sender is gone (a new leader's inheritance, a lost RPC),
/// from the worker's ledger `answer` and this leader's clock `now`.
///
/// Before the lease has run out the only safe move is to the same worker (its ledger claims an
/// attempt before sending), and only when it never started the attempt. After the lease plus
/// the skew margin no send can start, so an attempt never started is sent elsewhere; one that
/// started and was interrupted (the worker restarted mid-send) is sent again too, under the
/// same key: the one duplicate the protocol allows. A worker that does not answer is sent
/// around only once lease, timeout and skew have all passed.
pub fn settle(fire: &Unsettled, answer: LedgerAnswer, now: DateTime<Utc>) -> SettleAction {
    let lease_passed = fire.lease_passed(now);
    match answer {
        LedgerAnswer::Finished(Some(attempt)) => SettleAction::Commit(attempt),
        LedgerAnswer::Finished(None) => SettleAction::Wait,
        LedgerAnswer::Started { in_flight: true } => SettleAction::Wait,
        LedgerAnswer::Unknown { in_flight: false } if !lease_passed => SettleAction::ResendSameWorker,
        LedgerAnswer::Started { .. } | LedgerAnswer::Unknown { .. } if !lease_passed => SettleAction::Wait,
        LedgerAnswer::Started { .. } | LedgerAnswer::Unknown { .. } => {
            SettleAction::ResendElsewhere { mark_unhealthy: false }
        }
        LedgerAnswer::Unreachable if fire.all_sends_over(now) => SettleAction::ResendElsewhere { mark_unhealthy: true },
        LedgerAnswer::Unreachable => SettleAction::Wait,
    }
}

// ---- admit (worker) ----

/// The term fence: a `Deliver` must carry exactly the worker's current term. Checked before
/// the worker waits for its replica (a lower term is refused at once) and again after.
pub fn fence(request_term: u64, current_term: u64) -> Result<(), (Refusal, String)> {
    if request_term == current_term {
        Ok(())
    } else if request_term < current_term {
        Err((Refusal::StaleTerm, format!("request term {request_term} < current term {current_term}")))
    } else {
        Err((Refusal::StaleTerm, format!("request term {request_term} > current term {current_term}")))
    }
}

/// What the worker's ledger holds for the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerRecord {
    /// Nothing.
    None,
    /// Started, not finished.
    Started,
    /// Finished with this outcome.
    Finished(Attempt),
    /// The ledger could not be read.
    Unreadable,
}

/// Everything the worker knows when it decides on a `Deliver` (after its replica applied the
/// entry the request names).
#[derive(Debug, Clone)]
pub struct AdmitView<'a> {
    /// This worker.
    pub me: NodeId,
    /// The request's term and attempt number.
    pub request_term: u64,
    /// The attempt the request names.
    pub request_attempt: u32,
    /// The worker's current term.
    pub current_term: u64,
    /// Whether the sender's identity is the current term's leader.
    pub sender_is_leader: bool,
    /// The worker's ledger record of the attempt.
    pub ledger: LedgerRecord,
    /// Whether the worker is shutting down.
    pub draining: bool,
    /// The fire in the worker's replica.
    pub fire: Option<&'a Fire>,
}

/// The worker's decision on a `Deliver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Send the attempt, not before `send_at` (a fire claimed ahead of its instant; `None`:
    /// at once) and no later than `lease_until` (the replica's lease).
    Send {
        /// No send starts after it.
        lease_until: DateTime<Utc>,
        /// The worker holds the send until this instant.
        send_at: Option<DateTime<Utc>>,
    },
    /// Already finished here: answer the recorded outcome, send nothing.
    Replay(Attempt),
    /// Refused, with a reason in words.
    Refuse(Refusal, String),
}

/// Decides a `Deliver` (docs/DESIGN.md, the step admit). The order matters: identity and term
/// first (a zombie or a stranger learns nothing, not even a recorded outcome), then the ledger
/// (a repeat of a finished attempt replays its outcome even after the state moved on), then
/// the replica's dispatch.
pub fn admit(view: &AdmitView<'_>) -> Admission {
    if let Err((refusal, why)) = fence(view.request_term, view.current_term) {
        return Admission::Refuse(refusal, why);
    }
    if !view.sender_is_leader {
        let why = format!("the sender is not the leader of term {}", view.current_term);
        return Admission::Refuse(Refusal::NotLeader, why);
    }
    match &view.ledger {
        LedgerRecord::Finished(attempt) => return Admission::Replay(attempt.clone()),
        LedgerRecord::Unreadable => {
            return Admission::Refuse(Refusal::LedgerError, "the ledger record is unreadable".into())
        }
        LedgerRecord::None | LedgerRecord::Started => {}
    }
    if view.draining {
        return Admission::Refuse(Refusal::ShuttingDown, "shutting down".into());
    }
    let Some(fire) = view.fire else {
        return Admission::Refuse(Refusal::NotDispatched, "no such fire".into());
    };
    if fire.status != FireStatus::Dispatched || fire.attempt != view.request_attempt {
        let why = format!("the fire is {:?} at attempt {}", fire.status, fire.attempt);
        return Admission::Refuse(Refusal::NotDispatched, why);
    }
    if fire.worker != Some(view.me) || fire.term != view.request_term {
        let why = format!("attempt {} is dispatched to {:?} in term {}", fire.attempt, fire.worker, fire.term);
        return Admission::Refuse(Refusal::NotDispatched, why);
    }
    match fire.lease_until {
        Some(lease_until) => Admission::Send { lease_until, send_at: fire.send_at },
        None => Admission::Refuse(Refusal::NotDispatched, "the dispatch has no lease".into()),
    }
}

/// Whether a send may start at `now` under `lease_until`, by the worker's clock (through
/// [`release`]: at admission, and again when the send is about to start).
pub fn may_start(now: DateTime<Utc>, lease_until: DateTime<Utc>) -> bool {
    now <= lease_until
}

// ---- the held send (worker) ----

/// What a worker does, at `now` by its clock, with an admitted send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Not yet: hold it until this instant. It is recorded in the ledger as started and
    /// counted in flight, so a leader asking meanwhile waits for it.
    Hold(DateTime<Utc>),
    /// Send it now.
    Start,
    /// The lease ran out while it was held or queued: refuse it, nothing was sent.
    Expired,
}

/// The worker's decision on an admitted send (`Admission::Send`), each time it looks at it: at
/// admission, at its instant, and when a slot for a send frees up. A send held for its
/// instant starts then; one queued past its lease never starts (the leader sends the attempt
/// elsewhere once it hears so, or once the lease has passed).
pub fn release(now: DateTime<Utc>, send_at: Option<DateTime<Utc>>, lease_until: DateTime<Utc>) -> Release {
    match send_at {
        Some(at) if now < at => Release::Hold(at),
        _ if may_start(now, lease_until) => Release::Start,
        _ => Release::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_send_starts_at_its_instant_and_never_after_its_lease() {
        let t = |ms: i64| DateTime::<Utc>::from_timestamp_millis(1_767_225_600_000 + ms).expect("an instant");
        let (at, lease) = (Some(t(1000)), t(6000));
        assert_eq!(release(t(0), at, lease), Release::Hold(t(1000)));
        assert_eq!(release(t(999), at, lease), Release::Hold(t(1000)));
        assert_eq!(release(t(1000), at, lease), Release::Start);
        assert_eq!(release(t(6000), at, lease), Release::Start);
        assert_eq!(release(t(6001), at, lease), Release::Expired);
        assert_eq!(release(t(0), None, lease), Release::Start, "nothing to wait for");
        assert_eq!(release(t(6001), None, lease), Release::Expired);
    }

    #[test]
    fn claims_keep_outstanding_sends_to_what_the_workers_finish_in_half_a_lease() {
        let b = |outstanding, replies_per_sec| Backlog {
            outstanding,
            replies_per_sec,
            lease_secs: 5.0,
            floor: 2048,
            cap: 100_000,
        };
        // Idle or slow: the floor, so a burst on a quiet cluster is claimed at once.
        assert_eq!(claim_budget(&b(0, 0.0)), 2048);
        assert_eq!(claim_budget(&b(2000, 100.0)), 48);
        // 2778 replies a second drain 6945 in 2.5 s: no more than that outstanding.
        assert_eq!(claim_budget(&b(0, 2778.0)), 6945);
        assert_eq!(claim_budget(&b(6000, 2778.0)), 945);
        assert_eq!(claim_budget(&b(7000, 2778.0)), 0, "more outstanding than drains: claim nothing");
        // Never past the cap, and nothing strange in makes anything strange out.
        assert_eq!(claim_budget(&b(0, 1e12)), 100_000);
        assert_eq!(claim_budget(&b(0, f64::INFINITY)), 2048);
        assert_eq!(claim_budget(&b(0, f64::NAN)), 2048);
        assert_eq!(claim_budget(&b(0, -5.0)), 2048);
        assert_eq!(claim_budget(&Backlog { lease_secs: f64::MAX, ..b(0, 1e300) }), 100_000);
    }

    #[test]
    fn every_refusal_has_a_name_that_reads_back() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::from_name(r.name()), Some(r));
        }
        assert_eq!(Refusal::from_name("nonsense"), None);
    }

    #[test]
    fn placement_goes_round_the_healthy_followers_and_falls_back_to_the_leader() {
        let members = [1, 2, 3];
        let picks: Vec<NodeId> = (0..4).map(|turn| place(1, &members, |_| true, turn)).collect();
        assert_eq!(picks, vec![2, 3, 2, 3]);
        assert_eq!(place(1, &members, |id| id == 3, 0), 3);
        assert_eq!(place(1, &members, |_| false, 7), 1);
        assert_eq!(place(1, &[1], |_| true, 0), 1);
    }

    #[test]
    fn lease_arithmetic_at_the_ends_of_time_does_not_overflow() {
        let last: DateTime<Utc> = "9999-12-31T23:59:59Z".parse().unwrap();
        let fire = |lease| Unsettled {
            lease_until: Some(lease),
            attempt_timeout: Duration::hours(1),
            max_clock_skew: Duration::seconds(1),
        };
        assert!(!fire(last).lease_passed(last));
        assert!(fire(last).lease_passed(last + Duration::seconds(2)));
        assert!(!fire(last).all_sends_over(last + Duration::seconds(2)));
        assert!(fire(last).all_sends_over(last + Duration::hours(2)));
        // Past chrono's range the end is never reached, and nothing panics.
        let max = DateTime::<Utc>::MAX_UTC;
        assert!(!fire(max).lease_passed(max));
        assert!(!fire(max).all_sends_over(max));
    }
}
