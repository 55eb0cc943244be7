//! A per-shop picture of Shopify's cost bucket, so a busy shop stays inside its bucket instead of
//! bouncing off THROTTLED.
//!
//! Shopify runs a query only when the bucket holds its *requested* cost, charges that, and refunds
//! the unused part afterwards. Every answer reports the bucket (`throttleStatus`); between answers
//! it refills at `restoreRate`. Before each request the limiter estimates what is free now, and
//! waits until that covers the document's expected cost (the last `requestedQueryCost` seen for
//! it, or its static estimate). What a request reserves stays reserved until its own answer: a
//! reading that comes back meanwhile (another request's) may have been taken before Shopify
//! charged it, so the requests still out are subtracted from every reading.
//!
//! The state is per process and shared by every concurrent push of the instance. Other instances
//! (concurrent Lambdas) spend the same bucket unseen, so the limiter also learns how fast the
//! bucket drains beyond its own spending (the gap between what a reading should have shown and
//! what it shows), counts only the rest of the refill as its own, and then keeps a small margin
//! above the document's cost. That keeps THROTTLED answers rare without any shared store; the
//! client still retries the few that happen.

use super::documents::Operation;
use super::wire::ThrottleStatus;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
// tokio's clock, so the waits follow a paused test clock too.
use tokio::time::Instant;

/// While the first request to a shop is out (its bucket unknown), others re-check at least this
/// often (they are also woken when it ends).
const PROBE_POLL: Duration = Duration::from_millis(50);
/// How long others hold back for that first answer before going anyway.
const PROBE_WAIT_CAP: Duration = Duration::from_secs(3);
/// Longest single sleep: the estimate is re-read after it, since readings may have arrived.
const MAX_SLEEP_SLICE: Duration = Duration::from_secs(2);
/// After this much waiting a request goes anyway: Shopify's THROTTLED answer and the client's
/// bounded retries then decide, rather than a Lambda waiting out its whole timeout here.
const MAX_TOTAL_WAIT: Duration = Duration::from_secs(30);
/// Wait used when a reading has no usable restore rate.
const NO_RATE_WAIT: Duration = Duration::from_secs(1);
/// Readings closer together than this say too little about the others' spending.
const MIN_DRAIN_INTERVAL: Duration = Duration::from_millis(50);
/// How fast the estimate of the others' spending fades without readings (time constant).
const DRAIN_FADE: Duration = Duration::from_secs(2);
/// Weight of the newest sample in the others' spending rate (a moving average).
const DRAIN_WEIGHT: f64 = 0.3;
/// The share of the refill this instance always counts as its own, however busy the others are.
const MIN_OWN_SHARE: f64 = 0.1;
/// Margin kept above a document's cost while others spend the bucket: this share of the bucket
/// absorbs what they spend between two readings beyond their average.
const SHARED_MARGIN: f64 = 0.05;

/// The bucket as last reported, plus local reservations since.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reading {
    pub maximum: f64,
    pub available: f64,
    pub restore_rate: f64,
    pub at: Instant,
    /// Points per second others are estimated to take from the refill, as of `observed`.
    pub drain: f64,
    /// When the reading arrived: the drain estimate fades after it (see [`Reading::own_rate`]).
    pub observed: Instant,
}

impl Reading {
    /// Points free for this instance at `now`: the reading refilled at what the others leave
    /// of `restore_rate`, up to the bucket size.
    pub(crate) fn available_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.available + elapsed * self.own_rate(now)).min(self.maximum)
    }

    /// The others' spending rate at `now`. It fades while no reading arrives: with every
    /// instance holding back, nobody would otherwise learn that the others have stopped.
    fn drain_at(&self, now: Instant) -> f64 {
        let silent = now.saturating_duration_since(self.observed).as_secs_f64();
        self.drain * (-silent / DRAIN_FADE.as_secs_f64()).exp()
    }

    /// The refill rate left for this instance.
    fn own_rate(&self, now: Instant) -> f64 {
        (self.restore_rate - self.drain_at(now)).max(self.restore_rate * MIN_OWN_SHARE)
    }

    /// The points to wait for: the cost, plus a margin while others share the bucket.
    fn threshold(&self, need: f64) -> f64 {
        let margin = if self.drain > 0.0 {
            self.maximum * SHARED_MARGIN
        } else {
            0.0
        };
        (need + margin).min(self.maximum).max(0.0)
    }
}

