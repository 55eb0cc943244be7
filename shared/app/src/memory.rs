//! In-memory implementations of the services' ports, for tests that run a service without
//! DynamoDB, SQS or Shopify (`cargo test`, the fast tier). Built only for this crate's tests and
//! with the `testing` feature, never into the Lambda binaries.
//!
//! - [`MemoryStore`]: the store ports ([`Orders`], [`PushStore`], [`WebhookStore`],
//!   [`SyncStore`], [`TokenSource`]) with
//!   the table's semantics the services rely on — versioned conditional writes refused on a stale
//!   version or on a transition the domain's table forbids, newer `updated_at` wins, the push
//!   lease's claim and release, delivery dedupe — plus knobs to inject failures.
//! - [`FakeShopify`]: a [`ShopifyAdmin`] holding each order's fulfillment orders and
//!   fulfillments; `fulfillmentCreate` really consumes the remaining quantities and records the
//!   fulfillment, and any call can be scripted to fail (throttled, unavailable, refused).
//! - [`FakeAliExpress`]: AliExpress's `order.get` and `tracking.get`, per order, scriptable.
//! - [`MemoryQueue`]: the tracking queue, recording what was sent.
//! - [`FakeTokenEndpoint`]: Shopify's token endpoint, minting numbered tokens.

use crate::credentials::Credentials;
use crate::ports::{Orders, PushStore, SharedTokens, SyncStore, TokenSource, WebhookStore};
use crate::queue::{PushMessage, QueueError, TrackingQueue};
use crate::tokens::{ProviderError, TokenEndpoint, TokenProvider};
use dropsync_aliexpress::{AeError, AeOrder, AeTrackingLine, AliExpressApi};
use dropsync_domain::{Order, ShopDomain, ShopifyFacts};
use dropsync_shopify::admin::{
    AdminError, ExistingFulfillment, FoLineItem, FulfillmentOrder, FulfillmentRequest,
    FulfillmentState, MutationOutcome, OrderStamp, OrderStampPage, ShopifyAdmin, TrackingInfo,
};
use dropsync_shopify::oauth::{Refusal, TokenError, TokenGrant};
use dropsync_store::{
    AeTokenRecord, ConnectionStore, LeasedPackage, MemoryConnections, Page, ShopRecord,
    ShopifyApplied, StoreError, StoredOrder, WriteKind, decide_and_write,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Shopify facts of a paid order, with `lines` (line item id, quantity) and nothing fulfilled:
/// the usual starting point of a service test.
pub fn paid_facts(lines: &[(u64, u32)]) -> ShopifyFacts {
    ShopifyFacts {
        name: "#1001".into(),
        created_at_ms: 0,
        updated_at_ms: 1,
        financial_status: dropsync_domain::FinancialStatus::parse("paid"),
        cancelled: false,
        test: false,
        fulfillment_status: None,
        line_items: lines
            .iter()
            .map(|&(id, quantity)| dropsync_domain::LineItem::new(id, quantity))
            .collect(),
        fulfillment_tracking: Vec::new(),
    }
}

type OrderKey = (ShopDomain, u64);
/// A token provider per credentials document (by address) and Shopify endpoint, as in
/// [`crate::tokens::shared`].
type ProviderKey = (usize, Option<String>);

#[derive(Debug, Default)]
struct Tables {
    orders: HashMap<OrderKey, StoredOrder>,
    /// Ids whose event came without a body and that have no order yet.
    refetch: HashSet<OrderKey>,
    shops: HashMap<ShopDomain, ShopRecord>,
    /// Per package: the holder and the end of its claim (ms).
    leases: HashMap<String, (u64, i64)>,
    deliveries: HashSet<(ShopDomain, String)>,
    ae_tokens: HashMap<String, AeTokenRecord>,
    /// Order writes still to refuse as unavailable (an injected outage).
    failing_writes: u32,
    /// Order writes that landed.
    order_writes: u64,
    next_owner: u64,
}

/// The store ports in memory. Clones share the same tables.
#[derive(Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
    connections: MemoryConnections,
    endpoint: FakeTokenEndpoint,
    tokens: Arc<Mutex<HashMap<ProviderKey, SharedTokens<MemoryStore>>>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

/// A claim on one package in a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLease {
    key: String,
    owner: u64,
}

