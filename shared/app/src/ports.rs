//! The store as each service uses it: one narrow trait per use, so a service names only the
//! operations it calls and can be tested against an in-memory implementation
//! (`memory`, built for tests and with the `testing` feature) without DynamoDB.
//!
//! [`Store`] implements every port by delegation; the services default their store type to it,
//! so `wiring` builds them for the functions and the local stack without naming it.

use crate::credentials::Credentials;
use crate::tokens::{ProviderError, TokenEndpoint, TokenProvider};
use dropsync_domain::{Order, ShopDomain, ShopifyFacts};
use dropsync_shopify::oauth::TokenClient;
use dropsync_store::{
    AeTokenRecord, ConnectionStore, LeasedPackage, Page, PushLease, ShopRecord, ShopifyApplied,
    Store, StoreError, StoredOrder,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The token provider a [`TokenSource`] hands out.
pub type SharedTokens<T> =
    Arc<TokenProvider<<T as TokenSource>::Connections, <T as TokenSource>::Endpoint>>;

/// Where a service gets the Shopify access tokens of its shops: the one provider backed by this
/// store (connections and refresh leases live in it), shared by every service of the process.
pub trait TokenSource {
    type Connections: ConnectionStore;
    type Endpoint: TokenEndpoint;

    /// The provider for these credentials and this Shopify endpoint (`admin_base`, when the
    /// token endpoint is not the shop's own); the same one on every call with the same
    /// arguments, so its single-flight renewals and cache are shared.
    fn shop_tokens(
        &self,
        credentials: &Arc<Credentials>,
        admin_base: Option<String>,
    ) -> Result<SharedTokens<Self>, ProviderError>;
}

impl TokenSource for Store {
    type Connections = Store;
    type Endpoint = TokenClient;

    fn shop_tokens(
        &self,
        credentials: &Arc<Credentials>,
        admin_base: Option<String>,
    ) -> Result<SharedTokens<Self>, ProviderError> {
        crate::tokens::shared(self, credentials, admin_base)
    }
}

/// One order, read and changed by conditional read-modify-write: what every service that
/// changes orders after Shopify created them (push, sync) needs.
pub trait Orders: Send + Sync {
    /// One order, read strongly consistent; `None` when there is none.
    fn order(
        &self,
        shop: &ShopDomain,
        id: u64,
    ) -> impl Future<Output = Result<Option<StoredOrder>, StoreError>> + Send;

    /// Read-modify-write of one order: [`Orders::update_order_from`] from a fresh read.
    fn update_order<F>(
        &self,
        shop: &ShopDomain,
        id: u64,
        decide: F,
    ) -> impl Future<Output = Result<Option<StoredOrder>, StoreError>> + Send
    where
        F: FnMut(&mut Order) -> bool + Send;

    /// Lets `decide` change `current` (returning whether it changed anything) and writes the
    /// result conditionally: the write is refused when the stored version is no longer
    /// `current`'s, or when the stored status may not move to the new one by the domain's
    /// transition table. On a refusal `decide` runs again on what is stored now, so no update
    /// is lost or applied twice. Returns the order as stored after the write (or as given when
    /// `decide` changed nothing); `None` when there is no order.
    fn update_order_from<F>(
        &self,
        shop: &ShopDomain,
        id: u64,
        current: Option<StoredOrder>,
        decide: F,
    ) -> impl Future<Output = Result<Option<StoredOrder>, StoreError>> + Send
    where
        F: FnMut(&mut Order) -> bool + Send;
}

impl Orders for Store {
    async fn order(&self, shop: &ShopDomain, id: u64) -> Result<Option<StoredOrder>, StoreError> {
        self.get_order(shop, id).await
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
        Store::update_order(self, shop, id, decide).await
    }

    async fn update_order_from<F>(
        &self,
        shop: &ShopDomain,
        id: u64,
        current: Option<StoredOrder>,
        decide: F,
    ) -> Result<Option<StoredOrder>, StoreError>
    where
        F: FnMut(&mut Order) -> bool + Send,
    {
        Store::update_order_from(self, shop, id, current, decide).await
    }
}

/// The store as the tracking pusher uses it ([`crate::push::PushService`]).
pub trait PushStore: Orders + TokenSource {
    /// A claim on one package, given back with [`PushStore::release_push_lease`].
    type Lease: Send;

    /// The shop's record (active flag, settings); it may be a little old (a per-process cache),
    /// which only delays when a settings change or an uninstall is seen. A shop never seen is
    /// active with default settings.
    fn shop(
        &self,
        shop: &ShopDomain,
    ) -> impl Future<Output = Result<ShopRecord, StoreError>> + Send;

    /// Claims `package` for `lease` from `now_ms`. `None` while another worker holds an
    /// unexpired claim on it; an expired claim is taken over.
    fn claim_push_lease(
        &self,
        package: LeasedPackage<'_>,
        lease: Duration,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<Self::Lease>, StoreError>> + Send;

    /// Gives a claim up if it is still this worker's. A claim that ran out and was taken over
    /// is left to its new holder, and that is not an error.
    fn release_push_lease(
        &self,
        lease: Self::Lease,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl PushStore for Store {
    type Lease = PushLease;

    async fn shop(&self, shop: &ShopDomain) -> Result<ShopRecord, StoreError> {
        self.get_shop_cached(shop).await
    }

    async fn claim_push_lease(
        &self,
        package: LeasedPackage<'_>,
        lease: Duration,
        now_ms: i64,
    ) -> Result<Option<PushLease>, StoreError> {
        Store::claim_push_lease(self, package, lease, now_ms).await
    }

    async fn release_push_lease(&self, lease: PushLease) -> Result<(), StoreError> {
        Store::release_push_lease(self, lease).await
    }
}

/// The store as the Shopify webhook uses it ([`crate::webhook::WebhookService`]).
pub trait WebhookStore: TokenSource + Send + Sync {
    /// Whether an order is stored for this shop (order ids are unique across Shopify, so one
    /// stored for a shop is that shop's).
    fn holds_order(
        &self,
        shop: &ShopDomain,
        id: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Applies an order's Shopify facts. Newer `updated_at` wins: facts older than the stored
    /// ones, or of the same instant adding nothing, write nothing and come back
    /// [`ShopifyApplied::Stale`] (so a duplicate delivery is a no-op). A new order is created
    /// in the status its facts decide (unpaid: pending; paid: awaiting order); an order with
    /// supplier-side state keeps it and only moves by the domain's automatic transitions.
    fn save_shopify_facts(
        &self,
        shop: &ShopDomain,
        id: u64,
        facts: ShopifyFacts,
        cause: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<ShopifyApplied, StoreError>> + Send;

    /// Records that an order's event came without a body and it must be fetched again. An
    /// existing order is only flagged; idempotent.
    fn mark_needs_refetch(
        &self,
        shop: &ShopDomain,
        id: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The shop's record, read now (destructive topics must not act on a cached one). A shop
    /// never seen is active with default settings.
    fn shop(
        &self,
        shop: &ShopDomain,
    ) -> impl Future<Output = Result<ShopRecord, StoreError>> + Send;

    /// A confirmed uninstall: inactive from now; a repeat keeps the first time (idempotent).
    fn mark_uninstalled(
        &self,
        shop: &ShopDomain,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes everything held about the shop; returns how many orders went. Idempotent.
    fn delete_shop_data(
        &self,
        shop: &ShopDomain,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records a delivery key for `ttl_secs`: `false` when it was recorded before (a duplicate).
    fn record_delivery(
        &self,
        shop: &ShopDomain,
        key: &str,
        now_ms: i64,
        ttl_secs: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether the shop is connected in the table (by OAuth or client credentials).
    fn is_connected(
        &self,
        shop: &ShopDomain,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl WebhookStore for Store {
    async fn holds_order(&self, shop: &ShopDomain, id: u64) -> Result<bool, StoreError> {
        Ok(self.get_order(shop, id).await?.is_some())
    }

    async fn save_shopify_facts(
        &self,
        shop: &ShopDomain,
        id: u64,
        facts: ShopifyFacts,
        cause: &str,
        now_ms: i64,
    ) -> Result<ShopifyApplied, StoreError> {
        Store::save_shopify_facts(self, shop, id, facts, cause, now_ms).await
    }

    async fn mark_needs_refetch(&self, shop: &ShopDomain, id: u64) -> Result<(), StoreError> {
        Store::mark_needs_refetch(self, shop, id).await
    }

    async fn shop(&self, shop: &ShopDomain) -> Result<ShopRecord, StoreError> {
        self.get_shop(shop).await
    }

    async fn mark_uninstalled(&self, shop: &ShopDomain, now_ms: i64) -> Result<(), StoreError> {
        Store::mark_uninstalled(self, shop, now_ms).await
    }

    async fn delete_shop_data(&self, shop: &ShopDomain) -> Result<u64, StoreError> {
        Store::delete_shop_data(self, shop).await
    }

    async fn record_delivery(
        &self,
        shop: &ShopDomain,
        key: &str,
        now_ms: i64,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        Store::record_delivery(self, shop, key, now_ms, ttl_secs).await
    }

    async fn is_connected(&self, shop: &ShopDomain) -> Result<bool, StoreError> {
        Ok(self.get_connection(shop).await?.is_some())
    }
}

/// The store as the AliExpress sync uses it ([`crate::sync::SyncService`]).
pub trait SyncStore: Orders {
    /// The shop's record, read now (its active flag decides whether its orders are synced). A
    /// shop never seen is active with default settings.
    fn shop(
        &self,
        shop: &ShopDomain,
    ) -> impl Future<Output = Result<ShopRecord, StoreError>> + Send;

    /// Records whether the shop's merchant must re-authorize AliExpress. Idempotent.
    fn set_aliexpress_reauth(
        &self,
        shop: &ShopDomain,
        needed: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The AliExpress tokens of an app key as last stored (their refresh deadline tells whether
    /// the authorization has ended).
    fn ae_tokens(
        &self,
        app_key: &str,
    ) -> impl Future<Output = Result<Option<AeTokenRecord>, StoreError>> + Send;

    /// How many shards the open index has; [`SyncStore::open_orders_page`] takes `0..` this.
    fn open_shards(&self) -> u32;

    /// One page of the open index of one shard: the `(shop, order id)` of every order with an
    /// open supplier order or a push still due, each once across the pages of a shard, in a
    /// stable order (of one shop only with `shop`). `cursor` is a page's `next`, as handed out
    /// for the same shard and shop; another is [`StoreError::InvalidCursor`].
    fn open_orders_page(
        &self,
        shard: u32,
        shop: Option<&ShopDomain>,
        cursor: Option<&str>,
        limit: i32,
    ) -> impl Future<Output = Result<Page<(ShopDomain, u64)>, StoreError>> + Send;
}

impl SyncStore for Store {
    async fn shop(&self, shop: &ShopDomain) -> Result<ShopRecord, StoreError> {
        self.get_shop(shop).await
    }

    async fn set_aliexpress_reauth(
        &self,
        shop: &ShopDomain,
        needed: bool,
    ) -> Result<(), StoreError> {
        Store::set_aliexpress_reauth(self, shop, needed).await
    }

    async fn ae_tokens(&self, app_key: &str) -> Result<Option<AeTokenRecord>, StoreError> {
        self.get_ae_tokens(app_key).await
    }

    fn open_shards(&self) -> u32 {
        Store::open_shards(self)
    }

    async fn open_orders_page(
        &self,
        shard: u32,
        shop: Option<&ShopDomain>,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Page<(ShopDomain, u64)>, StoreError> {
        match shop {
            Some(shop) => Store::open_orders_page_for_shop(self, shard, shop, cursor, limit).await,
            None => Store::open_orders_page(self, shard, cursor, limit).await,
        }
    }
}
