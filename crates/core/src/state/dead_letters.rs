//! The dead-letter queue: requeue (one fire, or many at once) and purge. A requeued fire keeps
//! its key, so the target sees the same `Idempotency-Key`, and gets a fresh retry budget.

use chrono::{DateTime, Utc};

use super::State;
use crate::command::{DeadLetterSelector, Response, MAX_SELECTED_KEYS};
use crate::error::ApplyError;
use crate::fire::{FireKey, FireStatus};

impl State {
    /// Requeues one dead letter.
    pub(super) fn requeue(
        &mut self,
        key: &FireKey,
        now: DateTime<Utc>,
        by: Option<String>,
    ) -> Result<Response, ApplyError> {
        let seqs = self.select(&DeadLetterSelector { keys: Some(vec![key.clone()]), ..Default::default() })?;
        self.requeue_seqs(&seqs, now, by)?;
        Ok(Response::None)
    }

    /// Requeues every selected dead letter, or none when one of them cannot be.
    pub(super) fn requeue_selected(
        &mut self,
        select: &DeadLetterSelector,
        now: DateTime<Utc>,
        by: Option<String>,
    ) -> Result<Response, ApplyError> {
        let seqs = self.select(select)?;
        let keys = self.requeue_seqs(&seqs, now, by)?;
        Ok(Response::Fires { keys })
    }

    /// Forgets every selected dead letter.
    pub(super) fn purge_selected(&mut self, select: &DeadLetterSelector) -> Result<Response, ApplyError> {
        let seqs = self.select(select)?;
        let mut keys = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let Some(fire) = self.data.fires.get(&seq) else {
                continue;
            };
            let uid = fire.job_uid;
            keys.push(fire.key.clone());
            self.remove_fire(seq);
            self.prune_history(uid);
        }
        Ok(Response::Fires { keys })
    }

    /// The sequence numbers of the selected dead letters, oldest first. Named keys must all be
    /// dead letters: the whole command is refused otherwise, so it never half-applies.
    fn select(&self, select: &DeadLetterSelector) -> Result<Vec<u64>, ApplyError> {
        let given = usize::from(select.keys.is_some()) + usize::from(select.job.is_some()) + usize::from(select.all);
        if given != 1 {
            return Err(ApplyError::invalid("body", "give exactly one of keys, job or all: true"));
        }
        if let Some(keys) = &select.keys {
            if keys.is_empty() || keys.len() > MAX_SELECTED_KEYS {
                return Err(ApplyError::invalid("keys", format!("must name 1 to {MAX_SELECTED_KEYS} keys")));
            }
            let mut seqs = Vec::with_capacity(keys.len());
            for key in keys {
                let not_found = || ApplyError::NotFound { what: "execution".into(), name: key.0.clone() };
                let seq = *self.keys.get(key).ok_or_else(not_found)?;
                let status = self.data.fires.get(&seq).ok_or_else(not_found)?.status;
                if status != FireStatus::DeadLettered {
                    return Err(ApplyError::Conflict {
                        message: format!("execution {key} is {}, not dead_lettered", status.as_str()),
                    });
                }
                seqs.push(seq);
            }
            seqs.sort_unstable();
            seqs.dedup();
            return Ok(seqs);
        }
        if let Some(name) = &select.job {
            let job = self.data.jobs.get(name.as_str()).ok_or_else(|| ApplyError::job_not_found(name))?;
            return Ok(self
                .job_fires(job.uid)
                .filter(|f| f.status == FireStatus::DeadLettered)
                .map(|f| f.seq)
                .collect());
        }
        Ok(self.fires_with_status(FireStatus::DeadLettered).map(|f| f.seq).collect())
    }

    fn requeue_seqs(
        &mut self,
        seqs: &[u64],
        now: DateTime<Utc>,
        by: Option<String>,
    ) -> Result<Vec<FireKey>, ApplyError> {
        if let Some(orphan) =
            seqs.iter().filter_map(|seq| self.data.fires.get(seq)).find(|f| !self.names.contains_key(&f.job_uid))
        {
            return Err(ApplyError::Conflict { message: format!("the job of execution {} was deleted", orphan.key) });
        }
        let mut keys = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            let Some(mut fire) = self.data.fires.get(&seq).cloned() else {
                continue;
            };
            fire.status = FireStatus::Queued;
            fire.budget_base = fire.attempt;
            fire.budget_since = now;
            fire.finished_at = None;
            fire.note = Some(format!("requeued at {}", now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
            fire.requeued_by = by.clone();
            keys.push(fire.key.clone());
            self.replace_fire(seq, fire);
        }
        Ok(keys)
    }
}
