//! A deterministic simulation of the fire protocol: three nodes running the real state machine
//! (`State::apply`, `State::due_ahead`) and the real protocol decisions (`protocol::place`,
//! `admit`, `release`, `on_reply`, `settle`) over a simulated network and clock, driven by a
//! seed.
//!
//! What is real and what is modelled:
//! - real: every replica's state (each node applies the committed log itself), the ticker's
//!   claims from `State::due_ahead` (fires claimed up to a second ahead, their sends held by
//!   the workers until the instant), the worker's admission, the leader's reaction to replies, the
//!   settle table, leases checked by each node's own clock;
//! - modelled: raft. The log holds committed entries only; a proposal commits when its node
//!   is the current term's leader and reaches a majority, else it fails (a zombie's proposals
//!   never commit). Followers apply the log after a random delay and learn the term and leader
//!   from it. A leader that cannot reach a majority for an election timeout is replaced by a
//!   reachable node of a higher term, which applies the whole log first (raft's leader
//!   completeness and belfry's read point at the start of a term).
//! - faults: message loss, delay (reordering), duplication; node pauses; crashes at any step of
//!   a send (before the ledger write, after it, after the request left, after the outcome),
//!   restarts that replay the log; a node cut off from the others; clock offsets within the
//!   skew margin. Faults stop at [`FAULTS_UNTIL`]; then everything heals and the run goes on.
//!
//! The oracle records every request a worker sends and checks, per seed: every schedule
//! instant of every job was delivered and its fire succeeded (no fire lost); no key was
//! delivered twice unless a worker crashed in the middle of sending it (the documented
//! duplicate); no send started after its lease, or before the instant it was held for, by the
//! true clock, beyond the clock offset a worker may have (no deposed dispatch sends, no held
//! send leaves early).
//!
//! `BELFRY_SIM_SEED=N` replays one seed; `BELFRY_SIM_SEEDS=N` sets how many run.

use std::collections::{BTreeMap, BTreeSet};

use belfry_core::protocol::{
    self, Admission, AdmitView, DeliverResult, LedgerAnswer, LedgerRecord, Refusal, Release, ReplyAction, SettleAction,
    Unsettled,
};
use belfry_core::{
    Assignment, Attempt, Claim, Command, Completion, FireKey, FireStatus, Redispatch, Response, ResultClass, State,
};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Id = u64;
type Slot = (String, u32);

const NODES: u64 = 3;
const STEP_MS: i64 = 10;
const ELECTION_MS: i64 = 1000;
const LEASE_MS: i64 = 2000;
/// The margin the protocol assumes; node clocks are offset by up to half of it either way.
const SKEW_MS: i64 = 200;
const APPLY_WAIT_MS: i64 = 2000;
/// The jobs' attempt timeout.
const TIMEOUT_MS: i64 = 1000;
const TICK_MS: i64 = 100;
/// Claims ahead: fires falling due within this are claimed and held by their workers.
const LOOKAHEAD_MS: i64 = 1000;
const SETTLE_MS: i64 = 1000;
const UNHEALTHY_MS: i64 = 5000;
const JOBS: usize = 3;
/// Each job fires every second from 1 s to this many seconds.
const INSTANTS: i64 = 20;
const FAULTS_UNTIL: i64 = 30_000;
const END: i64 = 55_000;

fn base() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().expect("a valid instant")
}

fn at(ms: i64) -> DateTime<Utc> {
    base() + Duration::milliseconds(ms)
}

fn ms_of(t: DateTime<Utc>) -> i64 {
    (t - base()).num_milliseconds()
}

#[derive(Debug, Clone)]
enum Msg {
    /// `rpc` pairs a reply with its request, as an RPC does: the dispatch's lease, in ms.
    Deliver {
        key: String,
        attempt: u32,
        term: u64,
        log_index: usize,
        rpc: i64,
    },
    DeliverReply {
        key: String,
        attempt: u32,
        rpc: i64,
        result: DeliverResult,
    },
    Query {
        key: String,
        attempt: u32,
    },
    QueryReply {
        key: String,
        attempt: u32,
        answer: LedgerAnswer,
    },
}

#[derive(Debug)]
struct Envelope {
    at: i64,
    from: Id,
    to: Id,
    msg: Msg,
}

#[derive(Debug, Clone)]
enum Rec {
    Started,
    Finished(Attempt),
}

/// A send in progress on a worker: the request leaves at `send_at`, the answer comes at
/// `finish_at` (set once sent).
#[derive(Debug, Clone)]
struct Send {
    key: String,
    attempt: u32,
    lease: DateTime<Utc>,
    /// A claim ahead: not before this instant by the worker's clock.
    hold_until: Option<DateTime<Utc>>,
    reply_to: Id,
    rpc: i64,
    send_at: i64,
    finish_at: Option<i64>,
}

