//! Rate limits: failed sign-ins per account and per address, uploads and evaluation starts per
//! token. Sliding windows in memory (per process; a restart forgets them).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` events per `window` per key.
pub struct Window {
    limit: usize,
    window: Duration,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Window {
    pub fn new(limit: usize, window: Duration) -> Window {
        Window {
            limit,
            window,
            events: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when `key` has had `limit` events in the window already.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut events = self.events.lock().expect("rate limit lock");
        let Some(q) = events.get_mut(key) else {
            return Ok(());
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.limit {
            let oldest = *q.front().expect("non-empty");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    /// Counts one event for `key`.
    pub fn record(&self, key: &str) {
        let mut events = self.events.lock().expect("rate limit lock");
        if events.len() > 100_000 {
            // Bounded memory under a flood of distinct keys: forget the oldest state.
            events.clear();
        }
        events
            .entry(key.to_owned())
            .or_default()
            .push_back(Instant::now());
    }

    /// `check` then `record`.
    pub fn hit(&self, key: &str) -> Result<(), Duration> {
        self.check(key)?;
        self.record(key);
        Ok(())
    }

    pub fn clear(&self, key: &str) {
        self.events.lock().expect("rate limit lock").remove(key);
    }
}

/// The server's limits.
pub struct Limits {
    /// Failed sign-ins per account: 5 per 15 minutes.
    pub sign_in_account: Window,
    /// Failed sign-ins per address: 20 per 15 minutes.
    pub sign_in_address: Window,
    /// Uploads per token: 120 per hour.
    pub uploads: Window,
    /// Evaluation starts per token: 60 per hour.
    pub eval_starts: Window,
}

impl Default for Limits {
    fn default() -> Self {
        let quarter = Duration::from_secs(15 * 60);
        let hour = Duration::from_secs(3600);
        Limits {
            sign_in_account: Window::new(5, quarter),
            sign_in_address: Window::new(20, quarter),
            uploads: Window::new(120, hour),
            eval_starts: Window::new(60, hour),
        }
    }
}

/// "try again in 14 minutes".
pub fn wait_text(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    if minutes == 1 {
        "try again in a minute".into()
    } else {
        format!("try again in {minutes} minutes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_past_its_limit_per_key() {
        let w = Window::new(2, Duration::from_secs(60));
        assert!(w.hit("a").is_ok());
        assert!(w.hit("a").is_ok());
        assert!(w.hit("a").is_err());
        assert!(w.hit("b").is_ok());
        w.clear("a");
        assert!(w.hit("a").is_ok());
    }
}