/// How long until `need` points are free (`None`: now). A need above the bucket size is capped
/// at the size: waiting longer would never help.
pub(crate) fn wait_for(reading: &Reading, need: f64, now: Instant) -> Option<Duration> {
    let need = reading.threshold(need);
    let available = reading.available_at(now);
    if available >= need {
        return None;
    }
    let rate = reading.own_rate(now);
    if !(rate.is_finite() && rate > 0.0) {
        return Some(NO_RATE_WAIT);
    }
    let secs = (need - available) / rate;
    Some(Duration::from_secs_f64(
        secs.clamp(0.0, MAX_TOTAL_WAIT.as_secs_f64()),
    ))
}

#[derive(Debug, Default)]
struct ShopState {
    reading: Option<Reading>,
    /// When the last reading arrived (reservations move `reading.at`, not this).
    observed_at: Option<Instant>,
    /// A request is out while the bucket is unknown: the others wait for its reading rather
    /// than all rushing a bucket that may be nearly empty (a cold Lambda with a full batch).
    probing: bool,
    /// Points reserved by this instance's requests that are out and not answered yet.
    in_flight: f64,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision {
    Go { probe: bool },
    Wait(Duration),
}

/// The limiter: shop → bucket state, and document → last requested cost.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    shops: Mutex<HashMap<String, ShopState>>,
    costs: Mutex<HashMap<&'static str, f64>>,
    /// Document → last `actualQueryCost`: what a request really takes from the bucket once
    /// Shopify has refunded the unused part of its requested cost.
    charges: Mutex<HashMap<&'static str, f64>>,
    /// Wakes waiters when a reading arrives or a probe ends: a waiter's sleep was computed from
    /// the local estimate (which counts reservations Shopify may since have refunded), so a
    /// fresh reading usually means it can go sooner.
    changed: tokio::sync::Notify,
}

/// A poisoned lock only means another task panicked mid-update of plain numbers; the numbers
/// are still usable estimates, so carry on rather than propagate the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held while a request is out; releases its reservation and ends the probe when dropped,
/// whatever the outcome.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    limiter: &'a Limiter,
    shop: String,
    probe: bool,
    reserved: f64,
}

impl Permit<'_> {
    /// The request's answer is here: its cost is no longer out (the answer's reading, observed
    /// next, shows what Shopify charged), though the probe lasts until the permit is dropped.
    pub(crate) fn answered(&mut self) {
        self.limiter.unreserve(&self.shop, self.reserved);
        self.reserved = 0.0;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.answered();
        if self.probe
            && let Some(state) = lock(&self.limiter.shops).get_mut(&self.shop)
        {
            state.probing = false;
        }
        if self.probe {
            self.limiter.changed.notify_waiters();
        }
    }
}

impl Limiter {
    /// The cost to make room for: the last `requestedQueryCost` Shopify reported for this
    /// document, else its static estimate.
    pub(crate) fn expected_cost(&self, op: &Operation) -> f64 {
        lock(&self.costs)
            .get(op.name)
            .copied()
            .unwrap_or(f64::from(op.expected_cost))
    }

    /// What a request of `op` is expected to take from the bucket: its last actual cost, else
    /// its requested cost.
    pub(crate) fn expected_charge(&self, op: &Operation) -> f64 {
        lock(&self.charges)
            .get(op.name)
            .copied()
            .unwrap_or_else(|| self.expected_cost(op))
    }