fn lease_key(p: &LeasedPackage<'_>) -> String {
    format!(
        "{}#{}#{}#{}",
        p.shop, p.order_id, p.ae_order_id, p.tracking_number
    )
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut tables)
    }

    /// The shops' connections (OAuth, client credentials), as the token provider reads them.
    pub fn connections(&self) -> &MemoryConnections {
        &self.connections
    }

    /// The token endpoint behind this store's token providers.
    pub fn token_endpoint(&self) -> &FakeTokenEndpoint {
        &self.endpoint
    }

    /// Stores `order` as is, with no condition (a test's starting point); returns it with its
    /// version.
    pub fn insert_order(&self, order: Order) -> StoredOrder {
        self.with(|t| {
            let key = (order.shop.clone(), order.id);
            let version = t.orders.get(&key).map_or(1, |s| s.version + 1);
            let stored = StoredOrder { order, version };
            t.orders.insert(key, stored.clone());
            stored
        })
    }

    /// Changes a stored order with no condition, as another writer would between a service's
    /// read and its write (the version moves on).
    pub fn change_order(&self, shop: &ShopDomain, id: u64, change: impl FnOnce(&mut Order)) {
        self.with(|t| {
            if let Some(stored) = t.orders.get_mut(&(shop.clone(), id)) {
                change(&mut stored.order);
                stored.version += 1;
            }
        });
    }

    /// The order as stored now.
    pub fn stored_order(&self, shop: &ShopDomain, id: u64) -> Option<StoredOrder> {
        self.with(|t| t.orders.get(&(shop.clone(), id)).cloned())
    }

    /// Whether an id-only event left this id to be fetched again.
    pub fn needs_refetch(&self, shop: &ShopDomain, id: u64) -> bool {
        self.with(|t| {
            t.refetch.contains(&(shop.clone(), id))
                || t.orders
                    .get(&(shop.clone(), id))
                    .is_some_and(|s| s.order.needs_refetch)
        })
    }

    pub fn set_shop(&self, shop: &ShopDomain, record: ShopRecord) {
        self.with(|t| t.shops.insert(shop.clone(), record));
    }

    fn shop_now(&self, shop: &ShopDomain) -> ShopRecord {
        self.with(|t| {
            t.shops.get(shop).cloned().unwrap_or(ShopRecord {
                active: true,
                ..ShopRecord::default()
            })
        })
    }

    /// Stores an app key's AliExpress tokens, as the OAuth callback or a refresh would.
    pub fn set_ae_tokens(&self, app_key: &str, record: AeTokenRecord) {
        self.with(|t| t.ae_tokens.insert(app_key.to_owned(), record));
    }

    /// The next `n` order writes fail as unavailable (throttled or unreachable).
    pub fn fail_next_order_writes(&self, n: u32) {
        self.with(|t| t.failing_writes = n);
    }

    /// How many order writes have landed so far.
    pub fn order_writes(&self) -> u64 {
        self.with(|t| t.order_writes)
    }

    /// The table's conditional put: a new order only if there is none; otherwise only over
    /// version `expected` and from a status the domain allows for this kind of write.
    fn put(
        t: &mut Tables,
        order: &Order,
        expected: Option<u64>,
        kind: WriteKind,
    ) -> Result<StoredOrder, StoreError> {
        if t.failing_writes > 0 {
            t.failing_writes -= 1;
            return Err(StoreError::Unavailable("injected outage".into()));
        }
        let key = (order.shop.clone(), order.id);
        let current = t.orders.get(&key);
        let allowed = match (expected, current) {
            (None, None) => true,
            (Some(v), Some(cur)) => {
                cur.version == v && kind.allowed_from(order.status).contains(&cur.order.status)
            }
            _ => false,
        };
        if !allowed {
            return Err(StoreError::Conflict(Box::new(current.cloned())));
        }
        let written = StoredOrder {
            order: order.clone(),
            version: expected.map_or(1, |v| v + 1),
        };
        t.orders.insert(key.clone(), written.clone());
        t.refetch.remove(&key);
        t.order_writes += 1;
        Ok(written)
    }

    async fn update_from<F>(
        &self,
        current: Option<StoredOrder>,
        decide: F,
    ) -> Result<Option<StoredOrder>, StoreError>
    where
        F: FnMut(&mut Order) -> bool,
    {
        decide_and_write(current, decide, |next, version, kind, _| {
            std::future::ready(self.with(|t| Self::put(t, &next, Some(version), kind)))
        })
        .await
    }
}

impl TokenSource for MemoryStore {
    type Connections = MemoryConnections;
    type Endpoint = FakeTokenEndpoint;

    fn shop_tokens(
        &self,
        credentials: &Arc<Credentials>,
        admin_base: Option<String>,
    ) -> Result<SharedTokens<Self>, ProviderError> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (Arc::as_ptr(credentials) as usize, admin_base);
        Ok(tokens
            .entry(key)
            .or_insert_with(|| {
                Arc::new(TokenProvider::new(
                    self.connections.clone(),
                    self.endpoint.clone(),
                    credentials.clone(),
                ))
            })
            .clone())
    }
}

impl Orders for MemoryStore {
    async fn order(&self, shop: &ShopDomain, id: u64) -> Result<Option<StoredOrder>, StoreError> {
        Ok(self.stored_order(shop, id))
    }

