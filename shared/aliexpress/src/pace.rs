//! The app key's call pace shared by every process that calls AliExpress with it.
//!
//! AliExpress counts calls per app key, whichever Lambda makes them: a poller, its continuation,
//! manual syncs in the api function and placements may all run at once, each with its own
//! in-process [`Limiter`](crate::limiter). Alone, each would keep to the rate and together they
//! would exceed it. So call starts are also reserved from one shared schedule (a GCRA "next free
//! start" per app key, in the table): a process reserves `batch` consecutive starts `interval`
//! apart with one conditional write, then hands them out locally. Two reservations never
//! overlap, so the starts of all processes together stay `interval` apart whatever their number.
//!
//! A start that passed unused is never spent later (another process may hold the next ones):
//! the price of batching is at most `batch - 1` unused starts per process when it goes idle.
//!
//! When the shared schedule cannot be reached, calls **fail** (retryable), they are not sent
//! unpaced: every AliExpress result has to be written to the same table anyway, and calls sent
//! by many processes at once without the shared pace can draw an `ApiCallLimit` ban that stops
//! every process for its whole length.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{AeError, BoxFuture, StoreFailure};

/// The shared schedule: one "next free start" per app key.
pub trait PaceStore: Send + Sync {
    /// Reserves `count` consecutive call starts `interval_ms` apart for `app_key`, none before
    /// `now_ms`, and returns the first (ms epoch). Concurrent reservations never overlap.
    fn reserve<'a>(
        &'a self,
        app_key: &'a str,
        count: u32,
        interval_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<i64, StoreFailure>>;
}

/// A [`PaceStore`] in memory, with the same rule as the table's: for tests.
#[derive(Debug, Default)]
pub struct MemoryPaceStore {
    next: Mutex<HashMap<String, i64>>,
}

impl MemoryPaceStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl PaceStore for MemoryPaceStore {
    fn reserve<'a>(
        &'a self,
        app_key: &'a str,
        count: u32,
        interval_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<i64, StoreFailure>> {
        Box::pin(async move {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let slot = next.entry(app_key.to_owned()).or_insert(i64::MIN);
            let start = (*slot).max(now_ms);
            *slot = start.saturating_add(i64::from(count).saturating_mul(interval_ms));
            Ok(start)
        })
    }
}

/// The wall clock in ms epoch (what every process shares); tests give tokio's paused clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// One process's side of the shared pace: the starts it reserved and has not handed out.
pub(crate) struct SharedPacer {
    store: Arc<dyn PaceStore>,
    app_key: String,
    batch: u32,
    interval_ms: i64,
    clock: Clock,
    held: tokio::sync::Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    next_ms: i64,
    left: u32,
}

impl std::fmt::Debug for SharedPacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPacer")
            .field("app_key", &self.app_key)
            .field("batch", &self.batch)
            .field("interval_ms", &self.interval_ms)
            .finish_non_exhaustive()
    }
}

