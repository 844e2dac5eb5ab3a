//! Pure verification of a chaos run: given what the runner did to the jobs (created, paused,
//! deleted, each with the time the request left and the time its answer came back) and what the
//! sinks received, compute over a window of due instants the fires lost, the unexpected ones,
//! the duplicates (and whether they share the first delivery's key), the worst gap in firing
//! and the fire lag.
//!
//! An operation's effect is only known to fall somewhere between its request and its answer;
//! instants in that span (widened by [`Rules::slack_ms`]) may or may not fire and are neither
//! required nor forbidden. A job whose creation got no answer is optional throughout.
//!
//! The jobs checked use misfire `fire_all`, so every instant is owed, including those that fell
//! due while the job was paused (delivered after the resume) or while there was no leader;
//! what a pause forbids is a fire due after it arriving before the resume.

use std::collections::{BTreeMap, BTreeSet};

/// When a job fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `every` with an anchor (`start_at`): `start_ms + k * period_ms`, k ≥ 0.
    Every {
        /// The first instant, unix ms.
        start_ms: i64,
        /// The period, ms.
        period_ms: i64,
    },
    /// A one-off instant, unix ms.
    At(i64),
}

/// A span of wall time known to contain an operation's effect: request sent, answer received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Request sent, unix ms.
    pub sent_ms: i64,
    /// Answer received, unix ms.
    pub acked_ms: i64,
}

/// One pause of a job and, when it happened, its resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// The pause request.
    pub pause: Span,
    /// The resume request, when the job was resumed.
    pub resume: Option<Span>,
}

/// Everything the runner did to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its name (`Belfry-Job`).
    pub name: String,
    /// Its uid, known when the creation was acknowledged.
    pub uid: Option<u64>,
    /// Its schedule.
    pub plan: Plan,
    /// The create request.
    pub created: Span,
    /// The delete request, when it was deleted.
    pub deleted: Option<Span>,
    /// Pauses, in order.
    pub pauses: Vec<Pause>,
}

/// One delivery a sink received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `Idempotency-Key`.
    pub key: String,
    /// `Belfry-Job`.
    pub job: String,
    /// `Belfry-Scheduled-At`, unix ms.
    pub scheduled_ms: i64,
    /// Arrival at the sink, unix ms.
    pub received_ms: i64,
}

/// Tolerances of the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How far around an operation's span its effect may reach (a fire claimed just before a
    /// pause still arrives just after it), ms.
    pub slack_ms: i64,
    /// The nodes' `--claim-ahead-ms`: a fire claimed that far ahead of its instant is in
    /// flight, so a delete acknowledged before the instant still lets it arrive ("in-flight
    /// fires finish", docs/DESIGN.md "Claiming ahead").
    pub claim_ahead_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { slack_ms: 2000, claim_ahead_ms: 1000 }
    }
}

/// What a due instant of a job must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// Must be delivered.
    Required,
    /// May be delivered or not.
    Optional,
    /// Must not be delivered.
    Forbidden,
}

/// The outcome over one window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Fires that had to be delivered in the window.
    pub expected: usize,
    /// Deliveries of instants in the window (duplicates included).
    pub delivered: usize,
    /// Keys of required fires never received.
    pub lost: Vec<String>,
    /// Deliveries that should not exist (unknown job, off the schedule, wrong key, due before
    /// the job existed or after it was deleted, sent while paused), each with the reason.
    pub unexpected: Vec<String>,
    /// Deliveries beyond the first of the same fire (job and instant).
    pub duplicates: usize,
    /// Whether every duplicate carried the key of the fire's first delivery.
    pub duplicates_same_key: bool,
    /// Longest time with no delivery arriving, between the first and last arrivals, ms.
    pub worst_gap_ms: i64,
    /// Median of arrival minus instant over first deliveries, ms (fires held back by a pause
    /// left out).
    pub lag_p50_ms: i64,
    /// 99th percentile of the same, ms.
    pub lag_p99_ms: i64,
}

impl Verdict {
    /// Lost and unexpected are zero, and duplicates are zero unless `allow_same_key_duplicates`,
    /// in which case every duplicate must share the first delivery's key.
    pub fn passes(&self, allow_same_key_duplicates: bool) -> bool {
        let dup_ok = self.duplicates == 0 || (allow_same_key_duplicates && self.duplicates_same_key);
        self.lost.is_empty() && self.unexpected.is_empty() && dup_ok
    }
}