    async fn update_order<F>(
        &self,
        shop: &ShopDomain,
        id: u64,
        decide: F,
    ) -> Result<Option<StoredOrder>, StoreError>
    where
        F: FnMut(&mut Order) -> bool + Send,
    {
        self.update_from(self.stored_order(shop, id), decide).await
    }

    async fn update_order_from<F>(
        &self,
        _shop: &ShopDomain,
        _id: u64,
        current: Option<StoredOrder>,
        decide: F,
    ) -> Result<Option<StoredOrder>, StoreError>
    where
        F: FnMut(&mut Order) -> bool + Send,
    {
        self.update_from(current, decide).await
    }
}

impl PushStore for MemoryStore {
    type Lease = MemoryLease;

    async fn shop(&self, shop: &ShopDomain) -> Result<ShopRecord, StoreError> {
        Ok(self.shop_now(shop))
    }

    async fn claim_push_lease(
        &self,
        package: LeasedPackage<'_>,
        lease: Duration,
        now_ms: i64,
    ) -> Result<Option<MemoryLease>, StoreError> {
        let until = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let key = lease_key(&package);
        Ok(self.with(|t| {
            if t.leases.get(&key).is_some_and(|(_, end)| *end >= now_ms) {
                return None;
            }
            t.next_owner += 1;
            let owner = t.next_owner;
            t.leases.insert(key.clone(), (owner, until));
            Some(MemoryLease { key, owner })
        }))
    }

    async fn release_push_lease(&self, lease: MemoryLease) -> Result<(), StoreError> {
        self.with(|t| {
            if t.leases
                .get(&lease.key)
                .is_some_and(|(o, _)| *o == lease.owner)
            {
                t.leases.remove(&lease.key);
            }
        });
        Ok(())
    }
}

/// How the single conditional write of [`WebhookStore::save_shopify_facts`] went.
enum FirstWrite {
    Done(ShopifyApplied),
    /// Its condition failed: the order as stored, to compare with and merge into.
    Refused(Box<StoredOrder>),
}

impl WebhookStore for MemoryStore {
    async fn holds_order(&self, shop: &ShopDomain, id: u64) -> Result<bool, StoreError> {
        Ok(self.stored_order(shop, id).is_some())
    }

    async fn save_shopify_facts(
        &self,
        shop: &ShopDomain,
        id: u64,
        facts: ShopifyFacts,
        cause: &str,
        now_ms: i64,
    ) -> Result<ShopifyApplied, StoreError> {
        let fresh = Order::from_shopify(shop.clone(), id, facts.clone(), cause, now_ms);
        let status = fresh.status;
        let first = self.with(|t| {
            let Some(cur) = t.orders.get(&(shop.clone(), id)).cloned() else {
                return Self::put(t, &fresh, None, WriteKind::Automatic)
                    .map(|_| FirstWrite::Done(ShopifyApplied::Created(status)));
            };
            // What the table's single write may overwrite blind: older facts on an order whose
            // status the Shopify facts alone decide, moving by an allowed transition.
            let blind = cur.order.shopify.updated_at_ms < facts.updated_at_ms
                && cur.order.supplier_orders.is_empty()
                && cur.order.failed.is_none()
                && cur.order.placements.is_empty()
                && status.automatic_predecessors().contains(&cur.order.status);
            if !blind {
                return Ok(FirstWrite::Refused(Box::new(cur)));
            }
            let mut next = cur.order.clone();
            next.shopify = facts.clone();
            next.needs_refetch = false;
            next.status = status;
            if !next.history.iter().any(|h| h.status == status) {
                next.history.extend(fresh.history.iter().cloned());
            }
            Self::put(t, &next, Some(cur.version), WriteKind::Automatic)
                .map(|_| FirstWrite::Done(ShopifyApplied::Updated(status)))
        })?;
        let cur = match first {
            FirstWrite::Done(applied) => return Ok(applied),
            FirstWrite::Refused(cur) => cur,
        };
        if cur.order.shopify.updated_at_ms > facts.updated_at_ms
            || (cur.order.shopify.updated_at_ms == facts.updated_at_ms
                && !cur.order.shopify.clone().join_same_instant(&facts))
        {
            return Ok(ShopifyApplied::Stale);
        }
        let mut applied = false;
        let out = self
            .update_from(Some(*cur), |order| {
                applied = order.merge_shopify_facts(facts.clone());
                if applied {
                    order.recompute_status(cause, now_ms);
                }
                applied
            })
            .await?;
        Ok(match out {
            Some(stored) if applied => ShopifyApplied::Updated(stored.order.status),
            _ => ShopifyApplied::Stale,
        })
    }

    async fn mark_needs_refetch(&self, shop: &ShopDomain, id: u64) -> Result<(), StoreError> {
        self.with(|t| match t.orders.get_mut(&(shop.clone(), id)) {
            Some(stored) => stored.order.needs_refetch = true,
            None => {
                t.refetch.insert((shop.clone(), id));
            }
        });
        Ok(())
    }

