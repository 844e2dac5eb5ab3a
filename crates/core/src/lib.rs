//! belfry's replicated state machine: jobs, fires, commands and [`State::apply`].
//!
//! Nothing here touches the network, the disk or the clock. Every command carries the
//! proposer's `now`, so every replica that applies the same log reaches the same state; the
//! node crate wires this to openraft, sled, tonic and axum.
//!
//! # The fire protocol
//!
//! A job has a `uid` (never reused) and `next_fire_at`, the next schedule instant not yet
//! claimed. The leader's ticker reads [`State::due`] and proposes a [`Command::Fire`] batch of
//! claims, each naming a job's current `next_fire_at`. Applying a claim:
//!
//! 1. ignores it unless it names the job's current `next_fire_at` (an earlier instant was
//!    claimed already; a stale leader's proposal is harmless, even after old keys are pruned);
//! 2. ignores it if its key (`"{uid}:{scheduled_at_ms}"`, [`FireKey`]) exists;
//! 3. applies the misfire policy when the claim is later than the grace, and the overlap
//!    policy when an earlier fire is still running;
//! 4. records the fire as `dispatched` to the worker and lease named in the claim, advances
//!    `next_fire_at`, and answers a [`Dispatch`].
//!
//! Only after its proposal commits does the leader send the dispatch to the worker, which
//! records the key in its own ledger before sending. Workers report attempts; the leader
//! commits them in [`Command::Complete`] batches, and [`retry::decide`] turns failures into a
//! retry instant or a dead letter. A new leader finds fires still `dispatched` and settles them
//! through the workers' ledgers (the node crate's dispatcher).
//!
//! Keys are deterministic, so any leader computes the same key for the same fire, and the key
//! is the `Idempotency-Key` of every attempt.
//!
//! The distributed decisions around apply (placement, the worker's admission of a `Deliver`,
//! the leader's reaction to each reply, the settle table) are pure functions in [`protocol`],
//! with time, membership, health and replies as parameters.
//!
//! # apply() cannot panic
//!
//! Every entry of the log is applied by every replica, again after every restart, so one entry
//! that panicked apply() would stop the cluster for good. apply() is total by construction:
//!
//! - every value a [`JobSpec`] carries has a bound (the `MAX_*` constants in [`job`]) checked
//!   at validation, which refuses with [`ApplyError::Invalid`] naming the field;
//! - instants users write lie in years 1970 to 9999, and every instant from outside (a
//!   command's `now`, a lease, an attempt's times) is clamped into that window
//!   ([`Command::clamped`]), so every stored instant renders as RFC 3339;
//! - what a worker relays from a target is bounded where core reads it ([`Attempt::bounded`],
//!   [`retry::MAX_RETRY_AFTER_MS`]);
//! - all time and counter arithmetic is checked or saturating, and indexes are read with `get`;
//! - a [`Command::Restore`] is held to what apply() could have produced.
//!
//! [`State::check_indexes`] rebuilds the indexes from the data alone and compares them; the
//! property test `tests/apply_never_panics.rs` runs it after every command of arbitrary
//! command sequences.
//!
//! # Deleting a job
//!
//! A deleted job's queued and retry-waiting fires are cancelled ([`FireStatus::Cancelled`])
//! and forgotten with it. A fire already dispatched finishes its current attempt under the
//! retired job; its completion ends it (succeeded, dead-lettered, or cancelled where a retry
//! would follow), and [`State::due`] never proposes a new attempt for it. A job created again
//! under the same name has a new uid, and fire keys start with the uid.
//!
//! # History and dead letters
//!
//! Finished fires stay until the job's [`HistoryPolicy`] drops them (count, then age); age is
//! checked against each command's `now` before it applies, so replicas forget the same fires
//! at the same index. Dead letters can be requeued (same key, fresh retry budget) or purged,
//! one at a time or in bulk ([`DeadLetterSelector`]), all or none.
//!
//! # Tokens and writers
//!
//! API tokens ([`Token`]: id, [`Role`], name, the SHA-256 of the secret) are replicated like
//! jobs ([`Command::CreateToken`], [`Command::RevokeToken`]); secrets never enter the log. Every
//! write may name the token that made it (`by`), and apply() records it on what the write
//! leaves behind: `created_by`/`updated_by` on jobs, `triggered_by`/`requeued_by` on fires.
//! The job cap (`max_jobs`) travels in the create entry itself, so every replica refuses the
//! same create whatever its own configuration says.
//!
//! A batch create ([`Command::CreateJobs`], up to [`command::MAX_BATCH_JOBS`] specs) is one
//! entry and applies all or none: apply checks every spec, name and the cap for the whole batch
//! against the state at its index, and a refusal names the spec at fault ([`ApplyError::Item`]).
//!
//! # Left out
//!
//! - Age-based retention runs when a command is applied ([`State::next_expiry`] tells the
//!   leader when to commit an empty one on an idle cluster).
//! - `fire_all` delivers at most [`state::MAX_CATCH_UP`] missed instants per outage, one claim at
//!   a time; a longer backlog is walked over several ticker rounds.

pub mod api;
pub mod command;
pub mod duration;
pub mod error;
pub mod fire;
pub mod job;
pub mod plan;
pub mod protocol;
pub mod retry;
pub mod state;

pub use command::{Assignment, Claim, Command, Completion, CreatedJob, DeadLetterSelector, Redispatch, Response};
pub use duration::HumanDuration;
pub use error::ApplyError;
pub use fire::{Attempt, Dispatch, Fire, FireKey, FireStatus, NodeId, ResultClass};
pub use job::{
    Headers, HistoryPolicy, HttpTarget, Job, JobSpec, JobUid, MisfireAction, MisfirePolicy, OverlapPolicy, RetryPolicy,
};
pub use plan::Due;
pub use state::tokens::{Role, Token};
pub use state::{Data, State};
