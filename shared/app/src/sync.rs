//! AliExpress → dropsync: the sync of one supplier order, of one order, of a shop, and the
//! scheduled poll of everything open — used by the poller and by the merchant's manual sync.

use crate::now_ms;
use crate::queue::{PushMessage, TrackingQueue};
use dropsync_aliexpress::{AeError, AliExpressApi};
use dropsync_domain::ops::{AeObservation, SyncChanges, apply_ae_observation};
use dropsync_domain::{Order, ShopDomain, SupplierStatus, map_ae_order};
use dropsync_store::{Store, StoreError, StoredOrder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("AliExpress: {0}")]
    Ae(#[from] AeError),
    #[error("order not found")]
    NotFound,
}

impl SyncError {
    /// Worth another try later (the next run picks it up anyway).
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Store(e) => e.is_retryable(),
            SyncError::Ae(e) => e.is_retryable(),
            SyncError::NotFound => false,
        }
    }
}

/// Where a poll stopped, to be continued by the next invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollCursor {
    pub shard: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
}

/// Counts of a poll or a shop sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollReport {
    pub orders: u64,
    pub supplier_orders: u64,
    pub changed: u64,
    pub pushes_queued: u64,
    pub errors: u64,
    pub skipped_inactive: u64,
    /// Set when the run stopped early; continue from here.
    pub continue_from: Option<PollCursor>,
}

#[derive(Debug, Default)]
struct Counters {
    orders: AtomicU64,
    supplier_orders: AtomicU64,
    changed: AtomicU64,
    pushes_queued: AtomicU64,
    errors: AtomicU64,
    skipped_inactive: AtomicU64,
}

impl Counters {
    fn report(&self, continue_from: Option<PollCursor>) -> PollReport {
        PollReport {
            orders: self.orders.load(Ordering::Relaxed),
            supplier_orders: self.supplier_orders.load(Ordering::Relaxed),
            changed: self.changed.load(Ordering::Relaxed),
            pushes_queued: self.pushes_queued.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            skipped_inactive: self.skipped_inactive.load(Ordering::Relaxed),
            continue_from,
        }
    }
}

/// The sync's dependencies, built once.
#[derive(Debug)]
pub struct SyncService<A, Q> {
    pub store: Store,
    pub ae: Arc<A>,
    pub queue: Arc<Q>,
    /// Orders synced at once (the AliExpress client's limiter bounds the calls).
    pub concurrency: usize,
}

/// Whether tracking is worth asking for: the order has shipped (by status or logistics), or we
/// already know packages (a tracking number may have been corrected).
fn wants_tracking(obs: &AeObservation, stored: SupplierStatus, known_packages: bool) -> bool {
    let reasons: Vec<Option<&str>> = obs
        .children
        .iter()
        .map(|c| c.end_reason.as_deref())
        .collect();
    let mapped = map_ae_order(&obs.order_status, obs.logistics_status.as_deref(), &reasons).status;
    let shipped = |s: SupplierStatus| {
        matches!(
            s,
            SupplierStatus::PartiallyShipped | SupplierStatus::Shipped | SupplierStatus::Delivered
        )
    };
    known_packages || shipped(stored) || mapped.is_some_and(shipped)
}

impl<A: AliExpressApi + 'static, Q: TrackingQueue + 'static> SyncService<A, Q> {
    /// Syncs one supplier order: asks AliExpress, applies what it says with a conditional write
    /// (re-deciding on a lost race), then queues the pushes that are due. Writes nothing when
    /// nothing changed.
    pub async fn sync_supplier_order(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        ae_order_id: u64,
    ) -> Result<(SyncChanges, Option<StoredOrder>), SyncError> {
        let before = self
            .store
            .get_order(shop, order_id)
            .await?
            .ok_or(SyncError::NotFound)?;
        let so = before
            .order
            .supplier_order(ae_order_id)
            .ok_or(SyncError::NotFound)?;
        let (stored_status, known) = (so.status, !so.packages.is_empty());
        let info = self.ae.order_get(ae_order_id).await?;
        let mut obs = AeObservation {
            order_status: info.order_status,
            logistics_status: info.logistics_status,
            children: info.children,
            tracking: None,
        };
        if wants_tracking(&obs, stored_status, known) {
            obs.tracking = self.ae.tracking_get(ae_order_id).await?;
        }
        let now = now_ms();
        let mut changes = SyncChanges::default();
        let stored = self
            .store
            .update_order(shop, order_id, |o| {
                changes = apply_ae_observation(o, ae_order_id, &obs, now).unwrap_or_default();
                !changes.is_empty()
            })
            .await?;
        if !changes.is_empty() {
            info!(shop = %shop, order_id, ae_order_id, ?changes, "supplier order changed");
        }
        Ok((changes, stored))
    }