    async fn shop(&self, shop: &ShopDomain) -> Result<ShopRecord, StoreError> {
        Ok(self.shop_now(shop))
    }

    async fn mark_uninstalled(&self, shop: &ShopDomain, now_ms: i64) -> Result<(), StoreError> {
        let mut record = self.shop_now(shop);
        record.active = false;
        record.uninstalled_at_ms.get_or_insert(now_ms);
        self.set_shop(shop, record);
        Ok(())
    }

    async fn delete_shop_data(&self, shop: &ShopDomain) -> Result<u64, StoreError> {
        Ok(self.with(|t| {
            let before = t.orders.len();
            t.orders.retain(|(s, _), _| s != shop);
            t.refetch.retain(|(s, _)| s != shop);
            t.shops.remove(shop);
            (before - t.orders.len()) as u64
        }))
    }

    async fn record_delivery(
        &self,
        shop: &ShopDomain,
        key: &str,
        _now_ms: i64,
        _ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|t| t.deliveries.insert((shop.clone(), key.to_owned()))))
    }

    async fn is_connected(&self, shop: &ShopDomain) -> Result<bool, StoreError> {
        Ok(self.connections.get_connection(shop).await?.is_some())
    }
}

impl SyncStore for MemoryStore {
    async fn shop(&self, shop: &ShopDomain) -> Result<ShopRecord, StoreError> {
        Ok(self.shop_now(shop))
    }

    async fn set_aliexpress_reauth(
        &self,
        shop: &ShopDomain,
        needed: bool,
    ) -> Result<(), StoreError> {
        let mut record = self.shop_now(shop);
        record.aliexpress_reauth_needed = needed;
        self.set_shop(shop, record);
        Ok(())
    }

    async fn ae_tokens(&self, app_key: &str) -> Result<Option<AeTokenRecord>, StoreError> {
        Ok(self.with(|t| t.ae_tokens.get(app_key).cloned()))
    }

    /// One shard: the index's sharding spreads DynamoDB's load, which memory does not have.
    fn open_shards(&self) -> u32 {
        1
    }

    async fn open_orders_page(
        &self,
        shard: u32,
        shop: Option<&ShopDomain>,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<(ShopDomain, u64)>, StoreError> {
        if shard >= self.open_shards() {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        // The cursor is the last key handed out, as DynamoDB's: orders that leave the index
        // meanwhile shift nothing.
        let after: Option<(String, u64)> = match cursor {
            Some(raw) => {
                let (shop, id) = raw.rsplit_once('#').ok_or(StoreError::InvalidCursor)?;
                let id = id.parse().map_err(|_| StoreError::InvalidCursor)?;
                Some((shop.to_owned(), id))
            }
            None => None,
        };
        let mut open: Vec<(ShopDomain, u64)> = self.with(|t| {
            t.orders
                .values()
                .filter(|s| shop.is_none_or(|shop| s.order.shop == *shop))
                .filter(|s| s.order.has_open_supplier_orders() || !s.order.due_pushes().is_empty())
                .filter(|s| {
                    after.as_ref().is_none_or(|(shop, id)| {
                        (s.order.shop.as_str(), s.order.id) > (shop.as_str(), *id)
                    })
                })
                .map(|s| (s.order.shop.clone(), s.order.id))
                .collect()
        });
        open.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        let limit = usize::try_from(limit.max(1)).unwrap_or(1);
        open.truncate(limit);
        let next = (open.len() == limit)
            .then(|| open.last().map(|(shop, id)| format!("{shop}#{id}")))
            .flatten();
        let items = open;
        Ok(Page { items, next })
    }
}

/// Shopify's token endpoint: every grant is a new numbered token (`access-{n}-from-{refresh}`
/// on a refresh, `cc-{n}` for client credentials) unless a refusal is set.
#[derive(Debug, Clone, Default)]
pub struct FakeTokenEndpoint {
    /// Calls so far (refreshes and mints).
    pub calls: Arc<AtomicUsize>,
    /// When set, every call is refused so.
    pub refuse: Arc<Mutex<Option<Refusal>>>,
}

impl FakeTokenEndpoint {
    fn refusal(&self) -> Option<Refusal> {
        *self.refuse.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenEndpoint for FakeTokenEndpoint {
    async fn refresh(
        &self,
        _shop: &str,
        _client_id: &str,
        _client_secret: &str,
        refresh_token: &str,
    ) -> Result<TokenGrant, TokenError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        // Long enough for concurrent callers to pile up behind a single-flight renewal.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(r) = self.refusal() {
            return Err(TokenError::Refused(r));
        }
        Ok(TokenGrant {
            access_token: format!("access-{n}-from-{refresh_token}"),
            scope: "write_orders".into(),
            expires_in: Some(3600),
            refresh_token: Some(format!("refresh-{n}")),
            refresh_token_expires_in: Some(7_776_000),
        })
    }

    async fn client_credentials(
        &self,
        _shop: &str,
        _client_id: &str,
        _client_secret: &str,
    ) -> Result<TokenGrant, TokenError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(r) = self.refusal() {
            return Err(TokenError::Refused(r));
        }
        Ok(TokenGrant {
            access_token: format!("cc-{n}"),
            scope: "read_orders".into(),
            expires_in: Some(86_399),
            refresh_token: None,
            refresh_token_expires_in: None,
        })
    }
}

/// A Shopify Admin call, for scripting failures and counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminCall {
    FulfillmentState,
    CreateFulfillment,
    UpdateTracking,
    FetchOrder,
    TokenRefused,
    OrdersUpdatedSince,
}