/// What a node does while it believes it leads `term`.
#[derive(Debug, Default)]
struct Lead {
    term: u64,
    next_tick: i64,
    next_settle: i64,
    /// Deliveries this leader sent and awaits, by slot and dispatch (`rpc`), with the worker and
    /// the instant it gives up on the reply.
    active: BTreeMap<(Slot, i64), (Id, i64)>,
    /// Ledger queries in flight, with the instant they count as unanswered.
    settling: BTreeMap<Slot, (Id, i64)>,
    completions: Vec<Completion>,
    turn: usize,
    unhealthy: BTreeMap<Id, i64>,
}

struct Node {
    up: bool,
    paused_until: i64,
    offset_ms: i64,
    state: State,
    applied: usize,
    term: u64,
    leader: Option<Id>,
    /// Durable: survives crashes (it is fsynced before a send).
    ledger: BTreeMap<Slot, Rec>,
    in_flight: BTreeSet<Slot>,
    waiting: Vec<(i64, Id, Msg)>,
    sends: Vec<Send>,
    lead: Option<Lead>,
}

impl Node {
    fn clock(&self, now: i64) -> DateTime<Utc> {
        at(now + self.offset_ms)
    }

    fn apply_to(&mut self, log: &[Command], upto: usize) {
        while self.applied < upto.min(log.len()) {
            self.applied += 1;
            self.state.apply(self.applied as u64, log[self.applied - 1].clone());
        }
    }
}

struct Delivered {
    key: String,
    true_at: i64,
    lease: DateTime<Utc>,
    hold_until: Option<DateTime<Utc>>,
    worker: Id,
}