impl JobRecord {
    /// Every instant of the plan in `[from_ms, to_ms)`.
    fn instants(&self, from_ms: i64, to_ms: i64) -> Vec<i64> {
        match self.plan {
            Plan::At(t) => (from_ms..to_ms).contains(&t).then_some(t).into_iter().collect(),
            Plan::Every { start_ms, period_ms } => {
                let first = if from_ms <= start_ms {
                    start_ms
                } else {
                    start_ms + (from_ms - start_ms + period_ms - 1) / period_ms * period_ms
                };
                (0..).map(|k| first + k * period_ms).take_while(|t| *t < to_ms).collect()
            }
        }
    }

    /// Whether `t` is an instant of the plan at all.
    fn on_plan(&self, t: i64) -> bool {
        match self.plan {
            Plan::At(at) => t == at,
            Plan::Every { start_ms, period_ms } => t >= start_ms && (t - start_ms) % period_ms == 0,
        }
    }

    /// What the instant `t` (on the plan) must do.
    fn due(&self, t: i64, rules: &Rules) -> Due {
        let s = rules.slack_ms;
        let mut due = if self.uid.is_none() || t <= self.created.acked_ms + s {
            // Unacknowledged, or the instant was due around the creation itself.
            if t < self.created.sent_ms {
                Due::Forbidden
            } else {
                Due::Optional
            }
        } else {
            Due::Required
        };
        if let Some(d) = self.deleted {
            if t > d.acked_ms + rules.claim_ahead_ms {
                due = Due::Forbidden;
            } else if t >= d.sent_ms - s && due == Due::Required {
                due = Due::Optional;
            }
        }
        due
    }

    /// Whether the fire of instant `t`, arriving at `received_ms`, was sent while the job was
    /// surely paused. A fire claimed before the pause may still be in flight, even across a
    /// failover; one due after it may only come after the resume.
    fn arrived_while_paused(&self, t: i64, received_ms: i64, rules: &Rules) -> bool {
        self.pauses.iter().any(|p| {
            let to = p.resume.map_or(i64::MAX, |r| r.sent_ms);
            t > p.pause.acked_ms + rules.slack_ms && received_ms < to
        })
    }

    /// Whether instant `t` fell due while the job was paused (its fire is late by design).
    fn held_by_pause(&self, t: i64) -> bool {
        self.pauses.iter().any(|p| t > p.pause.sent_ms && p.resume.is_none_or(|r| t < r.acked_ms))
    }

    /// The key belfry gives the fire of instant `t`.
    fn key(&self, t: i64) -> Option<String> {
        self.uid.map(|uid| format!("{uid}:{t}"))
    }
}

/// Checks the fires due in `[from_ms, to_ms)` against what was received.
pub fn verify(jobs: &[JobRecord], received: &[Delivery], from_ms: i64, to_ms: i64, rules: &Rules) -> Verdict {
    let by_name: BTreeMap<&str, &JobRecord> = jobs.iter().map(|j| (j.name.as_str(), j)).collect();
    let mut v = Verdict { duplicates_same_key: true, ..Verdict::default() };

    // Deliveries of the window, grouped by fire (job, instant), in arrival order.
    let mut in_window: Vec<&Delivery> =
        received.iter().filter(|d| (from_ms..to_ms).contains(&d.scheduled_ms)).collect();
    in_window.sort_by_key(|d| d.received_ms);
    v.delivered = in_window.len();
    let mut fires: BTreeMap<(&str, i64), Vec<&Delivery>> = BTreeMap::new();
    for d in &in_window {
        fires.entry((d.job.as_str(), d.scheduled_ms)).or_default().push(d);
    }

    let mut lags = Vec::with_capacity(fires.len());
    for ((name, t), ds) in &fires {
        let first = ds[0];
        let held = by_name.get(name).is_some_and(|j| j.held_by_pause(*t));
        if !held {
            lags.push(first.received_ms - t);
        }
        if ds.len() > 1 {
            v.duplicates += ds.len() - 1;
            if ds.iter().any(|d| d.key != first.key) {
                v.duplicates_same_key = false;
            }
        }
        let Some(job) = by_name.get(name) else {
            v.unexpected.push(format!("{}: unknown job {name}", first.key));
            continue;
        };
        if !job.on_plan(*t) {
            v.unexpected.push(format!("{}: {t} is not an instant of {name}", first.key));
            continue;
        }
        if job.due(*t, rules) == Due::Forbidden {
            v.unexpected.push(format!("{}: {name} did not exist at {t}", first.key));
        }
        if let Some(key) = job.key(*t) {
            if let Some(d) = ds.iter().find(|d| d.key != key) {
                v.unexpected.push(format!("{}: {name} at {t} should carry key {key}", d.key));
            }
        }
        if let Some(d) = ds.iter().find(|d| job.arrived_while_paused(*t, d.received_ms, rules)) {
            v.unexpected.push(format!("{}: {name} delivered at {} while paused", d.key, d.received_ms));
        }
    }

    let delivered: BTreeSet<(&str, i64)> = fires.keys().copied().collect();
    for job in jobs {
        for t in job.instants(from_ms, to_ms) {
            if job.due(t, rules) != Due::Required {
                continue;
            }
            v.expected += 1;
            if !delivered.contains(&(job.name.as_str(), t)) {
                v.lost.push(job.key(t).unwrap_or_else(|| format!("{}@{t}", job.name)));
            }
        }
    }

    v.worst_gap_ms = in_window.windows(2).map(|w| w[1].received_ms - w[0].received_ms).max().unwrap_or(0);
    lags.sort_unstable();
    v.lag_p50_ms = percentile(&lags, 50);
    v.lag_p99_ms = percentile(&lags, 99);
    v
}