/// How a scripted call answers instead of doing its work.
#[derive(Debug)]
pub enum Scripted {
    /// Nothing happens; the call fails so.
    Fail(AdminError),
    /// Nothing happens; Shopify refuses with these user errors (HTTP 200).
    UserErrors(Vec<String>),
    /// The call takes effect, then its answer is lost and it fails so: the outcome the caller
    /// cannot know (a timeout after Shopify acted).
    LostAnswer(AdminError),
}

#[derive(Debug, Default)]
struct ShopifyOrder {
    state: FulfillmentState,
    facts: Option<ShopifyFacts>,
}

#[derive(Default)]
struct ShopifyTables {
    orders: HashMap<OrderKey, ShopifyOrder>,
    script: HashMap<AdminCall, VecDeque<Scripted>>,
    calls: HashMap<AdminCall, usize>,
    created: Vec<FulfillmentRequest>,
    refused_tokens: HashSet<String>,
    next_id: u64,
    on_create: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// Shopify's Admin API in memory. Every call first yields to the scheduler, so concurrent
/// callers interleave at each call as they would over the network.
#[derive(Default)]
pub struct FakeShopify {
    tables: Mutex<ShopifyTables>,
}

impl std::fmt::Debug for FakeShopify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeShopify").finish_non_exhaustive()
    }
}

/// The GID of a fulfillment order line: the order's line item id is part of it, so a request can
/// be traced back to the line it fulfils.
fn fo_line_gid(line_item_id: u64) -> String {
    format!("gid://shopify/FulfillmentOrderLineItem/{line_item_id}")
}

