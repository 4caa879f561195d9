//! The limiter's fallback while Redis is unreachable: the same windows and markers as the
//! Lua script, in this process only.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Mode, Window};

/// Keys kept before the expired ones are swept.
const SWEEP_AT: usize = 100_000;

#[derive(Default)]
pub(super) struct Memory {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Attempt times (ms) per window key.
    hits: HashMap<String, Vec<u128>>,
    /// Expiry (ms) per "known client" marker.
    known: HashMap<String, u128>,
}

impl Memory {
    /// As the script: 0, or the milliseconds until every full window has room.
    pub(super) fn attempt(
        &self,
        mode: Mode,
        known: &str,
        keys: &[String],
        windows: &[Window],
        now: u128,
    ) -> u128 {
        let mut state = self.lock();
        state.sweep(now);
        let known = state.known.get(known).is_some_and(|until| *until > now);
        let mut wait = 0;
        for (key, window) in keys.iter().zip(windows) {
            let period = window.period.as_millis();
            let hits = state.hits.entry(key.clone()).or_default();
            hits.retain(|t| *t + period > now);
            let waived = known && window.waived_when_known;
            if mode != Mode::Add && !waived && hits.len() >= window.allowed as usize {
                let until = hits.first().map_or(1, |oldest| oldest + period - now);
                wait = wait.max(until);
            }
        }
        if wait > 0 || mode == Mode::Peek {
            return wait;
        }
        for key in keys {
            state.hits.entry(key.clone()).or_default().push(now);
        }
        0
    }

    pub(super) fn mark_known(&self, known: &str, until: u128) {
        self.lock().known.insert(known.to_owned(), until);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Bounds the memory: past [`SWEEP_AT`] keys, drops the windows whose last attempt is
    /// older than the longest period (an hour), and expired markers.
    fn sweep(&mut self, now: u128) {
        if self.hits.len() > SWEEP_AT {
            let longest = 3_600_000;
            self.hits
                .retain(|_, hits| hits.last().is_some_and(|t| *t + longest > now));
        }
        if self.known.len() > SWEEP_AT {
            self.known.retain(|_, until| *until > now);
        }
    }
}