    /// One decision step, separated from the sleeping so it can be tested with a fake clock.
    #[cfg(test)]
    pub(crate) fn decide(
        &self,
        shop: &str,
        need: f64,
        now: Instant,
        waited_long: bool,
    ) -> Decision {
        self.decide_charging(shop, need, need, now, waited_long)
    }

    /// [`Limiter::decide`] for a request that needs `need` points free to run and is expected
    /// to keep `charge` of them: it waits for the first and reserves the second.
    #[cfg(test)]
    pub(crate) fn decide_charging(
        &self,
        shop: &str,
        need: f64,
        charge: f64,
        now: Instant,
        waited_long: bool,
    ) -> Decision {
        self.decide_reserving(shop, need, charge, now, waited_long)
            .0
    }

    /// One decision step for a request that needs `need` points free to run and is expected to
    /// keep `charge` of them (it waits for the first and reserves the second): the decision,
    /// and the points a `Go` reserved, to release on its answer.
    fn decide_reserving(
        &self,
        shop: &str,
        need: f64,
        charge: f64,
        now: Instant,
        waited_long: bool,
    ) -> (Decision, f64) {
        let mut shops = lock(&self.shops);
        let state = shops.entry(shop.to_owned()).or_default();
        match state.reading.as_mut() {
            None if state.probing && !waited_long => (Decision::Wait(PROBE_POLL), 0.0),
            None if state.probing => (Decision::Go { probe: false }, 0.0),
            None => {
                state.probing = true;
                (Decision::Go { probe: true }, 0.0)
            }
            Some(r) => match wait_for(r, need, now) {
                Some(d) if !waited_long => (Decision::Wait(d), 0.0),
                _ => {
                    // Reserve: the points count as taken until this request's answer.
                    let reserved = charge.min(need).min(r.maximum).max(0.0);
                    r.available = r.available_at(now) - reserved;
                    r.at = now;
                    state.in_flight += reserved;
                    (Decision::Go { probe: false }, reserved)
                }
            },
        }
    }