impl FakeShopify {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut ShopifyTables) -> T) -> T {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut tables)
    }

    /// An order with one open fulfillment order at one location holding `lines` (line item id,
    /// quantity), nothing fulfilled yet.
    pub fn add_order(&self, shop: &ShopDomain, order_id: u64, lines: &[(u64, u32)]) {
        let fo = FulfillmentOrder {
            id: format!("gid://shopify/FulfillmentOrder/{order_id}"),
            status: "OPEN".into(),
            request_status: Some("UNSUBMITTED".into()),
            supported_actions: vec!["CREATE_FULFILLMENT".into(), "HOLD".into()],
            location: Some("Warehouse".into()),
            line_items: lines
                .iter()
                .map(|&(line_item_id, quantity)| FoLineItem {
                    id: fo_line_gid(line_item_id),
                    line_item_id,
                    remaining_quantity: quantity,
                    total_quantity: quantity,
                })
                .collect(),
        };
        self.set_state(
            shop,
            order_id,
            FulfillmentState {
                display_fulfillment_status: "UNFULFILLED".into(),
                fulfillment_orders: vec![fo],
                fulfillments: Vec::new(),
            },
        );
    }

    /// Replaces an order's fulfillment picture (fulfillment orders on hold, at several
    /// locations, none yet…).
    pub fn set_state(&self, shop: &ShopDomain, order_id: u64, state: FulfillmentState) {
        self.with(|t| {
            t.orders.entry((shop.clone(), order_id)).or_default().state = state;
        });
    }

    /// What [`ShopifyAdmin::fetch_order`] answers for the order.
    pub fn set_facts(&self, shop: &ShopDomain, order_id: u64, facts: ShopifyFacts) {
        self.with(|t| {
            t.orders.entry((shop.clone(), order_id)).or_default().facts = Some(facts);
        });
    }

    /// Shopify refuses this token from now on (an uninstalled app's tokens are revoked).
    pub fn refuse_token(&self, token: &str) {
        self.with(|t| t.refused_tokens.insert(token.to_owned()));
    }

    /// The next call of this kind answers so (scripts queue up, one per call).
    pub fn script(&self, call: AdminCall, answer: Scripted) {
        self.with(|t| t.script.entry(call).or_default().push_back(answer));
    }

    /// Runs `hook` inside each `fulfillmentCreate`, before it takes effect: what others do
    /// while a push waits for Shopify.
    pub fn on_create(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.with(|t| t.on_create = Some(Arc::new(hook)));
    }

    /// How many calls of this kind were made (scripted ones included).
    pub fn calls(&self, call: AdminCall) -> usize {
        self.with(|t| t.calls.get(&call).copied().unwrap_or(0))
    }

    /// The fulfillments that exist on the order.
    pub fn fulfillments(&self, shop: &ShopDomain, order_id: u64) -> Vec<ExistingFulfillment> {
        self.with(|t| {
            t.orders
                .get(&(shop.clone(), order_id))
                .map(|o| o.state.fulfillments.clone())
                .unwrap_or_default()
        })
    }

    /// Every `fulfillmentCreate` request that took effect.
    pub fn created(&self) -> Vec<FulfillmentRequest> {
        self.with(|t| t.created.clone())
    }

    /// Counts the call and takes its script, if any.
    async fn begin(&self, call: AdminCall) -> Option<Scripted> {
        tokio::task::yield_now().await;
        self.with(|t| {
            *t.calls.entry(call).or_default() += 1;
            t.script.get_mut(&call).and_then(VecDeque::pop_front)
        })
    }

    /// [`FakeShopify::begin`] for a call that changes nothing: a scripted answer is its error
    /// (user errors, which only mutations have, stand for a permanent failure).
    async fn begin_read(&self, call: AdminCall) -> Result<(), AdminError> {
        match self.begin(call).await {
            Some(Scripted::Fail(e) | Scripted::LostAnswer(e)) => Err(e),
            Some(Scripted::UserErrors(errs)) => Err(AdminError::Permanent(errs.join("; "))),
            None => Ok(()),
        }
    }

    fn apply_create(
        t: &mut ShopifyTables,
        shop: &ShopDomain,
        req: &FulfillmentRequest,
    ) -> MutationOutcome {
        t.next_id += 1;
        let id = format!("gid://shopify/Fulfillment/{}", t.next_id);
        let Some(order) = t.orders.get_mut(&(shop.clone(), req.order_id)) else {
            return MutationOutcome::UserErrors(vec!["order: not found".into()]);
        };
        let mut next = order.state.clone();
        let mut covered = Vec::new();
        for (fo_id, lines) in &req.line_items_by_fo {
            let Some(fo) = next.fulfillment_orders.iter_mut().find(|f| f.id == *fo_id) else {
                return MutationOutcome::UserErrors(vec!["fulfillmentOrderId: not found".into()]);
            };
            if !fo.can_create_fulfillment() {
                return MutationOutcome::UserErrors(vec![format!(
                    "fulfillmentOrder: cannot be fulfilled while {}",
                    fo.status
                )]);
            }
            let wanted: Vec<(String, u32)> = if lines.is_empty() {
                fo.line_items
                    .iter()
                    .map(|li| (li.id.clone(), li.remaining_quantity))
                    .collect()
            } else {
                lines.clone()
            };
            for (gid, quantity) in wanted {
                let Some(li) = fo.line_items.iter_mut().find(|li| li.id == gid) else {
                    return MutationOutcome::UserErrors(vec!["lineItem: not found".into()]);
                };
                if quantity > li.remaining_quantity {
                    return MutationOutcome::UserErrors(vec![
                        "quantity: exceeds the remaining quantity".into(),
                    ]);
                }
                li.remaining_quantity -= quantity;
                covered.push((li.line_item_id, quantity));
            }
            if fo.line_items.iter().all(|li| li.remaining_quantity == 0) {
                fo.status = "CLOSED".into();
                fo.supported_actions.clear();
            }
        }
        next.fulfillments.push(ExistingFulfillment {
            id: id.clone(),
            status: "SUCCESS".into(),
            tracking_numbers: vec![req.tracking.number.clone()],
            line_items: covered,
        });
        next.display_fulfillment_status = if next
            .fulfillment_orders
            .iter()
            .all(|fo| fo.line_items.iter().all(|li| li.remaining_quantity == 0))
        {
            "FULFILLED".into()
        } else {
            "PARTIALLY_FULFILLED".into()
        };
        order.state = next;
        t.created.push(req.clone());
        MutationOutcome::Done {
            fulfillment_id: Some(id),
        }
    }
}

impl ShopifyAdmin for FakeShopify {
    async fn fulfillment_state(
        &self,
        shop: &ShopDomain,
        _token: &str,
        order_id: u64,
    ) -> Result<Option<FulfillmentState>, AdminError> {
        self.begin_read(AdminCall::FulfillmentState).await?;
        Ok(self.with(|t| {
            t.orders
                .get(&(shop.clone(), order_id))
                .map(|o| o.state.clone())
        }))
    }

