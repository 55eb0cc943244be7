//! The one rate limiter of a client: paced call starts plus bounded concurrency, and a shared
//! pause when AliExpress bans the app key.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::AeError;
use crate::pace::SharedPacer;

/// Calls start this much slower than the configured rate. The gateway counts calls in a sliding
/// 1-second window at *its* arrival times; with starts exactly `1/rate` apart, network jitter of a
/// millisecond is enough to land `rate + 1` calls inside one second about half the time.
const PACE_MARGIN: f64 = 1.05;

/// Call starts paced at most one per `interval` (a token bucket of size one: no bursts), at most
/// `max_concurrency` calls in flight, and a pause every caller honours.
#[derive(Debug)]
pub(crate) struct Limiter {
    interval: Duration,
    in_flight: Semaphore,
    state: Mutex<State>,
    /// The app key's pace shared with every other process, when there is one.
    shared: Option<SharedPacer>,
}

#[derive(Debug)]
struct State {
    /// The earliest start of the next call.
    next_start: Instant,
    /// No call starts before this (an `ApiCallLimit` ban plus jitter).
    paused_until: Instant,
    /// Calls fail at once before this (a ban too long to wait out in an invocation).
    refused_until: Instant,
}

/// Permission to send one call; hold it until the response is read.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
}

impl Limiter {
    /// `calls_per_second` must be positive and finite, `max_concurrency` at least 1 (the client
    /// checks its configuration).
    pub fn new(calls_per_second: f64, max_concurrency: usize) -> Self {
        let now = Instant::now();
        Self {
            interval: Duration::from_secs_f64(PACE_MARGIN / calls_per_second),
            in_flight: Semaphore::new(max_concurrency.max(1)),
            state: Mutex::new(State {
                next_start: now,
                paused_until: now,
                refused_until: now,
            }),
            shared: None,
        }
    }

    /// The pace between call starts (what the shared schedule reserves too).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Also takes every call start from the app key's shared schedule.
    pub fn with_shared(mut self, pacer: SharedPacer) -> Self {
        self.shared = Some(pacer);
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the state consistent, so a poisoned lock still holds good data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a concurrency permit, then for this call's start time.
    ///
    /// Start times are handed out in turn, `interval` apart and never inside a pause. A pause
    /// that begins while a caller waits voids its start time: it takes a new one after the pause.
    /// During a [`Limiter::refuse_for`] ban it fails at once with [`AeError::RateLimited`].
    pub async fn acquire(&self) -> Result<Slot<'_>, AeError> {
        self.check_refused()?;
        let permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| AeError::Retryable("the client's limiter was closed".into()))?;
        loop {
            let start = {
                let mut st = self.state();
                let start = Instant::now().max(st.next_start).max(st.paused_until);
                st.next_start = start + self.interval;
                start
            };
            let start = match &self.shared {
                Some(pacer) => start.max(Instant::now() + pacer.wait().await?),
                None => start,
            };
            tokio::time::sleep_until(start).await;
            self.check_refused()?;
            if self.state().paused_until <= Instant::now() {
                return Ok(Slot { _permit: permit });
            }
        }
    }

    fn check_refused(&self) -> Result<(), AeError> {
        let refused_until = self.state().refused_until;
        let now = Instant::now();
        if refused_until > now {
            return Err(AeError::RateLimited {
                ban: refused_until - now,
            });
        }
        Ok(())
    }

    /// Makes every call fail with [`AeError::RateLimited`] for `duration`, without sending: for
    /// bans too long to wait out (the orders are left for a later run).
    pub fn refuse_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut st = self.state();
        st.refused_until = st.refused_until.max(until);
    }

    /// Stops every caller from starting a call for `duration` (from now); later calls resume
    /// `interval` apart after it. Overlapping pauses extend, never shorten, each other.
    pub fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut st = self.state();
        st.paused_until = st.paused_until.max(until);
        st.next_start = st.next_start.max(st.paused_until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tokio's paused clock: the schedule is checked in virtual time, so a busy machine cannot make
    // it look late.
    #[tokio::test(start_paused = true)]
    async fn starts_are_spread_evenly_and_a_pause_holds_everyone() {
        let limiter = Limiter::new(100.0, 4);
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            let slot = limiter.acquire().await.unwrap();
            starts.push(Instant::now() - t0);
            drop(slot);
        }
        // The timer wakes at millisecond granularity; the schedule itself does not drift.
        let gap = Duration::from_secs_f64(PACE_MARGIN / 100.0);
        let tick = Duration::from_millis(2);
        for pair in starts.windows(2) {
            assert!(pair[1] - pair[0] + tick >= gap, "{starts:?}");
        }
        assert!(starts[4] - starts[0] + tick >= gap * 4, "{starts:?}");
        limiter.pause(Duration::from_millis(200));
        let before = Instant::now();
        let _slot = limiter.acquire().await.unwrap();
        assert!(Instant::now() - before >= Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_ban_fails_calls_at_once() {
        let limiter = Limiter::new(100.0, 4);
        limiter.refuse_for(Duration::from_secs(600));
        let started = Instant::now();
        assert!(matches!(
            limiter.acquire().await,
            Err(AeError::RateLimited { ban }) if ban > Duration::from_secs(590)
        ));
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "it must not wait for the ban"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded() {
        let limiter = Limiter::new(1000.0, 2);
        let a = limiter.acquire().await.unwrap();
        let _b = limiter.acquire().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(100), limiter.acquire()).await;
        assert!(third.is_err(), "a third call must wait for a permit");
        drop(a);
        assert!(limiter.acquire().await.is_ok());
    }
}