    /// Waits until `op`'s expected cost fits the shop's estimated bucket, and reserves it.
    pub(crate) async fn acquire(&self, shop: &str, op: &Operation) -> Permit<'_> {
        let need = self.expected_cost(op);
        let charge = self.expected_charge(op);
        let started = Instant::now();
        loop {
            // Registered before the state is read, so a reading that lands between the decision
            // and the sleep still wakes this waiter.
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let waited = now.saturating_duration_since(started);
            let cap = if self.bucket_known(shop) {
                MAX_TOTAL_WAIT
            } else {
                PROBE_WAIT_CAP
            };
            match self.decide_reserving(shop, need, charge, now, waited >= cap) {
                (Decision::Go { probe }, reserved) => {
                    if !waited.is_zero() {
                        tracing::debug!(
                            shop,
                            operation = op.name,
                            waited_ms = waited.as_millis() as u64,
                            "waited for the shop's cost bucket"
                        );
                    }
                    return Permit {
                        limiter: self,
                        shop: shop.to_owned(),
                        probe,
                        reserved,
                    };
                }
                (Decision::Wait(d), _) => {
                    tokio::select! {
                        () = tokio::time::sleep(d.min(MAX_SLEEP_SLICE)) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }

    fn bucket_known(&self, shop: &str) -> bool {
        lock(&self.shops)
            .get(shop)
            .is_some_and(|s| s.reading.is_some())
    }

    /// Ends a request's reservation (see [`Permit::answered`]).
    fn unreserve(&self, shop: &str, reserved: f64) {
        if reserved > 0.0
            && let Some(state) = lock(&self.shops).get_mut(shop)
        {
            state.in_flight = (state.in_flight - reserved).max(0.0);
        }
    }

    /// Takes a `throttleStatus` reading as the truth about the shop's bucket at `now`, less what
    /// this instance's requests still out have reserved (Shopify may not have charged them yet).
    pub(crate) fn observe(&self, shop: &str, status: &ThrottleStatus, now: Instant) {
        let sane = |x: f64| x.is_finite() && x >= 0.0;
        if !(sane(status.maximum_available)
            && sane(status.currently_available)
            && sane(status.restore_rate))
        {
            return;
        }
        let mut shops = lock(&self.shops);
        let state = shops.entry(shop.to_owned()).or_default();
        let reported = status.currently_available.min(status.maximum_available);
        let available = reported - state.in_flight;
        let drain = match (state.reading, state.observed_at) {
            (Some(prev), Some(observed_at)) => {
                drain_estimate(&prev, observed_at, status, reported, available, now)
            }
            _ => 0.0,
        };
        state.observed_at = Some(now);
        state.reading = Some(Reading {
            maximum: status.maximum_available,
            available,
            restore_rate: status.restore_rate,
            at: now,
            drain,
            observed: now,
        });
        drop(shops);
        self.changed.notify_waiters();
    }

    /// Remembers the document's real requested cost (it can differ from the estimate if
    /// Shopify's calculator changes).
    pub(crate) fn record_cost(&self, op: &Operation, requested: f64) {
        if requested.is_finite() && requested >= 0.0 {
            lock(&self.costs).insert(op.name, requested);
        }
    }

    /// Remembers what the document was really charged (throttled answers are charged nothing
    /// and are not recorded).
    pub(crate) fn record_charge(&self, op: &Operation, actual: f64) {
        if actual.is_finite() && actual > 0.0 {
            lock(&self.charges).insert(op.name, actual);
        }
    }
}

/// The others' spending rate after a new reading: what the previous reading (less this
/// instance's reservations since) plus the full refill predicted, minus what Shopify reports
/// (`reported`; `available` is that less this instance's requests still out), over the time
/// between the readings, folded into the moving average. A full bucket says nothing about
/// spending, so the estimate then decays.
fn drain_estimate(
    prev: &Reading,
    observed_at: Instant,
    status: &ThrottleStatus,
    reported: f64,
    available: f64,
    now: Instant,
) -> f64 {
    let interval = now.saturating_duration_since(observed_at);
    if interval < MIN_DRAIN_INTERVAL {
        return prev.drain;
    }
    let since_reservation = now.saturating_duration_since(prev.at).as_secs_f64();
    let predicted = prev.available + since_reservation * status.restore_rate;
    if predicted >= status.maximum_available || reported >= status.maximum_available {
        return prev.drain * (1.0 - DRAIN_WEIGHT);
    }
    let sample = ((predicted - available) / interval.as_secs_f64()).max(0.0);
    let estimate = prev.drain * (1.0 - DRAIN_WEIGHT) + sample * DRAIN_WEIGHT;
    estimate.clamp(0.0, status.restore_rate)
}

#[cfg(test)]
mod tests {
    use super::super::documents::OP_ORDER_FULFILLMENT_STATE as OP;
    use super::*;

    fn reading(available: f64, at: Instant) -> Reading {
        Reading {
            maximum: 50.0,
            available,
            restore_rate: 10.0,
            at,
            drain: 0.0,
            observed: at,
        }
    }

    fn status(available: f64) -> ThrottleStatus {
        ThrottleStatus {
            maximum_available: 50.0,
            currently_available: available,
            restore_rate: 10.0,
        }
    }

    #[test]
    fn the_wait_is_the_missing_points_over_the_restore_rate() {
        let t0 = Instant::now();
        let r = reading(10.0, t0);
        assert_eq!(wait_for(&r, 40.0, t0), Some(Duration::from_secs(3)));
        // Two seconds later 20 points have come back.
        assert_eq!(
            wait_for(&r, 40.0, t0 + Duration::from_secs(2)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(wait_for(&r, 40.0, t0 + Duration::from_secs(3)), None);
        assert_eq!(wait_for(&r, 10.0, t0), None);
    }

    #[test]
    fn the_estimate_never_exceeds_the_bucket_and_a_need_above_it_is_capped() {
        let t0 = Instant::now();
        let r = reading(0.0, t0);
        assert_eq!(r.available_at(t0 + Duration::from_secs(3600)), 50.0);
        // 153 points can never be free in a 50-point bucket: wait for a full bucket instead.
        assert_eq!(wait_for(&r, 153.0, t0), Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_reading_without_a_restore_rate_waits_a_second() {
        let t0 = Instant::now();
        let r = Reading {
            restore_rate: 0.0,
            ..reading(0.0, t0)
        };
        assert_eq!(wait_for(&r, 10.0, t0), Some(NO_RATE_WAIT));
    }

    #[test]
    fn the_first_request_probes_and_the_others_wait_for_its_reading() {
        let l = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(
            l.decide("a.myshopify.com", 30.0, t0, false),
            Decision::Go { probe: true }
        );
        assert_eq!(
            l.decide("a.myshopify.com", 30.0, t0, false),
            Decision::Wait(PROBE_POLL)
        );
        // Other shops are not held back.
        assert_eq!(
            l.decide("b.myshopify.com", 30.0, t0, false),
            Decision::Go { probe: true }
        );
        // Waited too long for the probe: go anyway.
        assert_eq!(
            l.decide("a.myshopify.com", 30.0, t0, true),
            Decision::Go { probe: false }
        );
    }

    #[test]
    fn requests_reserve_their_cost_until_they_are_answered() {
        let l = Limiter::default();
        let t0 = Instant::now();
        l.observe("a.myshopify.com", &status(50.0), t0);
        assert_eq!(
            l.decide("a.myshopify.com", 30.0, t0, false),
            Decision::Go { probe: false }
        );
        // 20 left: the next 30-point request waits 1 s for 10 more.
        assert_eq!(
            l.decide("a.myshopify.com", 30.0, t0, false),
            Decision::Wait(Duration::from_secs(1))
        );
        // The answer refunds most of the cost: its reading replaces the reservation.
        l.unreserve("a.myshopify.com", 30.0);
        l.observe("a.myshopify.com", &status(48.0), t0);
        assert_eq!(
            l.decide("a.myshopify.com", 30.0, t0, false),
            Decision::Go { probe: false }
        );
    }

    #[test]
    fn a_reading_taken_before_a_request_was_charged_does_not_forget_it() {
        let l = Limiter::default();
        let t0 = Instant::now();
        l.observe("a.myshopify.com", &status(50.0), t0);
        // Two requests out at once: 10 points each.
        for _ in 0..2 {
            assert_eq!(
                l.decide("a.myshopify.com", 10.0, t0, false),
                Decision::Go { probe: false }
            );
        }
        // The first one's answer shows only its own charge: 40 left by Shopify's count, but the
        // second request is still out, so 30 are free for a third.
        l.unreserve("a.myshopify.com", 10.0);
        l.observe("a.myshopify.com", &status(40.0), t0);
        assert_eq!(
            l.decide("a.myshopify.com", 30.0, t0, false),
            Decision::Go { probe: false }
        );
        assert_eq!(
            l.decide("a.myshopify.com", 10.0, t0, false),
            Decision::Wait(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_request_waits_for_its_requested_cost_but_reserves_only_what_it_is_charged() {
        let l = Limiter::default();
        let t0 = Instant::now();
        l.observe("a.myshopify.com", &status(40.0), t0);
        // Needs 30 free, keeps 5: after it, 35 are left, so the next one goes too.
        assert_eq!(
            l.decide_charging("a.myshopify.com", 30.0, 5.0, t0, false),
            Decision::Go { probe: false }
        );
        assert_eq!(
            l.decide_charging("a.myshopify.com", 30.0, 5.0, t0, false),
            Decision::Go { probe: false }
        );
        assert_eq!(l.expected_charge(&OP), f64::from(OP.expected_cost));
        l.record_charge(&OP, 13.0);
        l.record_charge(&OP, 0.0);
        assert_eq!(l.expected_charge(&OP), 13.0);
    }

    #[test]
    fn a_dropped_probe_lets_the_next_request_probe() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let Decision::Go { probe: true } = l.decide("a.myshopify.com", 1.0, t0, false) else {
            panic!("first request must probe");
        };
        drop(Permit {
            limiter: &l,
            shop: "a.myshopify.com".to_owned(),
            probe: true,
            reserved: 0.0,
        });
        assert_eq!(
            l.decide("a.myshopify.com", 1.0, t0, false),
            Decision::Go { probe: true }
        );
    }

    #[test]
    fn the_expected_cost_is_the_last_reported_one_else_the_estimate() {
        let l = Limiter::default();
        assert_eq!(l.expected_cost(&OP), f64::from(OP.expected_cost));
        l.record_cost(&OP, 171.0);
        assert_eq!(l.expected_cost(&OP), 171.0);
        l.record_cost(&OP, f64::NAN);
        assert_eq!(l.expected_cost(&OP), 171.0);
    }

    #[test]
    fn nonsense_readings_are_ignored() {
        let l = Limiter::default();
        let t0 = Instant::now();
        l.observe(
            "a.myshopify.com",
            &ThrottleStatus {
                maximum_available: f64::NAN,
                currently_available: 1.0,
                restore_rate: 1.0,
            },
            t0,
        );
        assert!(!l.bucket_known("a.myshopify.com"));
    }

    #[test]
    fn a_bucket_drained_by_other_instances_slows_this_one_down_and_keeps_a_margin() {
        let l = Limiter::default();
        let shop = "a.myshopify.com";
        let t0 = Instant::now();
        l.observe(shop, &status(0.0), t0);
        // Others spend 8 of the 10 points refilled each second: the bucket gains 2 per second.
        for s in 1..=20_u32 {
            l.observe(
                shop,
                &status(2.0 * f64::from(s)),
                t0 + Duration::from_secs(s.into()),
            );
        }
        let now = t0 + Duration::from_secs(20);
        // 40 free. Alone, 45 points would be free in 0.5 s; with about 2 points/s left to this
        // instance and a 2.5-point margin it waits more than 3 s.
        let Decision::Wait(wait) = l.decide(shop, 45.0, now, false) else {
            panic!("the others' spending must hold this instance back");
        };
        assert!(wait > Duration::from_secs(3), "{wait:?}");
        assert!(wait < Duration::from_secs(10), "{wait:?}");
    }

    #[test]
    fn a_full_bucket_forgets_the_others_spending() {
        let l = Limiter::default();
        let shop = "a.myshopify.com";
        let t0 = Instant::now();
        l.observe(shop, &status(0.0), t0);
        l.observe(shop, &status(0.0), t0 + Duration::from_secs(1));
        let drained = l.decide(shop, 5.0, t0 + Duration::from_secs(1), false);
        assert!(matches!(drained, Decision::Wait(_)));
        for s in 2..30 {
            l.observe(shop, &status(50.0), t0 + Duration::from_secs(s));
        }
        assert_eq!(
            l.decide(shop, 5.0, t0 + Duration::from_secs(30), false),
            Decision::Go { probe: false }
        );
    }

    #[tokio::test]
    async fn acquire_sleeps_until_the_bucket_has_refilled() {
        let l = Limiter::default();
        let fast = ThrottleStatus {
            maximum_available: 50.0,
            currently_available: 0.0,
            restore_rate: 100.0,
        };
        l.observe("a.myshopify.com", &fast, Instant::now());
        l.record_cost(&OP, 30.0);
        let started = Instant::now();
        let _permit = l.acquire("a.myshopify.com", &OP).await;
        let waited = started.elapsed();
        // 30 points at 100/s.
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_millis(1500),
            "{waited:?}"
        );
    }
}