    async fn create_fulfillment(
        &self,
        shop: &ShopDomain,
        _token: &str,
        req: &FulfillmentRequest,
    ) -> Result<MutationOutcome, AdminError> {
        let script = self.begin(AdminCall::CreateFulfillment).await;
        let hook = self.with(|t| t.on_create.clone());
        if let Some(hook) = hook {
            hook();
        }
        match script {
            Some(Scripted::Fail(e)) => Err(e),
            Some(Scripted::UserErrors(errs)) => Ok(MutationOutcome::UserErrors(errs)),
            Some(Scripted::LostAnswer(e)) => {
                self.with(|t| Self::apply_create(t, shop, req));
                Err(e)
            }
            None => Ok(self.with(|t| Self::apply_create(t, shop, req))),
        }
    }

    async fn update_tracking(
        &self,
        shop: &ShopDomain,
        _token: &str,
        fulfillment_id: &str,
        tracking: &TrackingInfo,
        _notify_customer: bool,
    ) -> Result<MutationOutcome, AdminError> {
        let apply = |t: &mut ShopifyTables| {
            let found = t
                .orders
                .iter_mut()
                .filter(|((s, _), _)| s == shop)
                .flat_map(|(_, o)| o.state.fulfillments.iter_mut())
                .find(|f| f.id == fulfillment_id);
            match found {
                Some(f) => {
                    f.tracking_numbers = vec![tracking.number.clone()];
                    MutationOutcome::Done {
                        fulfillment_id: Some(fulfillment_id.to_owned()),
                    }
                }
                None => MutationOutcome::UserErrors(vec!["fulfillmentId: not found".into()]),
            }
        };
        match self.begin(AdminCall::UpdateTracking).await {
            Some(Scripted::Fail(e)) => Err(e),
            Some(Scripted::UserErrors(errs)) => Ok(MutationOutcome::UserErrors(errs)),
            Some(Scripted::LostAnswer(e)) => {
                self.with(apply);
                Err(e)
            }
            None => Ok(self.with(apply)),
        }
    }

    async fn fetch_order(
        &self,
        shop: &ShopDomain,
        _token: &str,
        order_id: u64,
    ) -> Result<Option<(u64, ShopifyFacts)>, AdminError> {
        self.begin_read(AdminCall::FetchOrder).await?;
        Ok(self.with(|t| {
            t.orders
                .get(&(shop.clone(), order_id))
                .and_then(|o| o.facts.clone())
                .map(|f| (order_id, f))
        }))
    }

    async fn token_refused(&self, _shop: &ShopDomain, token: &str) -> Result<bool, AdminError> {
        self.begin_read(AdminCall::TokenRefused).await?;
        Ok(self.with(|t| t.refused_tokens.contains(token)))
    }

    async fn orders_updated_since(
        &self,
        shop: &ShopDomain,
        _token: &str,
        since_ms: i64,
        _after: Option<&str>,
    ) -> Result<OrderStampPage, AdminError> {
        self.begin_read(AdminCall::OrdersUpdatedSince).await?;
        let mut orders: Vec<OrderStamp> = self.with(|t| {
            t.orders
                .iter()
                .filter(|((s, _), _)| s == shop)
                .filter_map(|((_, id), o)| {
                    o.facts.as_ref().map(|f| OrderStamp {
                        id: *id,
                        updated_at_ms: f.updated_at_ms,
                    })
                })
                .filter(|o| o.updated_at_ms >= since_ms)
                .collect()
        });
        orders.sort_by_key(|o| (o.updated_at_ms, o.id));
        Ok(OrderStampPage { orders, next: None })
    }
}

/// An AliExpress call, for scripting failures and counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeCall {
    OrderGet,
    TrackingGet,
}

#[derive(Debug, Default)]
struct AeTables {
    orders: HashMap<u64, AeOrder>,
    /// `None`: AliExpress has no tracking for it yet (its 1001 answer).
    tracking: HashMap<u64, Vec<AeTrackingLine>>,
    script: HashMap<AeCall, VecDeque<AeError>>,
    calls: HashMap<AeCall, usize>,
}

/// AliExpress's order and tracking reads in memory. Every call first yields to the scheduler.
#[derive(Debug, Default)]
pub struct FakeAliExpress {
    tables: Mutex<AeTables>,
    app_key: Option<String>,
}

