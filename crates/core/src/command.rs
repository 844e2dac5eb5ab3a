//! Commands: the entries of the replicated log, and what applying one answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApplyError;
use crate::fire::{Attempt, Dispatch, FireKey, NodeId};
use crate::job::{Job, JobSpec, JobUid};
use crate::state::tokens::{Role, Token};

/// Who sends a fire, under which term, and until when a send may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The worker node.
    pub worker: NodeId,
    /// The proposing leader's term; workers refuse a lower one.
    pub term: u64,
    /// The lease: no send starts after this instant.
    pub lease_until: DateTime<Utc>,
}

/// The leader's claim of a job's next schedule instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The job.
    pub job_uid: JobUid,
    /// The instant claimed; must be the job's `next_fire_at` when applied.
    pub scheduled_at: DateTime<Utc>,
    /// Who delivers it.
    pub assign: Assignment,
}

/// A new dispatch of an existing fire: the next attempt of a retry, a buffered or requeued fire,
/// or the same attempt on another worker after a lease ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redispatch {
    /// The fire.
    pub key: FireKey,
    /// The attempt number to send.
    pub attempt: u32,
    /// Who sends it.
    pub assign: Assignment,
}

/// A worker's report of one finished attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The fire.
    pub key: FireKey,
    /// The attempt and its outcome.
    pub attempt: Attempt,
}

