//! AliExpress → dropsync: the sync of one supplier order, of one order, of a shop, and the
//! scheduled poll of everything open — used by the poller and by the merchant's manual sync.
//!
//! Every change is applied with the store's conditional read-modify-write:
//! a sync that loses a race re-decides from what is stored now, so two polls and a manual sync on
//! the same order end where one would. A package that needs pushing is recorded as due in the
//! same write; the sync whose write recorded it sends its message afterwards, and a push
//! still due long after that ([`RESEND_GRACE`]) is claimed and re-sent by the next sync.

mod control;
mod decide;
mod report;
#[cfg(test)]
mod service_tests;

pub use report::{PollCursor, PollReport, RunSoFar, deadline_within, time_left};

use control::RunControl;
use decide::{made_due, wants_tracking};
use report::{Counters, bump, log_progress};

use crate::now_ms;
use crate::ports::SyncStore;
use crate::queue::{PushMessage, TrackingQueue};
use dropsync_aliexpress::{AeError, AliExpressApi};
use dropsync_domain::ops::{
    AeObservation, SyncChanges, apply_ae_observation, claim_stale_pushes, retry_pushes,
};
use dropsync_domain::{ShopDomain, SupplierStatus};
use dropsync_store::{Page, ShopRecord, Store, StoreError, StoredOrder};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// How long a push may stay due after its message was sent before a sync sends it again.
///
/// Why 30 minutes: the message may still be on the tracking queue or being retried by the pusher
/// for up to the queue's `maxReceiveCount` × visibility timeout (8 × 180 s = 24 min, template.yaml)
/// before it lands in the dead-letter queue; re-sending earlier would only double the pusher's
/// work (and a rerun right after a poll must queue nothing). Any later run — twice a day, or a
/// manual sync — re-sends what is still due, so a message lost between the write and the send
/// (a crash, an SQS outage) is recovered.
pub const RESEND_GRACE: Duration = Duration::from_secs(30 * 60);

/// Orders per page of the open index. Small enough that the page in flight when the deadline
/// comes finishes well inside the poller's reserve (50 orders × 2 calls at 10 calls/s = 10 s),
/// large enough that paging costs nothing next to the AliExpress calls.
pub const POLL_PAGE: i32 = 50;

/// An `ApiCallLimit` ban longer than this is not waited out by the client (it refuses calls
/// until it ends): the poll stops, and what is left waits for the next run.
const LONG_BAN: Duration = Duration::from_secs(30);

/// Attempts at reading one page of the open index before the poll gives up on it.
const PAGE_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("AliExpress: {0}")]
    Ae(#[from] AeError),
    #[error("order not found")]
    NotFound,
    /// The AliExpress authorization has ended: nothing can be synced until the merchant
    /// re-authorizes (a manual sync answers this instead of trying every order).
    #[error("{0}")]
    AuthorizationEnded(String),
}

impl SyncError {
    /// Worth another try later (the next run picks it up anyway).
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Store(e) => e.is_retryable(),
            SyncError::Ae(e) => e.is_retryable(),
            SyncError::NotFound | SyncError::AuthorizationEnded(_) => false,
        }
    }

    /// Why every further AliExpress call of this run would fail the same way, if it would.
    fn stops_the_run(&self) -> Option<String> {
        match self {
            SyncError::Ae(AeError::InvalidToken) => {
                Some("AliExpress authorization is no longer valid: re-authorize the app".into())
            }
            SyncError::Ae(AeError::RateLimited { ban }) if *ban > LONG_BAN => Some(format!(
                "AliExpress banned the app key for {} s",
                ban.as_secs()
            )),
            _ => None,
        }
    }
}

/// The sync's dependencies, built once. The store is any [`SyncStore`]: DynamoDB in the
/// functions, `memory::MemoryStore` in tests.
#[derive(Debug)]
pub struct SyncService<A, Q, S = Store> {
    pub store: S,
    pub ae: Arc<A>,
    pub queue: Arc<Q>,
    /// Orders synced at once (the AliExpress client's limiter bounds the calls).
    pub concurrency: usize,
}

/// What a sync of one order came to.
#[derive(Debug)]
struct OrderOutcome {
    stored: StoredOrder,
    /// At least one AliExpress call of this order succeeded.
    reached: bool,
    /// The last error of a supplier order (the others were still synced).
    error: Option<SyncError>,
}