impl FakeAliExpress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answering for the authorization of `app_key` (whose stored tokens a run checks first).
    pub fn with_app_key(app_key: &str) -> Self {
        Self {
            app_key: Some(app_key.to_owned()),
            ..Self::default()
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut AeTables) -> T) -> T {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut tables)
    }

    /// What `order.get` answers for the order from now on (statuses as AliExpress spells them).
    pub fn set_order(&self, ae_order_id: u64, order_status: &str, logistics_status: Option<&str>) {
        self.with(|t| {
            t.orders.insert(
                ae_order_id,
                AeOrder {
                    order_status: order_status.to_owned(),
                    logistics_status: logistics_status.map(str::to_owned),
                    ..AeOrder::default()
                },
            )
        });
    }

    /// The order's parcels, as `tracking.get` lists them from now on.
    pub fn set_tracking(&self, ae_order_id: u64, lines: Vec<AeTrackingLine>) {
        self.with(|t| t.tracking.insert(ae_order_id, lines));
    }

    /// The next call of this kind fails so (scripts queue up, one per call).
    pub fn fail_next(&self, call: AeCall, error: AeError) {
        self.with(|t| t.script.entry(call).or_default().push_back(error));
    }

    /// How many calls of this kind were made (failed ones included).
    pub fn calls(&self, call: AeCall) -> usize {
        self.with(|t| t.calls.get(&call).copied().unwrap_or(0))
    }

    async fn begin(&self, call: AeCall) -> Result<(), AeError> {
        tokio::task::yield_now().await;
        self.with(|t| {
            *t.calls.entry(call).or_default() += 1;
            t.script
                .get_mut(&call)
                .and_then(VecDeque::pop_front)
                .map_or(Ok(()), Err)
        })
    }
}

impl AliExpressApi for FakeAliExpress {
    async fn order_get(&self, ae_order_id: u64) -> Result<AeOrder, AeError> {
        self.begin(AeCall::OrderGet).await?;
        self.with(|t| t.orders.get(&ae_order_id).cloned())
            .ok_or_else(|| AeError::Permanent(format!("order {ae_order_id} is not this account's")))
    }

    async fn tracking_get(&self, ae_order_id: u64) -> Result<Option<Vec<AeTrackingLine>>, AeError> {
        self.begin(AeCall::TrackingGet).await?;
        Ok(self.with(|t| t.tracking.get(&ae_order_id).cloned()))
    }

    fn app_key(&self) -> Option<&str> {
        self.app_key.as_deref()
    }
}

/// The tracking queue in memory: what was sent, in order, and an outage switch.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<PushMessage>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message sent so far.
    pub fn sent(&self) -> Vec<PushMessage> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// While on, every send fails (an SQS outage).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl TrackingQueue for MemoryQueue {
    async fn send(&self, messages: &[PushMessage]) -> Result<(), QueueError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(QueueError::Partial(messages.len()));
        }
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(messages);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropsync_domain::OrderStatus;

    fn shop() -> ShopDomain {
        ShopDomain::parse("memory.myshopify.com").unwrap()
    }

    fn paid_order() -> Order {
        Order::from_shopify(shop(), 1, paid_facts(&[]), "test", 0)
    }

    #[tokio::test]
    async fn a_write_the_domains_transition_table_forbids_never_lands() {
        let store = MemoryStore::new();
        let mut order = paid_order();
        order.status = OrderStatus::Fulfilled;
        store.insert_order(order);
        let result = Orders::update_order(&store, &shop(), 1, |o| {
            o.status = OrderStatus::AwaitingOrder;
            true
        })
        .await;
        assert!(result.is_err());
        let stored = store.stored_order(&shop(), 1).unwrap();
        assert_eq!(stored.order.status, OrderStatus::Fulfilled);
        assert_eq!(store.order_writes(), 0);
    }

    #[tokio::test]
    async fn a_write_decided_on_a_stale_version_is_decided_again_on_the_stored_order() {
        let store = MemoryStore::new();
        let read = store.insert_order(paid_order());
        store.change_order(&shop(), 1, |o| o.shopify.name = "#1 renamed".into());
        let mut seen = Vec::new();
        let written = Orders::update_order_from(&store, &shop(), 1, Some(read), |o| {
            seen.push(o.shopify.name.clone());
            o.needs_refetch = true;
            true
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(seen, vec!["#1001".to_owned(), "#1 renamed".to_owned()]);
        assert_eq!(written.version, 3);
        assert_eq!(written.order.shopify.name, "#1 renamed");
    }

    #[tokio::test]
    async fn an_expired_push_lease_is_taken_over_and_the_old_holder_cannot_release_it() {
        let store = MemoryStore::new();
        let shop = shop();
        let package = LeasedPackage {
            shop: &shop,
            order_id: 1,
            ae_order_id: 2,
            tracking_number: "T",
        };
        let lease = Duration::from_secs(10);
        let first = store.claim_push_lease(package, lease, 0).await.unwrap();
        assert!(
            store
                .claim_push_lease(package, lease, 5_000)
                .await
                .unwrap()
                .is_none()
        );
        let second = store
            .claim_push_lease(package, lease, 10_001)
            .await
            .unwrap();
        assert!(second.is_some());
        store.release_push_lease(first.unwrap()).await.unwrap();
        assert!(
            store
                .claim_push_lease(package, lease, 10_002)
                .await
                .unwrap()
                .is_none()
        );
        store.release_push_lease(second.unwrap()).await.unwrap();
        assert!(
            store
                .claim_push_lease(package, lease, 10_003)
                .await
                .unwrap()
                .is_some()
        );
    }
}