/// A state machine command. `now` is the proposer's clock: apply() never reads a clock, so every
/// replica computes the same state from the same log.
///
/// `by` is the id of the API token that made a write (`bootstrap` for a node's bootstrap token,
/// absent with authentication off and in entries written before tokens existed). It is recorded
/// on what the write leaves behind (`created_by`/`updated_by` on a job, `triggered_by` and
/// `requeued_by` on a fire); writes that leave nothing behind (deletes, purges, revocations)
/// carry none and are audited in the node's log instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Create a job; refused with [`ApplyError::QuotaExceeded`] when `max_jobs` live jobs exist
    /// (the proposer's `--max-jobs`, carried in the entry so every replica decides alike).
    CreateJob {
        spec: JobSpec,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_jobs: Option<u64>,
    },
    /// Create up to [`MAX_BATCH_JOBS`] jobs, all or none (`POST /v1/jobs:batch`): every spec
    /// valid, no name in use or given twice, and room for all of them under `max_jobs`; else
    /// nothing changes and the refusal is an [`ApplyError::Item`] naming the first spec at fault.
    /// One entry, so the batch costs one commit, whatever its size.
    CreateJobs {
        specs: Vec<JobSpec>,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_jobs: Option<u64>,
    },
    /// Replace a job's spec, optionally only at a given version.
    ReplaceJob {
        spec: JobSpec,
        if_version: Option<u64>,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Delete a job; its unfinished fires still finish.
    DeleteJob { name: String },
    /// Pause a job: it claims no fires.
    PauseJob {
        name: String,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Resume a job; what it missed meets the misfire policy.
    ResumeJob {
        name: String,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Fire a job now, with a key of its own. The fire is queued; the leader's ticker
    /// dispatches it, so a trigger proposed through a follower is still sent by the leader.
    TriggerJob {
        name: String,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The ticker's batch: claims of due instants and redispatches of existing fires.
    Fire { now: DateTime<Utc>, claims: Vec<Claim>, redispatches: Vec<Redispatch> },
    /// Outcomes reported by workers.
    Complete { now: DateTime<Utc>, completions: Vec<Completion> },
    /// Move a dead-lettered fire back to the queue, keeping its key.
    Requeue {
        key: FireKey,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Move the selected dead letters back to the queue, each keeping its key; all or none.
    RequeueDeadLetters {
        select: DeadLetterSelector,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Forget the selected dead letters; all or none.
    PurgeDeadLetters { select: DeadLetterSelector, now: DateTime<Utc> },
    /// Seed an empty cluster with the state of a backup (`belfry restore`).
    Restore {
        #[serde(with = "as_json_string")]
        data: Box<crate::Data>,
    },
    /// Add an API token. The entry carries the SHA-256 of the secret, never the secret.
    CreateToken {
        /// Public id, [`crate::state::tokens::TOKEN_ID_LEN`] lowercase letters and digits.
        id: String,
        /// What the token may do.
        role: Role,
        /// What it is for, for people (`ci`, `grafana`).
        name: String,
        /// Lowercase hex SHA-256 of the secret part.
        secret_sha256: String,
        now: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Remove an API token: from the moment a node applies this, it refuses the token.
    RevokeToken { id: String },
}

impl Command {
    /// The proposer's clock, for commands that carry one.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        match self {
            Command::CreateJob { now, .. }
            | Command::CreateJobs { now, .. }
            | Command::ReplaceJob { now, .. }
            | Command::PauseJob { now, .. }
            | Command::ResumeJob { now, .. }
            | Command::TriggerJob { now, .. }
            | Command::Fire { now, .. }
            | Command::Complete { now, .. }
            | Command::Requeue { now, .. }
            | Command::RequeueDeadLetters { now, .. }
            | Command::PurgeDeadLetters { now, .. }
            | Command::CreateToken { now, .. } => Some(*now),
            Command::DeleteJob { .. } | Command::Restore { .. } | Command::RevokeToken { .. } => None,
        }
    }

    /// The command as the leader takes it from another node, which forwards it for an API
    /// client: stamped with the leader's clock `now` (a node's clock is not trusted for what
    /// the leader decides). `None` for the commands only a leader proposes itself (`Fire`,
    /// `Complete`): no other node may claim, dispatch or settle a fire.
    pub fn forwarded(self, now: DateTime<Utc>) -> Option<Command> {
        let mut command = self;
        match &mut command {
            Command::Fire { .. } | Command::Complete { .. } => return None,
            Command::CreateJob { now: at, .. }
            | Command::CreateJobs { now: at, .. }
            | Command::ReplaceJob { now: at, .. }
            | Command::PauseJob { now: at, .. }
            | Command::ResumeJob { now: at, .. }
            | Command::TriggerJob { now: at, .. }
            | Command::Requeue { now: at, .. }
            | Command::RequeueDeadLetters { now: at, .. }
            | Command::PurgeDeadLetters { now: at, .. }
            | Command::CreateToken { now: at, .. } => *at = now,
            Command::DeleteJob { .. } | Command::Restore { .. } | Command::RevokeToken { .. } => {}
        }
        Some(command)
    }

    /// The command with every instant from outside moved into the instant window
    /// (`belfry_schedule::instant`): the proposer's `now` and each lease. apply() works on
    /// this, so a clock far off (or forged) can neither overflow arithmetic nor store an instant
    /// that does not render as RFC 3339. Claimed instants are left alone: a claim applies only
    /// when it names the job's `next_fire_at`, which already lies in the window. Every `by` is
    /// cut to [`MAX_ACTOR_BYTES`], so what is recorded about a writer stays small.
    pub fn clamped(self) -> Command {
        use belfry_schedule::instant::clamp_instant as c;
        let assign = |a: Assignment| Assignment { lease_until: c(a.lease_until), ..a };
        let b = bound_actor;
        match self {
            Command::CreateJob { spec, now, by, max_jobs } => {
                Command::CreateJob { spec, now: c(now), by: b(by), max_jobs }
            }
            Command::CreateJobs { specs, now, by, max_jobs } => {
                Command::CreateJobs { specs, now: c(now), by: b(by), max_jobs }
            }
            Command::ReplaceJob { spec, if_version, now, by } => {
                Command::ReplaceJob { spec, if_version, now: c(now), by: b(by) }
            }
            Command::PauseJob { name, now, by } => Command::PauseJob { name, now: c(now), by: b(by) },
            Command::ResumeJob { name, now, by } => Command::ResumeJob { name, now: c(now), by: b(by) },
            Command::TriggerJob { name, now, by } => Command::TriggerJob { name, now: c(now), by: b(by) },
            Command::Fire { now, claims, redispatches } => Command::Fire {
                now: c(now),
                claims: claims.into_iter().map(|cl| Claim { assign: assign(cl.assign), ..cl }).collect(),
                redispatches: redispatches.into_iter().map(|r| Redispatch { assign: assign(r.assign), ..r }).collect(),
            },
            Command::Complete { now, completions } => Command::Complete { now: c(now), completions },
            Command::Requeue { key, now, by } => Command::Requeue { key, now: c(now), by: b(by) },
            Command::RequeueDeadLetters { select, now, by } => {
                Command::RequeueDeadLetters { select, now: c(now), by: b(by) }
            }
            Command::PurgeDeadLetters { select, now } => Command::PurgeDeadLetters { select, now: c(now) },
            Command::CreateToken { id, role, name, secret_sha256, now, by } => {
                Command::CreateToken { id, role, name, secret_sha256, now: c(now), by: b(by) }
            }
            Command::DeleteJob { .. } | Command::Restore { .. } | Command::RevokeToken { .. } => self,
        }
    }
}

/// Longest writer id (`by`) an entry records, in bytes: token ids are 12 bytes, `bootstrap` 9.
pub const MAX_ACTOR_BYTES: usize = 64;

/// `by` cut to [`MAX_ACTOR_BYTES`] at a character boundary.
fn bound_actor(by: Option<String>) -> Option<String> {
    by.map(|mut by| {
        crate::fire::truncate_at_char_boundary(&mut by, MAX_ACTOR_BYTES);
        by
    })
}

/// Most keys one bulk requeue or purge may name.
pub const MAX_SELECTED_KEYS: usize = 1000;

/// Most job specs one [`Command::CreateJobs`] may carry (`POST /v1/jobs:batch`): enough that an
/// import of thousands of jobs costs a handful of commits, few enough that validating a batch
/// stays in the milliseconds.
pub const MAX_BATCH_JOBS: usize = 1000;

/// Which dead letters a bulk requeue or purge touches: exactly one of `keys`, `job` or
/// `all: true`. Also the body of `POST /v1/dead-letters/requeue` and `/purge`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSelector {
    /// These fires; every one must be dead-lettered, or nothing changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<FireKey>>,
    /// Every dead letter of this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Every dead letter in the cluster.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// Carries a value as one JSON string. [`Data`](crate::Data) has integer map keys, which
/// serde cannot read back through an internally tagged enum such as [`Command`].
mod as_json_string {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::to_string(value).map_err(S::Error::custom)?.serialize(serializer)
    }

    pub fn deserialize<'de, T: serde::de::DeserializeOwned, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        serde_json::from_str(&String::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

/// One job of a batch create, as its proposer answers it: what identifies it and when it first
/// fires, not the whole job (the client sent the spec; a batch's answer stays small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedJob {
    /// The job's name.
    pub name: String,
    /// Its uid.
    pub uid: JobUid,
    /// Its first instant, if its schedule has one.
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// What applying a command answers to its proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Blank and membership entries, and commands with nothing to say.
    None,
    /// The job after the change.
    Job { job: Box<Job> },
    /// The jobs a batch create made, in the batch's order.
    Created { jobs: Vec<CreatedJob> },
    /// The job or token is gone.
    Deleted,
    /// Sends the leader must now make, one per new or redispatched fire.
    Dispatches { dispatches: Vec<Dispatch> },
    /// A manual fire was queued under this key.
    Triggered { key: FireKey },
    /// The fires a bulk requeue or purge touched, oldest first.
    Fires { keys: Vec<FireKey> },
    /// The token as stored (its secret's hash, never the secret).
    Token { token: Box<Token> },
    /// Refused, deterministically; the state is unchanged.
    Rejected { error: ApplyError },
}