struct Sim {
    rng: StdRng,
    now: i64,
    log: Vec<Command>,
    term: u64,
    leader: Option<Id>,
    leaderless_since: Option<i64>,
    nodes: Vec<Node>,
    net: Vec<Envelope>,
    isolated: BTreeMap<Id, i64>,
    delivered: Vec<Delivered>,
    interrupted: BTreeMap<String, u32>,
    /// Keys the settle loop sent again because their worker did not answer past the lease and
    /// timeout: the worker may have sent them and been cut off before reporting.
    resent_unreachable: BTreeMap<String, u32>,
    uids: Vec<u64>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let nodes = (1..=NODES)
            .map(|_| Node {
                up: true,
                paused_until: 0,
                offset_ms: rng.random_range(-SKEW_MS / 2..=SKEW_MS / 2),
                state: State::default(),
                applied: 0,
                term: 1,
                leader: Some(1),
                ledger: BTreeMap::new(),
                in_flight: BTreeSet::new(),
                waiting: Vec::new(),
                sends: Vec::new(),
                lead: None,
            })
            .collect();
        let mut sim = Sim {
            rng,
            now: 0,
            log: Vec::new(),
            term: 1,
            leader: Some(1),
            leaderless_since: None,
            nodes,
            net: Vec::new(),
            isolated: BTreeMap::new(),
            delivered: Vec::new(),
            interrupted: BTreeMap::new(),
            resent_unreachable: BTreeMap::new(),
            uids: Vec::new(),
        };
        sim.nodes[0].lead = Some(Lead { term: 1, ..Lead::default() });
        for j in 0..JOBS {
            let spec = serde_json::json!({
                "name": format!("job-{j}"),
                "schedule": {
                    "every": "1s",
                    "start_at": belfry_core::api::rfc3339(at(1000)),
                    "end_at": belfry_core::api::rfc3339(at(INSTANTS * 1000)),
                },
                "target": {"url": "http://sink.test/hook", "timeout": "1s"},
                "retry": {"max_attempts": 100, "max_age": "1h"},
            });
            let command = Command::CreateJob {
                spec: serde_json::from_value(spec).expect("a valid spec"),
                now: at(0),
                by: None,
                max_jobs: None,
            };
            match sim.propose(1, command) {
                Some(Response::Job { job }) => sim.uids.push(job.uid),
                other => panic!("create: {other:?}"),
            }
        }
        sim
    }

    fn node(&mut self, id: Id) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn active(&self, id: Id) -> bool {
        let n = &self.nodes[(id - 1) as usize];
        n.up && n.paused_until <= self.now
    }

    fn connected(&self, a: Id, b: Id) -> bool {
        a == b || (!self.isolated.contains_key(&a) && !self.isolated.contains_key(&b))
    }

    fn has_majority(&self, id: Id) -> bool {
        let reach = (1..=NODES).filter(|&o| self.active(o) && self.connected(id, o)).count();
        self.active(id) && reach as u64 > NODES / 2
    }

    /// Commits `command` if `id` leads the current term with a majority; applies it there.
    fn propose(&mut self, id: Id, command: Command) -> Option<Response> {
        let n = &self.nodes[(id - 1) as usize];
        let leads = self.leader == Some(id) && n.lead.as_ref().is_some_and(|l| l.term == self.term);
        if !leads || !self.has_majority(id) {
            return None;
        }
        trace(self.now, || format!("commit by {id} term {}: {command:?}", self.term));
        self.log.push(command.clone());
        let index = self.log.len();
        let node = self.node(id);
        // The leader has applied everything before (it applies on election and on commit).
        let response = node.state.apply(index as u64, command);
        node.applied = index;
        Some(response)
    }

    /// A fault with probability `p`, while faults are on.
    fn fault(&mut self, p: f64) -> bool {
        self.now < FAULTS_UNTIL && self.rng.random_bool(p)
    }

    fn send(&mut self, from: Id, to: Id, msg: Msg) {
        if self.fault(0.02) {
            trace(self.now, || format!("lost {from}->{to} {msg:?}"));
            return;
        }
        let copies = if self.fault(0.02) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.rng.random_range(1..60);
            self.net.push(Envelope { at: self.now + delay, from, to, msg: msg.clone() });
        }
    }

    fn step(&mut self) {
        self.now += STEP_MS;
        if self.now < FAULTS_UNTIL {
            self.faults();
        } else if self.now < FAULTS_UNTIL + STEP_MS {
            self.heal();
        }
        self.isolated.retain(|_, until| *until > self.now);
        self.elect();
        self.replicate();
        self.network();
        for id in 1..=NODES {
            if self.active(id) {
                self.worker_timers(id);
                self.lead_duties(id);
            }
        }
    }

    fn faults(&mut self) {
        let id = self.rng.random_range(1..=NODES);
        if self.rng.random_bool(0.002) && self.nodes[(id - 1) as usize].up {
            self.crash(id);
        } else if self.rng.random_bool(0.01) && !self.nodes[(id - 1) as usize].up {
            self.restart(id);
        } else if self.rng.random_bool(0.001) {
            let d = self.rng.random_range(300..4000);
            self.node(id).paused_until = self.now + d;
        } else if self.rng.random_bool(0.001) {
            let d = self.rng.random_range(300..5000);
            self.isolated.insert(id, self.now + d);
        }
    }

    fn heal(&mut self) {
        self.isolated.clear();
        for id in 1..=NODES {
            self.node(id).paused_until = 0;
            if !self.nodes[(id - 1) as usize].up {
                self.restart(id);
            }
        }
    }

    fn crash(&mut self, id: Id) {
        trace(self.now, || format!("crash {id}"));
        let n = self.node(id);
        n.up = false;
        // A send whose request left but whose outcome was not recorded: the one duplicate the
        // protocol allows.
        let cut: Vec<String> = n.sends.iter().filter(|s| s.finish_at.is_some()).map(|s| s.key.clone()).collect();
        n.sends.clear();
        n.in_flight.clear();
        n.waiting.clear();
        n.lead = None;
        n.leader = None;
        for key in cut {
            *self.interrupted.entry(key).or_default() += 1;
        }
    }

    fn restart(&mut self, id: Id) {
        let n = self.node(id);
        n.up = true;
        n.paused_until = 0;
        // The replica is rebuilt from the log it has; replication brings the rest.
        n.state = State::default();
        n.applied = 0;
    }

    fn elect(&mut self) {
        let ok = self.leader.is_some_and(|l| {
            let leads = self.nodes[(l - 1) as usize].lead.as_ref().is_some_and(|lead| lead.term == self.term);
            leads && self.has_majority(l)
        });
        if ok {
            self.leaderless_since = None;
            return;
        }
        let since = *self.leaderless_since.get_or_insert(self.now);
        if self.now - since < ELECTION_MS {
            return;
        }
        let candidates: Vec<Id> = (1..=NODES).filter(|&id| self.has_majority(id)).collect();
        if candidates.is_empty() {
            return;
        }
        let id = candidates[self.rng.random_range(0..candidates.len())];
        self.term += 1;
        self.leader = Some(id);
        trace(self.now, || format!("elected {id} term {}", self.term));
        self.leaderless_since = None;
        let (log, term, now) = (std::mem::take(&mut self.log), self.term, self.now);
        let n = self.node(id);
        n.apply_to(&log, log.len());
        n.term = term;
        n.leader = Some(id);
        n.lead = Some(Lead { term, next_tick: now, next_settle: now, ..Lead::default() });
        self.log = log;
    }

    fn replicate(&mut self) {
        let Some(leader) = self.leader else { return };
        if !self.has_majority(leader) {
            return;
        }
        let log = std::mem::take(&mut self.log);
        for id in 1..=NODES {
            if id == leader || !self.active(id) || !self.connected(leader, id) || !self.rng.random_bool(0.5) {
                continue;
            }
            let term = self.term;
            let n = self.node(id);
            n.apply_to(&log, log.len());
            if n.term < term || n.leader != Some(leader) {
                n.term = term;
                n.leader = Some(leader);
            }
            if n.lead.as_ref().is_some_and(|l| l.term < term) {
                n.lead = None; // a zombie hears of the new term and steps down
            }
        }
        self.log = log;
    }

    fn network(&mut self) {
        let due: Vec<Envelope>;
        (due, self.net) = std::mem::take(&mut self.net).into_iter().partition(|e| e.at <= self.now);
        for e in due {
            if !self.nodes[(e.to - 1) as usize].up || !self.connected(e.from, e.to) {
                continue; // dropped
            }
            if !self.active(e.to) {
                self.net.push(Envelope { at: self.now + STEP_MS, ..e }); // held while paused
                continue;
            }
            self.handle(e.from, e.to, e.msg);
        }
    }

    fn handle(&mut self, from: Id, to: Id, msg: Msg) {
        trace(self.now, || format!("{from}->{to} {msg:?}"));
        match msg {
            Msg::Deliver { .. } => self.deliver(from, to, msg),
            Msg::Query { key, attempt } => {
                let answer = self.ledger_answer(to, &key, attempt);
                self.send(to, from, Msg::QueryReply { key, attempt, answer });
            }
            Msg::DeliverReply { key, attempt, rpc, result } => self.on_deliver_reply(to, key, attempt, rpc, result),
            Msg::QueryReply { key, attempt, answer } => self.on_query_reply(to, from, key, attempt, answer),
        }
    }

    fn ledger_answer(&self, id: Id, key: &str, attempt: u32) -> LedgerAnswer {
        let n = &self.nodes[(id - 1) as usize];
        let slot = (key.to_string(), attempt);
        let in_flight = n.in_flight.contains(&slot);
        match n.ledger.get(&slot) {
            Some(Rec::Finished(a)) => LedgerAnswer::Finished(Some(a.clone())),
            Some(Rec::Started) => LedgerAnswer::Started { in_flight },
            None => LedgerAnswer::Unknown { in_flight },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reply(&mut self, worker: Id, to: Id, key: String, attempt: u32, rpc: i64, result: DeliverResult) {
        if worker == to {
            self.on_deliver_reply(to, key, attempt, rpc, result);
        } else {
            self.send(worker, to, Msg::DeliverReply { key, attempt, rpc, result });
        }
    }

    /// The worker side of `Deliver`: the term fence, the wait for the named entry, then
    /// `protocol::admit`.
    fn deliver(&mut self, from: Id, to: Id, msg: Msg) {
        let Msg::Deliver { key, attempt, term, log_index, rpc } = msg.clone() else { return };
        let n = &self.nodes[(to - 1) as usize];
        if term < n.term {
            return self.reply(to, from, key, attempt, rpc, DeliverResult::Refused(Refusal::StaleTerm));
        }
        if n.applied < log_index {
            let deadline = self.now + APPLY_WAIT_MS;
            self.node(to).waiting.push((deadline, from, msg));
            return;
        }
        let slot = (key.clone(), attempt);
        let ledger = match n.ledger.get(&slot) {
            None => LedgerRecord::None,
            Some(Rec::Started) => LedgerRecord::Started,
            Some(Rec::Finished(a)) => LedgerRecord::Finished(a.clone()),
        };
        let fire = n.state.fire_by_key(&FireKey(key.clone())).cloned();
        let view = AdmitView {
            me: to,
            request_term: term,
            request_attempt: attempt,
            current_term: n.term,
            sender_is_leader: n.leader == Some(from),
            ledger,
            draining: false,
            fire: fire.as_ref(),
        };
        match protocol::admit(&view) {
            Admission::Replay(a) => self.reply(to, from, key, attempt, rpc, DeliverResult::Outcome(a)),
            Admission::Refuse(r, _) => self.reply(to, from, key, attempt, rpc, DeliverResult::Refused(r)),
            Admission::Send { lease_until, send_at: hold_until } => {
                let clock = n.clock(self.now);
                if n.in_flight.contains(&slot) {
                    return self.reply(to, from, key, attempt, rpc, DeliverResult::Refused(Refusal::InProgress));
                }
                if protocol::release(clock, hold_until, lease_until) == Release::Expired {
                    return self.reply(to, from, key, attempt, rpc, DeliverResult::Refused(Refusal::LeaseExpired));
                }
                // A crash may strike before the ledger write (nothing happened) ...
                if self.fault(0.01) {
                    return self.crash(to);
                }
                let send_at = self.now + self.rng.random_range(0..20);
                let n = self.node(to);
                n.in_flight.insert(slot.clone());
                n.ledger.insert(slot, Rec::Started);
                let lease = lease_until;
                n.sends.push(Send { key, attempt, lease, hold_until, reply_to: from, rpc, send_at, finish_at: None });
            }
        }
    }

    fn worker_timers(&mut self, id: Id) {
        // Deliveries waiting for the replica to apply their entry.
        let waiting = std::mem::take(&mut self.node(id).waiting);
        for (deadline, from, msg) in waiting {
            let Msg::Deliver { key, attempt, log_index, rpc, .. } = &msg else { continue };
            if self.nodes[(id - 1) as usize].applied >= *log_index {
                self.deliver(from, id, msg);
            } else if self.now >= deadline {
                let (key, attempt, rpc) = (key.clone(), *attempt, *rpc);
                self.reply(id, from, key, attempt, rpc, DeliverResult::Refused(Refusal::NotDispatched));
            } else {
                self.node(id).waiting.push((deadline, from, msg));
            }
            if !self.nodes[(id - 1) as usize].up {
                return;
            }
        }
        // Sends: the request leaves (after the fsync, the lease checked again), then the answer.
        let mut sends = std::mem::take(&mut self.node(id).sends).into_iter();
        while let Some(mut s) = sends.next() {
            let slot = (s.key.clone(), s.attempt);
            match s.finish_at {
                None if s.send_at <= self.now => {
                    let clock = self.nodes[(id - 1) as usize].clock(self.now);
                    let release = protocol::release(clock, s.hold_until, s.lease);
                    if matches!(release, Release::Hold(_)) {
                        self.node(id).sends.push(s);
                        continue;
                    }
                    if release == Release::Expired {
                        self.node(id).in_flight.remove(&slot);
                        self.reply(
                            id,
                            s.reply_to,
                            s.key,
                            s.attempt,
                            s.rpc,
                            DeliverResult::Refused(Refusal::LeaseExpired),
                        );
                        continue;
                    }
                    // ... or after the ledger write, before the request leaves.
                    if self.fault(0.01) {
                        let n = self.node(id);
                        n.sends.push(s);
                        n.sends.extend(sends);
                        self.crash(id);
                        return;
                    }
                    self.delivered.push(Delivered {
                        key: s.key.clone(),
                        true_at: self.now,
                        lease: s.lease,
                        hold_until: s.hold_until,
                        worker: id,
                    });
                    s.finish_at = Some(self.now + self.rng.random_range(5..400));
                    self.node(id).sends.push(s);
                }
                Some(done) if done <= self.now => {
                    let worker_clock = self.nodes[(id - 1) as usize].clock(self.now);
                    let a = Attempt {
                        number: s.attempt,
                        worker: id,
                        started_at: worker_clock,
                        finished_at: worker_clock,
                        class: ResultClass::Success,
                        http_status: Some(200),
                        error: None,
                        body_excerpt: None,
                        retry_after_ms: None,
                    };
                    let n = self.node(id);
                    n.ledger.insert(slot.clone(), Rec::Finished(a.clone()));
                    n.in_flight.remove(&slot);
                    self.reply(id, s.reply_to, s.key, s.attempt, s.rpc, DeliverResult::Outcome(a));
                }
                _ => self.node(id).sends.push(s),
            }
        }
        // ... or mid-send, after the request left (the `crash` bookkeeping counts it).
        if self.nodes[(id - 1) as usize].sends.iter().any(|s| s.finish_at.is_some()) && self.fault(0.002) {
            self.crash(id);
        }
    }

    fn assignment(&mut self, id: Id, term: u64) -> Assignment {
        let now = self.now;
        let clock = self.nodes[(id - 1) as usize].clock(now);
        let lead = self.node(id).lead.as_mut().expect("a leader");
        lead.unhealthy.retain(|_, until| *until > now);
        let turn = lead.turn;
        lead.turn += 1;
        let members: Vec<Id> = (1..=NODES).collect();
        let unhealthy = lead.unhealthy.clone();
        let worker = protocol::place(id, &members, |w| !unhealthy.contains_key(&w), turn);
        Assignment { worker, term, lease_until: clock + Duration::milliseconds(LEASE_MS) }
    }

    /// Sends the dispatches a committed `Fire` answered.
    fn dispatch(&mut self, id: Id, response: Option<Response>) {
        let Some(Response::Dispatches { dispatches }) = response else { return };
        let log_index = self.log.len();
        for d in dispatches {
            let give_up = self.now + LEASE_MS + TIMEOUT_MS + 2000;
            let rpc = ms_of(d.lease_until);
            let slot = (d.key.0.clone(), d.attempt);
            if let Some(lead) = self.node(id).lead.as_mut() {
                lead.active.insert((slot, rpc), (d.worker, give_up));
            }
            let msg = Msg::Deliver { key: d.key.0.clone(), attempt: d.attempt, term: d.term, log_index, rpc };
            if d.worker == id {
                self.deliver(id, id, msg);
            } else {
                self.send(id, d.worker, msg);
            }
        }
    }

    fn redispatch(&mut self, id: Id, key: String, attempt: u32, to: Option<Id>) {
        let Some(term) = self.nodes[(id - 1) as usize].lead.as_ref().map(|l| l.term) else { return };
        let mut assign = self.assignment(id, term);
        if let Some(w) = to {
            assign.worker = w;
        }
        let now = self.nodes[(id - 1) as usize].clock(self.now);
        let command = Command::Fire {
            now,
            claims: vec![],
            redispatches: vec![Redispatch { key: FireKey(key), attempt, assign }],
        };
        let response = self.propose(id, command);
        self.dispatch(id, response);
    }

    fn lead_duties(&mut self, id: Id) {
        let now = self.now;
        let Some(lead) = self.nodes[(id - 1) as usize].lead.as_ref() else { return };
        let term = lead.term;
        let clock = self.nodes[(id - 1) as usize].clock(now);
        // Replies that never came: the RPC failed after it may have arrived.
        let lead = self.node(id).lead.as_mut().expect("a leader");
        let lost: Vec<((Slot, i64), Id)> =
            lead.active.iter().filter(|(_, (_, until))| *until <= now).map(|(s, (w, _))| (s.clone(), *w)).collect();
        let unanswered: Vec<(Slot, Id)> =
            lead.settling.iter().filter(|(_, (_, until))| *until <= now).map(|(s, (w, _))| (s.clone(), *w)).collect();
        for (dispatch, worker) in lost {
            lead.active.remove(&dispatch);
            if let ReplyAction::Settle { mark_unhealthy: true } = protocol::on_reply(DeliverResult::Unknown, true) {
                lead.unhealthy.insert(worker, now + UNHEALTHY_MS);
            }
        }
        for ((key, attempt), worker) in unanswered {
            self.on_query_reply(id, worker, key, attempt, LedgerAnswer::Unreachable);
        }
        // The completion batcher. (A self-delivery above may have crashed this node.)
        let Some(lead) = self.node(id).lead.as_mut() else { return };
        let completions = std::mem::take(&mut lead.completions);
        if !completions.is_empty() {
            // Not lost when this fails: the ledgers hold the outcomes for the settle loop.
            let _ = self.propose(id, Command::Complete { now: clock, completions });
        }
        // The ticker.
        let Some(lead) = self.node(id).lead.as_mut() else { return };
        if lead.next_tick <= now {
            lead.next_tick = now + TICK_MS;
            let ahead = clock + Duration::milliseconds(LOOKAHEAD_MS);
            let due = self.nodes[(id - 1) as usize].state.due_ahead(clock, ahead, 100);
            if !due.claims.is_empty() || !due.redispatches.is_empty() {
                let claims: Vec<Claim> = due
                    .claims
                    .into_iter()
                    .map(|(job_uid, scheduled_at)| Claim { job_uid, scheduled_at, assign: self.assignment(id, term) })
                    .collect();
                let redispatches: Vec<Redispatch> = due
                    .redispatches
                    .into_iter()
                    .map(|(key, attempt)| Redispatch { key, attempt, assign: self.assignment(id, term) })
                    .collect();
                let response = self.propose(id, Command::Fire { now: clock, claims, redispatches });
                self.dispatch(id, response);
            }
        }
        // The settle loop.
        let Some(lead) = self.node(id).lead.as_mut() else { return };
        if lead.next_settle > now {
            return;
        }
        lead.next_settle = now + SETTLE_MS;
        let skew = Duration::milliseconds(SKEW_MS);
        let node = &self.nodes[(id - 1) as usize];
        let lead = node.lead.as_ref().expect("a leader");
        let candidates: Vec<(String, u32, Id)> = node
            .state
            .fires_with_status(FireStatus::Dispatched)
            .filter(|f| {
                let slot = (f.key.0.clone(), f.attempt);
                let rpc = f.lease_until.map(ms_of).unwrap_or(0);
                !lead.active.contains_key(&(slot.clone(), rpc)) && !lead.settling.contains_key(&slot)
            })
            .filter(|f| {
                let view =
                    Unsettled { lease_until: f.lease_until, attempt_timeout: Duration::zero(), max_clock_skew: skew };
                f.term < term || view.lease_passed(clock)
            })
            .map(|f| (f.key.0.clone(), f.attempt, f.worker.unwrap_or(id)))
            .collect();
        for (key, attempt, worker) in candidates {
            let until = now + 2000;
            let Some(lead) = self.node(id).lead.as_mut() else { return };
            lead.settling.insert((key.clone(), attempt), (worker, until));
            if worker == id {
                let answer = self.ledger_answer(id, &key, attempt);
                self.on_query_reply(id, id, key, attempt, answer);
            } else {
                self.send(id, worker, Msg::Query { key, attempt });
            }
        }
    }

    fn on_deliver_reply(&mut self, id: Id, key: String, attempt: u32, rpc: i64, result: DeliverResult) {
        let now = self.now;
        let node = &self.nodes[(id - 1) as usize];
        let Some(lead) = node.lead.as_ref() else { return };
        let Some(&(worker, _)) = lead.active.get(&((key.clone(), attempt), rpc)) else { return };
        let current =
            node.state.fire_by_key(&FireKey(key.clone())).is_some_and(|f| f.is_dispatch(attempt, worker, at(rpc)));
        let Some(lead) = self.node(id).lead.as_mut() else { return };
        lead.active.remove(&((key.clone(), attempt), rpc));
        match protocol::on_reply(result, current) {
            ReplyAction::Commit(a) => lead.completions.push(Completion { key: FireKey(key), attempt: a }),
            ReplyAction::Redispatch => {
                lead.unhealthy.insert(worker, now + UNHEALTHY_MS);
                self.redispatch(id, key, attempt, None);
            }
            ReplyAction::Settle { mark_unhealthy } => {
                if mark_unhealthy {
                    lead.unhealthy.insert(worker, now + UNHEALTHY_MS);
                }
            }
        }
    }

    /// A ledger answer from `from` (as an RPC's reply: only for the query this leader sent it).
    fn on_query_reply(&mut self, id: Id, from: Id, key: String, attempt: u32, answer: LedgerAnswer) {
        let now = self.now;
        let node = &self.nodes[(id - 1) as usize];
        let clock = node.clock(now);
        let Some(lead) = node.lead.as_ref() else { return };
        let Some(&(worker, _)) = lead.settling.get(&(key.clone(), attempt)).filter(|(w, _)| *w == from) else { return };
        let fire = node.state.fire_by_key(&FireKey(key.clone())).cloned();
        self.node(id).lead.as_mut().expect("a leader").settling.remove(&(key.clone(), attempt));
        // Decided only while the dispatch asked about is still the fire's current one.
        let current = |f: &belfry_core::Fire| {
            f.status == FireStatus::Dispatched && f.attempt == attempt && f.worker == Some(worker)
        };
        let Some(fire) = fire.filter(current) else { return };
        let view = Unsettled {
            lease_until: fire.lease_until,
            attempt_timeout: Duration::milliseconds(TIMEOUT_MS),
            max_clock_skew: Duration::milliseconds(SKEW_MS),
        };
        trace(self.now, || format!("settle on {id} {key}/{attempt}: {answer:?}"));
        match protocol::settle(&view, answer.clone(), clock) {
            SettleAction::Commit(a) => {
                let lead = self.node(id).lead.as_mut().expect("a leader");
                lead.completions.push(Completion { key: FireKey(key), attempt: a });
            }
            SettleAction::ResendSameWorker => self.redispatch(id, key, attempt, Some(worker)),
            SettleAction::ResendElsewhere { mark_unhealthy } => {
                if mark_unhealthy {
                    let lead = self.node(id).lead.as_mut().expect("a leader");
                    lead.unhealthy.insert(worker, now + UNHEALTHY_MS);
                    *self.resent_unreachable.entry(key.clone()).or_default() += 1;
                }
                self.redispatch(id, key, attempt, None);
            }
            SettleAction::Wait => {}
        }
    }

    /// Runs to the end and checks the oracle; the error names what broke.
    fn run(mut self) -> Result<String, String> {
        while self.now < END {
            self.step();
        }
        self.oracle()
    }

    /// The checks on the history: every instant delivered and succeeded, no second copy but
    /// through the two documented paths, no send after its lease or before its instant beyond
    /// a worker's clock offset, nothing sent that no job has.
    fn oracle(&self) -> Result<String, String> {
        let leader = self.leader.ok_or("no leader at the end")?;
        let state = &self.nodes[(leader - 1) as usize].state;
        let mut copies: BTreeMap<&str, u32> = BTreeMap::new();
        for d in &self.delivered {
            *copies.entry(d.key.as_str()).or_default() += 1;
            let late = d.true_at - ms_of(d.lease);
            if late > SKEW_MS / 2 {
                return Err(format!("{} sent by node {} {late} ms after its lease", d.key, d.worker));
            }
            let early = d.hold_until.map_or(0, |t| ms_of(t) - d.true_at);
            if early > SKEW_MS / 2 {
                return Err(format!("{} sent by node {} {early} ms before its instant", d.key, d.worker));
            }
        }
        let mut expected = 0;
        for &uid in &self.uids {
            for s in 1..=INSTANTS {
                expected += 1;
                let key = FireKey::scheduled(uid, at(s * 1000));
                let fire = state.fire_by_key(&key).ok_or_else(|| format!("{key}: no fire (lost)"))?;
                if fire.status != FireStatus::Succeeded {
                    return Err(format!("{key}: {:?} at the end, not succeeded", fire.status));
                }
                let sent = copies.get(key.0.as_str()).copied().unwrap_or(0);
                let interrupted = self.interrupted.get(&key.0).copied().unwrap_or(0);
                let unreachable = self.resent_unreachable.get(&key.0).copied().unwrap_or(0);
                if sent == 0 {
                    return Err(format!("{key}: succeeded but never sent"));
                }
                if sent > 1 + interrupted + unreachable {
                    return Err(format!(
                        "{key}: sent {sent} times; {interrupted} sends cut off by a crash, {unreachable} resends past an unreachable worker"
                    ));
                }
            }
        }
        let extra = copies.keys().filter(|k| !self.uids.iter().any(|u| k.starts_with(&format!("{u}:")))).count();
        if extra > 0 {
            return Err(format!("{extra} keys sent that no job has"));
        }
        Ok(format!(
            "{expected} fires, {} sends, {} cut off by a crash, {} resent past an unreachable worker, term {}",
            self.delivered.len(),
            self.interrupted.values().sum::<u32>(),
            self.resent_unreachable.values().sum::<u32>(),
            self.term
        ))
    }
}

/// `BELFRY_SIM_TRACE=TEXT` prints every traced event whose line contains TEXT.
fn trace(now: i64, line: impl FnOnce() -> String) {
    if let Ok(filter) = std::env::var("BELFRY_SIM_TRACE") {
        let line = line();
        if line.contains(&filter) {
            eprintln!("{now:>6} {line}");
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn no_fire_is_lost_or_sent_twice_under_faults() {
    let seeds: Vec<u64> = match env_u64("BELFRY_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("BELFRY_SIM_SEEDS").unwrap_or(3000)).collect(),
    };
    for seed in seeds {
        if let Err(e) = Sim::new(seed).run() {
            panic!("seed {seed}: {e}\nreplay: BELFRY_SIM_SEED={seed} cargo test --workspace --test simulation");
        }
    }
}

#[test]
fn the_oracle_catches_a_second_copy_a_late_send_and_a_lost_fire() {
    let mut sim = Sim::new(1);
    while sim.now < END {
        sim.step();
    }
    sim.oracle().expect("seed 1 is clean");
    let sent = sim.delivered.iter().position(|d| !sim.interrupted.contains_key(&d.key)).expect("a send");
    let key = sim.delivered[sent].key.clone();
    let copy = |d: &Delivered| Delivered {
        key: d.key.clone(),
        true_at: d.true_at,
        lease: d.lease,
        hold_until: d.hold_until,
        worker: d.worker,
    };

    // A second copy that no crash or unreachable worker explains.
    let extra = copy(&sim.delivered[sent]);
    let allowed = 1 + sim.resent_unreachable.get(&key).copied().unwrap_or(0);
    for _ in 0..allowed {
        sim.delivered.push(copy(&extra));
    }
    let e = sim.oracle().expect_err("a duplicate");
    assert!(e.contains(&key) && e.contains("times"), "{e}");
    sim.delivered.truncate(sim.delivered.len() - allowed as usize);

    // A send that started well after its lease (a deposed dispatch sending).
    let mut late = copy(&extra);
    late.true_at = ms_of(late.lease) + SKEW_MS;
    let keep = std::mem::replace(&mut sim.delivered[sent], late);
    let e = sim.oracle().expect_err("a late send");
    assert!(e.contains("after its lease"), "{e}");
    sim.delivered[sent] = keep;

    // A send held for its instant that left well before it.
    let held = sim.delivered.iter().position(|d| d.hold_until.is_some()).expect("a send claimed ahead");
    let mut early = copy(&sim.delivered[held]);
    early.true_at = early.hold_until.map(ms_of).expect("held") - SKEW_MS;
    let keep = std::mem::replace(&mut sim.delivered[held], early);
    let e = sim.oracle().expect_err("an early send");
    assert!(e.contains("before its instant"), "{e}");
    sim.delivered[held] = keep;

    // A fire the history never sent.
    let kept: Vec<Delivered> = sim.delivered.iter().filter(|d| d.key != key).map(copy).collect();
    sim.delivered = kept;
    let e = sim.oracle().expect_err("a lost fire");
    assert!(e.contains(&key) && e.contains("never sent"), "{e}");
}

#[test]
fn a_seed_replays_exactly() {
    let a = Sim::new(7).run();
    let b = Sim::new(7).run();
    assert_eq!(a, b);
}