/// Orders of one run in flight: at most `concurrency` at once, spawned as keys arrive, so paging
/// overlaps the syncing.
struct Batch<A, Q, S> {
    svc: Arc<SyncService<A, Q, S>>,
    sem: Arc<Semaphore>,
    set: JoinSet<()>,
    counters: Arc<Counters>,
    ctl: Arc<RunControl>,
}

impl<A: AliExpressApi + 'static, Q: TrackingQueue + 'static, S: SyncStore + 'static>
    Batch<A, Q, S>
{
    fn new(svc: &Arc<SyncService<A, Q, S>>) -> Self {
        Self {
            svc: svc.clone(),
            sem: Arc::new(Semaphore::new(svc.concurrency.max(1))),
            set: JoinSet::new(),
            counters: Arc::new(Counters::default()),
            ctl: Arc::new(RunControl::default()),
        }
    }

    /// The shop's record, read once per run (a shop never seen, or unreadable, counts as active).
    async fn shop(&self, shop: &ShopDomain) -> ShopRecord {
        let mut cache = self.ctl.shops.lock().await;
        if let Some(rec) = cache.get(shop) {
            return rec.clone();
        }
        let rec = match self.svc.store.shop(shop).await {
            Ok(rec) => rec,
            Err(e) => {
                warn!(shop = %shop, error = %e, "shop record unreadable; syncing anyway");
                ShopRecord {
                    active: true,
                    ..ShopRecord::default()
                }
            }
        };
        cache.insert(shop.clone(), rec.clone());
        rec
    }

    /// Starts syncing one order once a slot is free (waits for the slot). `retry` marks the
    /// second try of an order that failed earlier in the run.
    async fn push(&mut self, shop: ShopDomain, id: u64, retry: bool) {
        while self.set.try_join_next().is_some() {}
        if self.ctl.is_stopped() {
            return;
        }
        let rec = self.shop(&shop).await;
        if !rec.active {
            bump(&self.counters.skipped_inactive, 1);
            debug!(shop = %shop, order_id = id, "shop inactive; order skipped");
            return;
        }
        let Ok(permit) = self.sem.clone().acquire_owned().await else {
            return;
        };
        let svc = self.svc.clone();
        let counters = self.counters.clone();
        let ctl = self.ctl.clone();
        self.set.spawn(async move {
            let _permit = permit;
            if ctl.is_stopped() {
                return;
            }
            if retry {
                bump(&counters.retried, 1);
            }
            let outcome = svc.sync_order_counted(&shop, id, &counters).await;
            if !retry && !matches!(outcome, Err(SyncError::NotFound)) {
                bump(&counters.orders, 1);
            }
            let error = match outcome {
                Ok(out) => {
                    if out.reached && rec.aliexpress_reauth_needed {
                        svc.clear_reauth(&shop, &ctl).await;
                    }
                    out.error
                }
                Err(SyncError::NotFound) => {
                    debug!(shop = %shop, order_id = id, "order gone since it was listed");
                    None
                }
                Err(e) => Some(e),
            };
            if let Some(e) = error {
                if let Some(reason) = e.stops_the_run() {
                    ctl.stop(reason);
                } else if e.is_retryable() && !retry {
                    ctl.failed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((shop.clone(), id));
                }
                warn!(shop = %shop, order_id = id, error = %e, "order not fully synced; left for the next run");
            }
        });
    }

    /// Waits for every order in flight.
    async fn drain(&mut self) {
        while self.set.join_next().await.is_some() {}
    }

    /// Tries the orders that failed with a retryable error once more (a ban or an ISP error that
    /// outlasted the client's own retries has usually passed by the end of the run).
    async fn retry_failed(&mut self, deadline: Option<Instant>) {
        self.drain().await;
        for (shop, id) in self.ctl.take_failed() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            self.push(shop, id, true).await;
        }
        self.drain().await;
    }
}