    /// Queues a message for every push still due on this order: new packages, and any left
    /// pending by an earlier run that stopped between its write and its send.
    async fn queue_due(&self, order: &Order) -> u64 {
        let msgs: Vec<PushMessage> = order
            .due_pushes()
            .into_iter()
            .map(|(ae, p)| PushMessage::new(&order.shop, order.id, ae, &p.tracking_number))
            .collect();
        if msgs.is_empty() {
            return 0;
        }
        match self.queue.send(&msgs).await {
            Ok(()) => msgs.len() as u64,
            Err(e) => {
                // Still recorded as pending in the table: the next run sends it again.
                warn!(shop = %order.shop, order_id = order.id, error = %e, "queueing pushes failed");
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
        let counters = Counters::default();
        let stored = self.sync_order_counted(shop, order_id, &counters).await?;
        Ok((stored, counters.report(None)))
    }

    async fn sync_order_counted(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        counters: &Counters,
    ) -> Result<StoredOrder, SyncError> {
        let stored = self
            .store
            .get_order(shop, order_id)
            .await?
            .ok_or(SyncError::NotFound)?;
        counters.orders.fetch_add(1, Ordering::Relaxed);
        let open: Vec<u64> = if stored.order.has_open_supplier_orders() {
            stored
                .order
                .supplier_orders
                .iter()
                .filter(|so| so.status.is_open())
                .map(|so| so.ae_order_id)
                .collect()
        } else {
            Vec::new()
        };
        let mut last_err = None;
        for ae in open {
            counters.supplier_orders.fetch_add(1, Ordering::Relaxed);
            match self.sync_supplier_order(shop, order_id, ae).await {
                Ok((changes, _)) if !changes.is_empty() => {
                    counters.changed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    warn!(shop = %shop, order_id, ae_order_id = ae, error = %e, "supplier order not synced; left for the next run");
                    if let SyncError::Ae(AeError::InvalidToken) = &e
                        && let Err(se) = self.store.set_aliexpress_reauth(shop, true).await
                    {
                        warn!(shop = %shop, error = %se, "could not flag the AliExpress link");
                    }
                    last_err = Some(e);
                }
            }
        }
        let now = self
            .store
            .get_order(shop, order_id)
            .await?
            .ok_or(SyncError::NotFound)?;
        let queued = self.queue_due(&now.order).await;
        counters.pushes_queued.fetch_add(queued, Ordering::Relaxed);
        match last_err {
            // A manual sync of one order reports an AliExpress it could not reach.
            Some(e @ SyncError::Ae(AeError::InvalidToken)) => Err(e),
            _ => Ok(now),
        }
    }

    /// Syncs every open order of one shop (the merchant's "sync now").
    pub async fn sync_shop(self: &Arc<Self>, shop: &ShopDomain) -> Result<PollReport, SyncError> {
        let counters = Arc::new(Counters::default());
        let mut keys = Vec::new();
        for shard in 0..self.store.open_shards() {
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .store
                    .open_orders_page_for_shop(shard, shop, cursor.as_deref(), 200)
                    .await?;
                keys.extend(page.items);
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        self.run_batch(keys, counters.clone(), &Mutex::new(HashMap::new()))
            .await;
        Ok(counters.report(None))
    }

    async fn run_batch(
        self: &Arc<Self>,
        keys: Vec<(ShopDomain, u64)>,
        counters: Arc<Counters>,
        active: &Mutex<HashMap<ShopDomain, bool>>,
    ) {
        let sem = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = JoinSet::new();
        for (shop, id) in keys {
            let is_active = {
                let mut cache = active.lock().await;
                match cache.get(&shop) {
                    Some(a) => *a,
                    None => {
                        let a = match self.store.get_shop(&shop).await {
                            Ok(rec) => rec.active,
                            Err(e) => {
                                warn!(shop = %shop, error = %e, "shop record unreadable; syncing anyway");
                                true
                            }
                        };
                        cache.insert(shop.clone(), a);
                        a
                    }
                }
            };
            if !is_active {
                counters.skipped_inactive.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone();
            let counters = counters.clone();
            let stop = stop.clone();
            set.spawn(async move {
                let _permit = permit;
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = this.sync_order_counted(&shop, id, &counters).await {
                    if matches!(e, SyncError::Ae(AeError::InvalidToken)) {
                        // Every further call would fail the same way.
                        stop.store(true, Ordering::Relaxed);
                    }
                    warn!(shop = %shop, order_id = id, error = %e, "order not synced");
                }
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// The scheduled poll: pages through the open index shard by shard and syncs everything,
    /// until done or until `deadline` (then returns where to continue). A page is always
    /// finished before the cursor moves, so nothing is skipped or done twice across invocations.
    pub async fn poll(
        self: &Arc<Self>,
        from: Option<PollCursor>,
        deadline: Instant,
    ) -> Result<PollReport, SyncError> {
        let counters = Arc::new(Counters::default());
        let active = Mutex::new(HashMap::new());
        let started = Instant::now();
        let mut at = from.unwrap_or(PollCursor {
            shard: 0,
            page: None,
        });
        while at.shard < self.store.open_shards() {
            if Instant::now() >= deadline {
                let report = counters.report(Some(at));
                info!(?report, "poll stopping early; continuation queued");
                return Ok(report);
            }
            let page = self
                .store
                .open_orders_page(at.shard, at.page.as_deref(), 100)
                .await?;
            self.run_batch(page.items, counters.clone(), &active).await;
            let done = counters.orders.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(0.001);
            info!(
                shard = at.shard,
                orders = done,
                rate = done as f64 / secs,
                "poll progress"
            );
            at = match page.next {
                Some(c) => PollCursor {
                    shard: at.shard,
                    page: Some(c),
                },
                None => PollCursor {
                    shard: at.shard + 1,
                    page: None,
                },
            };
        }
        let report = counters.report(None);
        info!(
            ?report,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "poll finished"
        );
        Ok(report)
    }
}

/// A deadline `reserve` before the end of the time left.
pub fn deadline_within(remaining: Duration, reserve: Duration) -> Instant {
    Instant::now() + remaining.saturating_sub(reserve)
}
