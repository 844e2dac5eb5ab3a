//! The ticker's backpressure (docs/DESIGN.md, "Backpressure"): how fast the workers have been
//! replying, and from that and what is outstanding, how many fires the leader may claim now
//! (`belfry_core::protocol::claim_budget`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use belfry_core::protocol::{self, Backlog};

use super::{Dispatcher, MAX_OUTSTANDING};

/// Whole seconds of replies the rate is taken over (the busiest of them).
const WINDOW_SECS: usize = 3;

/// Replies counted per second since the meter started.
pub struct ReplyRate {
    start: Instant,
    /// `(second, replies)` of the current second and up to [`WINDOW_SECS`] before it.
    seconds: Mutex<VecDeque<(u64, u32)>>,
}

impl ReplyRate {
    pub fn new() -> ReplyRate {
        ReplyRate { start: Instant::now(), seconds: Mutex::new(VecDeque::new()) }
    }

    fn second(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    /// Counts one reply.
    pub fn record(&self) {
        count(&mut self.seconds.lock().unwrap_or_else(|e| e.into_inner()), self.second());
    }

    /// Replies per second: the busiest of the last [`WINDOW_SECS`] whole seconds (the current
    /// one is not over), so the rate follows a worker that speeds up at once and one that slows
    /// down within the window.
    pub fn per_second(&self) -> f64 {
        f64::from(busiest(&self.seconds.lock().unwrap_or_else(|e| e.into_inner()), self.second()))
    }
}

/// Counts a reply in second `now`, forgetting seconds older than the window.
fn count(seconds: &mut VecDeque<(u64, u32)>, now: u64) {
    match seconds.back_mut() {
        Some((s, n)) if *s == now => *n = n.saturating_add(1),
        _ => seconds.push_back((now, 1)),
    }
    while seconds.front().is_some_and(|(s, _)| s.saturating_add(WINDOW_SECS as u64) < now) {
        seconds.pop_front();
    }
}

/// The most replies of one whole second in the window before `now`.
fn busiest(seconds: &VecDeque<(u64, u32)>, now: u64) -> u32 {
    let recent = |s: u64| s < now && s.saturating_add(WINDOW_SECS as u64) >= now;
    seconds.iter().filter(|(s, _)| recent(*s)).map(|(_, n)| *n).max().unwrap_or(0)
}

impl Dispatcher {
    /// How many fires the ticker may claim now.
    pub fn claim_budget(&self) -> usize {
        let workers = {
            let metrics = self.ctx.raft.metrics();
            let m = metrics.borrow();
            m.membership_config.membership().nodes().count().saturating_sub(1).max(1)
        };
        protocol::claim_budget(&Backlog {
            outstanding: self.outstanding(),
            replies_per_sec: self.reply_rate.per_second(),
            lease_secs: self.ctx.config.lease.as_secs_f64(),
            floor: self.ctx.config.max_concurrent_sends.saturating_mul(2).saturating_mul(workers),
            cap: MAX_OUTSTANDING,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_busiest_whole_second_of_the_window() {
        let mut seconds = VecDeque::new();
        assert_eq!(busiest(&seconds, 0), 0);
        for (second, replies) in [(0, 5), (1, 9), (2, 2), (3, 7), (4, 100)] {
            for _ in 0..replies {
                count(&mut seconds, second);
            }
        }
        assert_eq!(seconds.len(), WINDOW_SECS + 1, "older seconds are forgotten");
        assert_eq!(busiest(&seconds, 4), 9, "seconds 1, 2, 3: the current second 4 is not over");
        assert_eq!(busiest(&seconds, 5), 100);
        assert_eq!(busiest(&seconds, 9), 0, "nothing lately");
        assert_eq!(ReplyRate::new().per_second(), 0.0);
    }
}