/// The `p`th percentile (nearest rank) of sorted values; 0 when empty.
pub fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn every(name: &str, uid: u64) -> JobRecord {
        JobRecord {
            name: name.into(),
            uid: Some(uid),
            plan: Plan::Every { start_ms: S, period_ms: 1000 },
            created: Span { sent_ms: S - 3000, acked_ms: S - 2900 },
            deleted: None,
            pauses: vec![],
        }
    }

    fn got(job: &JobRecord, t: i64, lag: i64) -> Delivery {
        Delivery {
            key: format!("{}:{t}", job.uid.unwrap()),
            job: job.name.clone(),
            scheduled_ms: t,
            received_ms: t + lag,
        }
    }

    fn all(job: &JobRecord, n: i64, lag: i64) -> Vec<Delivery> {
        (0..n).map(|k| got(job, S + k * 1000, lag)).collect()
    }

    #[test]
    fn every_instant_delivered_once_passes_with_its_lag() {
        let a = every("a", 1);
        let mut d = all(&a, 10, 20);
        d[3].received_ms += 80; // lag 100 on one fire
        let v = verify(&[a], &d, S, S + 10_000, &Rules::default());
        assert_eq!((v.expected, v.delivered, v.duplicates), (10, 10, 0));
        assert!(v.lost.is_empty() && v.unexpected.is_empty(), "{v:?}");
        assert_eq!((v.lag_p50_ms, v.lag_p99_ms), (20, 100));
        assert_eq!(v.worst_gap_ms, 1000 + 80);
        assert!(v.passes(false));
    }

    #[test]
    fn a_missing_instant_is_lost_and_fails() {
        let a = every("a", 7);
        let mut d = all(&a, 10, 5);
        d.remove(4);
        let v = verify(&[a], &d, S, S + 10_000, &Rules::default());
        assert_eq!(v.lost, vec![format!("7:{}", S + 4000)]);
        assert_eq!(v.worst_gap_ms, 2000);
        assert!(!v.passes(true));
    }

    #[test]
    fn window_edges_are_half_open() {
        let a = every("a", 1);
        let d = all(&a, 3, 5); // S, S+1000, S+2000
        let v = verify(std::slice::from_ref(&a), &d, S + 1000, S + 2000, &Rules::default());
        assert_eq!((v.expected, v.delivered), (1, 1));
        // An instant at the window's end belongs to the next window: not lost here.
        let v = verify(&[a], &d[..2], S, S + 2000, &Rules::default());
        assert!(v.passes(false), "{v:?}");
    }

    #[test]
    fn duplicates_are_counted_and_their_keys_compared() {
        let a = every("a", 1);
        let mut d = all(&a, 5, 5);
        d.push(got(&a, S + 2000, 3000));
        let v = verify(std::slice::from_ref(&a), &d, S, S + 5000, &Rules::default());
        assert_eq!(v.duplicates, 1);
        assert!(v.duplicates_same_key);
        assert!(!v.passes(false));
        assert!(v.passes(true));

        let mut other = got(&a, S + 1000, 3000);
        other.key = "99:123".into();
        d.push(other);
        let v = verify(&[a], &d, S, S + 5000, &Rules::default());
        assert_eq!(v.duplicates, 2);
        assert!(!v.duplicates_same_key);
        assert!(!v.passes(true));
    }

    #[test]
    fn off_schedule_unknown_and_wrong_key_deliveries_are_unexpected() {
        let a = every("a", 1);
        let mut d = all(&a, 3, 5);
        d.push(Delivery { key: "1:1000500".into(), job: "a".into(), scheduled_ms: S + 500, received_ms: S + 600 });
        d.push(Delivery {
            key: "5:1001000".into(),
            job: "ghost".into(),
            scheduled_ms: S + 1000,
            received_ms: S + 1001,
        });
        d[0].key = "2:1000000".into();
        let v = verify(&[a], &d, S, S + 3000, &Rules::default());
        assert_eq!(v.unexpected.len(), 3, "{:?}", v.unexpected);
        assert!(!v.passes(true));
    }

    #[test]
    fn instants_after_a_delete_are_forbidden_and_those_around_it_optional() {
        let mut a = every("a", 1);
        a.deleted = Some(Span { sent_ms: S + 5100, acked_ms: S + 5200 });
        // Delivered up to S+3000; S+4000 and S+5000 are within the slack before the delete.
        let d = all(&a, 4, 5);
        let v = verify(std::slice::from_ref(&a), &d, S, S + 10_000, &Rules::default());
        assert_eq!(v.expected, 4, "S..=S+3000 were due well before the delete");
        assert!(v.passes(false), "{v:?}");
        // S+6000 may have been claimed ahead before the delete (1 s window): it may arrive.
        let claimed_ahead = got(&a, S + 6000, 5);
        let v = verify(
            std::slice::from_ref(&a),
            &[d.clone(), vec![claimed_ahead]].concat(),
            S,
            S + 10_000,
            &Rules::default(),
        );
        assert!(v.unexpected.is_empty(), "{:?}", v.unexpected);
        // S+7000 fell due past the delete and the claim-ahead window: it may not.
        let late = got(&a, S + 7000, 5);
        let v = verify(&[a], &[d, vec![late]].concat(), S, S + 10_000, &Rules::default());
        assert_eq!(v.unexpected.len(), 1);
    }

    #[test]
    fn arrivals_while_paused_are_unexpected_and_instants_are_still_owed() {
        let mut a = every("a", 1);
        a.pauses = vec![Pause {
            pause: Span { sent_ms: S + 1500, acked_ms: S + 1600 },
            resume: Some(Span { sent_ms: S + 8000, acked_ms: S + 8100 }),
        }];
        // Paused instants S+2000..S+7000 are delivered as catch-up after the resume.
        let mut d: Vec<Delivery> = (0..2).map(|k| got(&a, S + k * 1000, 5)).collect();
        d.extend((2..10).map(|k| Delivery { received_ms: S + 8200 + k, ..got(&a, S + k * 1000, 0) }));
        let v = verify(std::slice::from_ref(&a), &d, S, S + 10_000, &Rules::default());
        assert!(v.passes(false), "{v:?}");
        assert_eq!(v.lag_p99_ms, 5, "fires held by the pause are left out of the lag");
        // A fire due before the pause may arrive during it (still in flight).
        d[1].received_ms = S + 5000;
        let v = verify(std::slice::from_ref(&a), &d, S, S + 10_000, &Rules::default());
        assert!(v.passes(false), "{v:?}");
        // One due during the pause and arriving before the resume is not.
        d[4].received_ms = S + 5000;
        let v = verify(std::slice::from_ref(&a), &d, S, S + 10_000, &Rules::default());
        assert_eq!(v.unexpected.len(), 1, "{v:?}");
        // Nor is missing one of the owed instants.
        d.remove(4);
        let v = verify(&[a], &d, S, S + 10_000, &Rules::default());
        assert_eq!(v.lost.len(), 1);
    }

    #[test]
    fn unacknowledged_jobs_are_optional_and_one_offs_fire_once() {
        let mut maybe = every("maybe", 3);
        maybe.uid = None;
        let once = JobRecord {
            name: "once".into(),
            uid: Some(4),
            plan: Plan::At(S + 1500),
            created: Span { sent_ms: S - 3000, acked_ms: S - 2900 },
            deleted: None,
            pauses: vec![],
        };
        let d = vec![Delivery {
            key: "3:1001000".into(),
            job: "maybe".into(),
            scheduled_ms: S + 1000,
            received_ms: S + 1001,
        }];
        let v = verify(&[maybe.clone(), once.clone()], &d, S, S + 5000, &Rules::default());
        assert_eq!(v.expected, 1);
        assert_eq!(v.lost, vec![format!("4:{}", S + 1500)]);
        let d2 = vec![got(&once, S + 1500, 30)];
        let v = verify(&[maybe, once], &d2, S, S + 5000, &Rules::default());
        assert!(v.passes(false), "{v:?}");
    }

    #[test]
    fn instants_before_a_creation_are_forbidden() {
        let mut a = every("a", 1);
        a.created = Span { sent_ms: S + 2500, acked_ms: S + 2600 };
        let d = all(&a, 6, 5);
        let v = verify(&[a], &d, S, S + 6000, &Rules::default());
        // S, S+1000, S+2000 precede the request; S+3000, S+4000 are within the slack.
        assert_eq!(v.unexpected.len(), 3, "{:?}", v.unexpected);
        assert_eq!(v.expected, 1);
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(percentile(&[7], 99), 7);
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!((percentile(&v, 50), percentile(&v, 99), percentile(&v, 100)), (50, 99, 100));
    }
}