impl<A: AliExpressApi + 'static, Q: TrackingQueue + 'static, S: SyncStore + 'static>
    SyncService<A, Q, S>
{
    /// Why no AliExpress call can succeed until the merchant re-authorizes, when the stored
    /// authorization's refresh token has passed its end (AliExpress cannot extend it). Checked
    /// before a run so that the run stops once, instead of failing every order on the way.
    pub async fn authorization_ended(&self) -> Option<String> {
        let app_key = self.ae.app_key()?;
        crate::connect::authorization_ended(self.store.ae_tokens(app_key).await)
    }

    /// Asks AliExpress about one supplier order: its status, and its tracking when it has
    /// shipped or already has packages.
    async fn observe(
        &self,
        ae_order_id: u64,
        stored: SupplierStatus,
        known_packages: bool,
    ) -> Result<AeObservation, SyncError> {
        let info = self.ae.order_get(ae_order_id).await?;
        let mut obs = AeObservation {
            order_status: info.order_status,
            logistics_status: info.logistics_status,
            children: info.children,
            tracking: None,
        };
        if wants_tracking(&obs, stored, known_packages) {
            obs.tracking = self.ae.tracking_get(ae_order_id).await?;
        }
        Ok(obs)
    }

    /// Syncs one supplier order of `current`: asks AliExpress, and when that changes anything,
    /// applies it with a conditional read-modify-write (re-deciding from what is stored on a
    /// lost race). Returns the changes this sync's write made (empty when it wrote nothing) and
    /// the order as stored after it (`None` when nothing was written or re-read).
    async fn sync_one(
        &self,
        shop: &ShopDomain,
        current: &StoredOrder,
        ae_order_id: u64,
    ) -> Result<(SyncChanges, Option<StoredOrder>), SyncError> {
        let order_id = current.order.id;
        let so = current
            .order
            .supplier_order(ae_order_id)
            .ok_or(SyncError::NotFound)?;
        let obs = self
            .observe(ae_order_id, so.status, !so.packages.is_empty())
            .await?;
        let now = now_ms();
        // Decided first on the order as read: in the steady state (nothing new on AliExpress)
        // that costs no further read and no write.
        let mut trial = current.order.clone();
        let trial_changes = apply_ae_observation(&mut trial, ae_order_id, &obs, now);
        if trial_changes.is_none_or(|c| c.is_empty()) {
            return Ok((SyncChanges::default(), None));
        }
        let mut changes = SyncChanges::default();
        let stored = self
            .store
            .update_order_from(shop, order_id, Some(current.clone()), |o| {
                changes = apply_ae_observation(o, ae_order_id, &obs, now).unwrap_or_default();
                !changes.is_empty()
            })
            .await?
            .ok_or(SyncError::NotFound)?;
        if !changes.is_empty() {
            info!(shop = %shop, order_id, ae_order_id, status = %stored.order.status, ?changes, "supplier order changed");
        }
        Ok((changes, Some(stored)))
    }

    /// Syncs one supplier order now and queues the pushes it made due (and any left unsent past
    /// the resend grace). Writes nothing when nothing changed.
    pub async fn sync_supplier_order(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        ae_order_id: u64,
    ) -> Result<(SyncChanges, Option<StoredOrder>), SyncError> {
        let before = self
            .store
            .order(shop, order_id)
            .await?
            .ok_or(SyncError::NotFound)?;
        let (changes, stored) = self.sync_one(shop, &before, ae_order_id).await?;
        let mut now = stored.clone().unwrap_or(before);
        let fresh: Vec<(u64, String)> = made_due(ae_order_id, &changes).collect();
        self.queue_pushes(shop, &mut now, fresh).await;
        Ok((changes, stored))
    }

    /// Queues the pushes this sync made due, plus any still due whose message went out longer
    /// than [`RESEND_GRACE`] ago (claimed with a conditional write first, so racing syncs re-send
    /// it once). Returns how many messages were sent. A failed send leaves the pushes recorded as
    /// due: a later sync re-sends them once the grace has passed.
    async fn queue_pushes(
        &self,
        shop: &ShopDomain,
        current: &mut StoredOrder,
        fresh: Vec<(u64, String)>,
    ) -> u64 {
        let order_id = current.order.id;
        let is_due = |o: &StoredOrder, ae: u64, t: &str| {
            o.order
                .supplier_order(ae)
                .and_then(|so| so.package(t))
                .is_some_and(|p| p.push.is_due())
        };
        let mut due: Vec<(u64, String)> = fresh
            .into_iter()
            .filter(|(ae, t)| is_due(current, *ae, t))
            .collect();
        let now = now_ms();
        let grace = i64::try_from(RESEND_GRACE.as_millis()).unwrap_or(i64::MAX);
        let stale = current
            .order
            .due_pushes()
            .iter()
            .any(|(_, p)| p.due_since_ms.saturating_add(grace) <= now);
        if stale {
            let mut claimed = Vec::new();
            match self
                .store
                .update_order(shop, order_id, |o| {
                    claimed = claim_stale_pushes(o, now, grace);
                    !claimed.is_empty()
                })
                .await
            {
                Ok(Some(stored)) => {
                    if !claimed.is_empty() {
                        info!(shop = %shop, order_id, pushes = claimed.len(), "re-sending pushes left unsent");
                    }
                    *current = stored;
                    for c in claimed {
                        if !due.contains(&c) {
                            due.push(c);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(shop = %shop, order_id, error = %e, "could not claim stale pushes; left for the next run");
                }
            }
        }
        if due.is_empty() {
            return 0;
        }
        let msgs: Vec<PushMessage> = due
            .iter()
            .map(|(ae, t)| PushMessage::new(shop, order_id, *ae, t))
            .collect();
        match self.queue.send(&msgs).await {
            Ok(()) => {
                debug!(shop = %shop, order_id, pushes = msgs.len(), "pushes queued");
                msgs.len() as u64
            }
            Err(e) => {
                // Still recorded as due in the table: a later sync re-sends it after the grace.
                warn!(shop = %shop, order_id, error = %e, "queueing pushes failed; left for the next run");
                0
            }
        }
    }

    /// Syncs every open supplier order of one order and queues its due pushes. Errors on one
    /// supplier order leave it unchanged and do not stop the others.
    pub async fn sync_order(
        &self,
        shop: &ShopDomain,
        order_id: u64,
    ) -> Result<(StoredOrder, PollReport), SyncError> {
        if let Some(why) = self.authorization_ended().await {
            info!(shop = %shop, order_id, "manual sync refused: AliExpress must be re-authorized");
            return Err(SyncError::AuthorizationEnded(why));
        }
        let counters = Counters::default();
        let mut out = self.sync_order_counted(shop, order_id, &counters).await?;
        bump(&counters.orders, 1);
        let retried = self.retry_pushes(shop, &mut out.stored).await?;
        bump(&counters.pushes_queued, retried);
        match out.error {
            // A manual sync of one order reports an AliExpress it could not reach at all.
            Some(e @ SyncError::Ae(AeError::InvalidToken)) => Err(e),
            _ => Ok((out.stored, counters.report(None, None))),
        }
    }

    /// The merchant's "try again" on one order: pushes Shopify refused or that went to the
    /// dead-letter queue are made due and sent now (see [`retry_pushes`]).
    async fn retry_pushes(
        &self,
        shop: &ShopDomain,
        current: &mut StoredOrder,
    ) -> Result<u64, SyncError> {
        let order_id = current.order.id;
        let needs = current
            .order
            .supplier_orders
            .iter()
            .any(|so| so.packages.iter().any(|p| p.needs_retry()));
        if !needs {
            return Ok(0);
        }
        let now = now_ms();
        let mut retried = Vec::new();
        if let Some(stored) = self
            .store
            .update_order(shop, order_id, |o| {
                retried = retry_pushes(o, now);
                !retried.is_empty()
            })
            .await?
        {
            *current = stored;
        }
        if retried.is_empty() {
            return Ok(0);
        }
        let msgs: Vec<PushMessage> = retried
            .iter()
            .map(|(ae, t)| PushMessage::new(shop, order_id, *ae, t))
            .collect();
        info!(shop = %shop, order_id, pushes = msgs.len(), "merchant retry: pushes sent again");
        // A send that fails leaves them due: the next run's stale-push sweep re-sends them.
        if let Err(e) = self.queue.send(&msgs).await {
            warn!(shop = %shop, order_id, error = %e, "could not queue the retried pushes; the next run re-sends them");
            return Ok(0);
        }
        Ok(u64::try_from(msgs.len()).unwrap_or(u64::MAX))
    }

    async fn sync_order_counted(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        counters: &Counters,
    ) -> Result<OrderOutcome, SyncError> {
        let mut current = self
            .store
            .order(shop, order_id)
            .await?
            .ok_or(SyncError::NotFound)?;
        let open: Vec<u64> = if current.order.has_open_supplier_orders() {
            current
                .order
                .supplier_orders
                .iter()
                .filter(|so| so.status.is_open())
                .map(|so| so.ae_order_id)
                .collect()
        } else {
            Vec::new()
        };
        let mut fresh = Vec::new();
        let mut reached = false;
        let mut error = None;
        for ae in open {
            bump(&counters.supplier_orders, 1);
            match self.sync_one(shop, &current, ae).await {
                Ok((changes, stored)) => {
                    reached = true;
                    if !changes.is_empty() {
                        bump(&counters.changed, 1);
                        fresh.extend(made_due(ae, &changes));
                    }
                    if let Some(stored) = stored {
                        current = stored;
                    }
                }
                Err(e) => {
                    bump(&counters.errors, 1);
                    warn!(shop = %shop, order_id, ae_order_id = ae, error = %e, "supplier order not synced; left unchanged for the next run");
                    let stop = e.stops_the_run().is_some();
                    if let SyncError::Ae(AeError::InvalidToken) = &e
                        && let Err(se) = self.store.set_aliexpress_reauth(shop, true).await
                    {
                        warn!(shop = %shop, error = %se, "could not flag the AliExpress link");
                    }
                    error = Some(e);
                    if stop {
                        break;
                    }
                }
            }
        }
        let queued = self.queue_pushes(shop, &mut current, fresh).await;
        bump(&counters.pushes_queued, queued);
        Ok(OrderOutcome {
            stored: current,
            reached,
            error,
        })
    }

    /// AliExpress answers for this shop again: clear its re-authorization flag (once per run).
    async fn clear_reauth(&self, shop: &ShopDomain, ctl: &RunControl) {
        let first = ctl
            .cleared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shop.clone());
        if first {
            match self.store.set_aliexpress_reauth(shop, false).await {
                Ok(()) => {
                    info!(shop = %shop, "AliExpress reachable again; re-authorization flag cleared")
                }
                Err(e) => {
                    warn!(shop = %shop, error = %e, "could not clear the re-authorization flag")
                }
            }
        }
    }

    /// Syncs every open order of one shop (the merchant's "sync now").
    /// A manual sync of one shop's open orders, from `from` (where the previous call stopped)
    /// until done or `deadline`: like [`SyncService::poll`] over the shop's part of the open
    /// index, so a shop too big for one API call is synced over several, nothing skipped or done
    /// twice (`continue_from` says where the next call starts).
    pub async fn sync_shop(
        self: &Arc<Self>,
        shop: &ShopDomain,
        from: Option<PollCursor>,
        deadline: Instant,
    ) -> Result<PollReport, SyncError> {
        let mut at = from.unwrap_or(PollCursor {
            shard: 0,
            page: None,
            run: None,
            shop: None,
        });
        at.shop = Some(shop.clone());
        if let Some(why) = self.authorization_ended().await {
            info!(shop = %shop, "manual shop sync refused: AliExpress must be re-authorized");
            return Err(SyncError::AuthorizationEnded(why));
        }
        let report = self.poll(Some(at), deadline).await?;
        info!(shop = %shop, ?report, "shop synced");
        Ok(report)
    }

    /// One page of the open index, with a few tries (a throttled or briefly unreachable table
    /// should not end a run).
    async fn open_page(&self, at: &PollCursor) -> Result<Page<(ShopDomain, u64)>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let page = self
                .store
                .open_orders_page(at.shard, at.shop.as_ref(), at.page.as_deref(), POLL_PAGE)
                .await;
            match page {
                Ok(page) => return Ok(page),
                Err(e) if e.is_retryable() && attempt < PAGE_ATTEMPTS => {
                    warn!(shard = at.shard, attempt, error = %e, "reading the open index failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The scheduled poll: pages through the open index shard by shard and syncs every order,
    /// until done or until `deadline`, then returns where to continue. A page that was started
    /// is always finished before the poll returns, and the cursor points just past the last
    /// started page, so across invocations nothing is skipped or done twice.
    pub async fn poll(
        self: &Arc<Self>,
        from: Option<PollCursor>,
        deadline: Instant,
    ) -> Result<PollReport, SyncError> {
        if let Some(why) = self.authorization_ended().await {
            // One line per run, no AliExpress call: the attention list says what to do.
            warn!(
                reason = why.as_str(),
                "poll skipped: AliExpress must be re-authorized"
            );
            return Ok(PollReport {
                aborted: Some(why),
                ..PollReport::default()
            });
        }
        let started = Instant::now();
        let mut at = from.unwrap_or(PollCursor {
            shard: 0,
            page: None,
            run: None,
            shop: None,
        });
        let mut run = at.run.take().unwrap_or_else(|| RunSoFar {
            started_ms: now_ms(),
            ..RunSoFar::default()
        });
        run.invocations = run.invocations.saturating_add(1);
        let shards = self.store.open_shards();
        let mut batch = Batch::new(self);
        let mut pages = 0u64;
        let mut last_log = Instant::now();
        let stop_at = loop {
            if at.shard >= shards || batch.ctl.is_stopped() {
                break None;
            }
            // At least one page per call: a continuation always makes progress, however late
            // it starts.
            if pages > 0 && Instant::now() >= deadline {
                break Some(at);
            }
            let page = match self.open_page(&at).await {
                Ok(page) => page,
                Err(e) if pages == 0 => {
                    // No progress at all: fail the invocation (its trigger is retried) rather than
                    // hand on a continuation that would fail the same way, in a loop.
                    return Err(e.into());
                }
                Err(e) => {
                    warn!(shard = at.shard, error = %e, "open index unreadable; continuing in the next invocation");
                    bump(&batch.counters.errors, 1);
                    break Some(at);
                }
            };
            pages += 1;
            for (shop, id) in page.items {
                batch.push(shop, id, false).await;
            }
            at = match page.next {
                Some(c) => PollCursor {
                    shard: at.shard,
                    page: Some(c),
                    run: None,
                    shop: at.shop.clone(),
                },
                None => PollCursor {
                    shard: at.shard + 1,
                    page: None,
                    run: None,
                    shop: at.shop.clone(),
                },
            };
            if last_log.elapsed() >= Duration::from_secs(10) {
                last_log = Instant::now();
                log_progress(&batch.counters, &run, at.shard, shards, started);
            }
        };
        batch.drain().await;
        if stop_at.is_none() && !batch.ctl.is_stopped() {
            batch.retry_failed(Some(deadline)).await;
        }
        let aborted = batch.ctl.reason();
        let mut report = batch.counters.report(None, aborted);
        run.orders += report.orders;
        run.changed += report.changed;
        run.pushes_queued += report.pushes_queued;
        run.errors += report.errors;
        let elapsed = started.elapsed();
        let rate = report.orders as f64 / elapsed.as_secs_f64().max(0.001);
        match stop_at {
            Some(mut cursor) if report.aborted.is_none() => {
                info!(
                    shard = cursor.shard,
                    shards,
                    orders = report.orders,
                    rate,
                    run_orders = run.orders,
                    invocations = run.invocations,
                    "poll stopping at its deadline; the rest goes to a continuation"
                );
                cursor.run = Some(run);
                report.continue_from = Some(cursor);
            }
            _ => {
                let run_secs = (now_ms().saturating_sub(run.started_ms)) as f64 / 1000.0;
                info!(
                    orders = report.orders,
                    supplier_orders = report.supplier_orders,
                    changed = report.changed,
                    pushes_queued = report.pushes_queued,
                    errors = report.errors,
                    retried = report.retried,
                    skipped_inactive = report.skipped_inactive,
                    aborted = report.aborted.as_deref(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    rate,
                    run_orders = run.orders,
                    run_changed = run.changed,
                    run_pushes_queued = run.pushes_queued,
                    run_errors = run.errors,
                    run_invocations = run.invocations,
                    run_secs,
                    "poll finished"
                );
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_token_or_a_long_ban_stops_the_whole_run() {
        assert!(
            SyncError::Ae(AeError::InvalidToken)
                .stops_the_run()
                .is_some()
        );
        let long = SyncError::Ae(AeError::RateLimited {
            ban: LONG_BAN + Duration::from_secs(1),
        });
        assert!(long.stops_the_run().is_some_and(|why| why.contains("31 s")));
        let short = SyncError::Ae(AeError::RateLimited { ban: LONG_BAN });
        assert_eq!(short.stops_the_run(), None);
        assert_eq!(SyncError::NotFound.stops_the_run(), None);
    }
}