impl SharedPacer {
    pub fn new(
        store: Arc<dyn PaceStore>,
        app_key: String,
        batch: u32,
        interval: Duration,
        clock: Clock,
    ) -> Self {
        // Rounded up: a start never comes sooner than the local pace allows.
        let interval_ms = i64::try_from(interval.as_micros().div_ceil(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        Self {
            store,
            app_key,
            batch: batch.max(1),
            interval_ms,
            clock,
            held: tokio::sync::Mutex::new(Held::default()),
        }
    }

    /// How long from now this call must wait for its shared start (reserving a new batch when
    /// the held one is spent or its starts have passed).
    pub async fn wait(&self) -> Result<Duration, AeError> {
        let mut held = self.held.lock().await;
        let now = (self.clock)();
        while held.left > 0 && held.next_ms < now {
            held.next_ms += self.interval_ms;
            held.left -= 1;
        }
        if held.left == 0 {
            let start = self
                .store
                .reserve(&self.app_key, self.batch, self.interval_ms, now)
                .await
                .map_err(|e| {
                    tracing::warn!(app_key = %self.app_key, error = %e,
                        "the shared AliExpress pace is unavailable; the call is not sent");
                    AeError::Retryable("the shared call pace is unavailable".into())
                })?;
            held.next_ms = start;
            held.left = self.batch;
        }
        let at = held.next_ms;
        held.next_ms += self.interval_ms;
        held.left -= 1;
        let wait = at.saturating_sub((self.clock)()).max(0);
        Ok(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn paused_clock() -> Clock {
        let origin = Instant::now();
        Arc::new(move || 1_000_000 + i64::try_from(origin.elapsed().as_millis()).unwrap())
    }

    /// Four processes (four pacers, each with its own held batch) share one schedule; each
    /// makes 40 calls from 4 tasks. In every 1 s window of the paused clock, the calls of all
    /// of them together stay within the rate.
    #[tokio::test(start_paused = true)]
    async fn concurrent_processes_together_keep_to_the_app_keys_rate() {
        let store: Arc<dyn PaceStore> = Arc::new(MemoryPaceStore::new());
        let clock = paused_clock();
        let rate = 10.0;
        let interval = Duration::from_secs_f64(1.05 / rate);
        let starts = Arc::new(Mutex::new(Vec::new()));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let pacer = Arc::new(SharedPacer::new(
                store.clone(),
                "30000001".into(),
                5,
                interval,
                clock.clone(),
            ));
            for _ in 0..4 {
                let (pacer, starts, clock) = (pacer.clone(), starts.clone(), clock.clone());
                set.spawn(async move {
                    for _ in 0..10 {
                        let wait = pacer.wait().await.unwrap();
                        tokio::time::sleep(wait).await;
                        starts.lock().unwrap().push(clock());
                        // Some work between calls, uneven across tasks.
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
                    }
                });
            }
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        let mut starts = starts.lock().unwrap().clone();
        starts.sort_unstable();
        assert_eq!(starts.len(), 160);
        for (i, s) in starts.iter().enumerate() {
            let in_window = starts[i..].iter().take_while(|t| **t < s + 1000).count();
            assert!(
                in_window <= 10,
                "{in_window} calls in the second from {s} (limit 10)"
            );
        }
        // And they were paced, not starved: 160 calls at under 10/s take at least 16 s.
        assert!(starts[159] - starts[0] >= 15_000);
    }

    /// A store that cannot be reached: the call fails retryably and nothing is handed out.
    #[tokio::test(start_paused = true)]
    async fn an_unreachable_schedule_fails_the_call_rather_than_sending_it_unpaced() {
        struct Down;
        impl PaceStore for Down {
            fn reserve<'a>(
                &'a self,
                _: &'a str,
                _: u32,
                _: i64,
                _: i64,
            ) -> BoxFuture<'a, Result<i64, StoreFailure>> {
                Box::pin(async { Err(StoreFailure::new("unreachable")) })
            }
        }
        let pacer = SharedPacer::new(
            Arc::new(Down),
            "30000001".into(),
            5,
            Duration::from_millis(105),
            paused_clock(),
        );
        assert!(matches!(pacer.wait().await, Err(AeError::Retryable(_))));
    }

    /// One reservation serves `batch` calls: five calls cost one write.
    #[tokio::test(start_paused = true)]
    async fn a_batch_of_starts_costs_one_reservation() {
        struct Counting(MemoryPaceStore, std::sync::atomic::AtomicU32);
        impl PaceStore for Counting {
            fn reserve<'a>(
                &'a self,
                k: &'a str,
                c: u32,
                i: i64,
                n: i64,
            ) -> BoxFuture<'a, Result<i64, StoreFailure>> {
                self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.0.reserve(k, c, i, n)
            }
        }
        let store = Arc::new(Counting(
            MemoryPaceStore::new(),
            std::sync::atomic::AtomicU32::new(0),
        ));
        let pacer = SharedPacer::new(
            store.clone(),
            "30000001".into(),
            5,
            Duration::from_millis(105),
            paused_clock(),
        );
        for _ in 0..10 {
            let wait = pacer.wait().await.unwrap();
            tokio::time::sleep(wait).await;
        }
        assert_eq!(store.1.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
