//! AliExpress for dropsync: the IOP gateway client (`api-sg.aliexpress.com`).
//!
//! - [`sign`]: the request signature of `shared/specs/aliexpress.md` §3.
//! - [`wire`]: tolerant parsing of the response envelopes and of every shape quirk of §8.
//! - [`AeError`]: what can go wrong, classified as rate limited / retryable / re-authorize /
//!   permanent.
//! - [`AliExpressApi`]: the port the rest of dropsync is generic over, so tests and other code can
//!   swap the real client for a fake.
//! - [`IopClient`]: the real client: signing every attempt afresh, one shared rate limiter,
//!   retries, and access-token refresh through a [`TokenStore`].

mod client;
mod error;
mod limiter;
pub mod pace;
pub mod place;
pub mod sign;
mod tokens;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

pub use client::{IopClient, IopConfig, IopStats};
pub use dropsync_domain::ops::{AeChild, AeParcelItem, AeTrackingLine};
pub use error::AeError;
pub use place::{
    AeProduct, AeSku, AeSkuProperty, CreateOutcome, FreightOption, LogisticsAddress, PlaceItem,
    PlaceOrderRequest, ProductAnswer,
};
pub use tokens::{BoxFuture, MemoryTokenStore, TokenStore, Tokens};

/// The AliExpress method that reads one order's status (spec §5.1).
pub const METHOD_ORDER_GET: &str = "aliexpress.trade.ds.order.get";
/// The AliExpress method that reads one order's tracking, one line per package (spec §5.2).
pub const METHOD_TRACKING_GET: &str = "aliexpress.ds.order.tracking.get";

/// What `aliexpress.trade.ds.order.get` says about one AliExpress order.
///
/// Status strings are kept raw (an unknown `order_status` is not an error here: the domain's
/// mapping flags it for attention).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AeOrder {
    /// `order_status`, raw (e.g. `WAIT_SELLER_SEND_GOODS`, or anything AliExpress invents).
    pub order_status: String,
    /// `logistics_status`, raw; `None` when absent or empty.
    pub logistics_status: Option<String>,
    /// The child lines (`child_order_list`), in the order AliExpress lists them.
    pub children: Vec<AeChild>,
    /// `gmt_create` as sent (`yyyy-MM-dd HH:mm:ss`, US Pacific time, no zone).
    pub gmt_create: Option<String>,
}

/// The AliExpress calls dropsync makes, as a port: the sync logic is generic over it so tests can
/// use a fake and production uses [`IopClient`].
///
/// Implementations do their own signing, rate limiting, retrying and token refreshing; an error
/// that comes back is final for this run (see [`AeError::is_retryable`] for whether a later run
/// may succeed).
pub trait AliExpressApi: Send + Sync {
    /// `aliexpress.trade.ds.order.get`: the order's status and child lines.
    fn order_get(&self, ae_order_id: u64) -> impl Future<Output = Result<AeOrder, AeError>> + Send;

    /// `aliexpress.ds.order.tracking.get`: one line per package. `Ok(None)` for 1001 "TRACKING
    /// DATA NOT FOUND", AliExpress' way of saying the order has not shipped yet (a normal state).
    fn tracking_get(
        &self,
        ae_order_id: u64,
    ) -> impl Future<Output = Result<Option<Vec<AeTrackingLine>>, AeError>> + Send;

    /// The app key whose authorization the calls use, when the client has one: the sync looks
    /// up that authorization's re-authorize deadline before spending calls that cannot succeed.
    fn app_key(&self) -> Option<&str> {
        None
    }
}

/// A shared client (the usual way: one client per invocation, behind an `Arc`) is a client too.
impl<T: AliExpressApi> AliExpressApi for Arc<T> {
    fn order_get(&self, ae_order_id: u64) -> impl Future<Output = Result<AeOrder, AeError>> + Send {
        T::order_get(self, ae_order_id)
    }

    fn tracking_get(
        &self,
        ae_order_id: u64,
    ) -> impl Future<Output = Result<Option<Vec<AeTrackingLine>>, AeError>> + Send {
        T::tracking_get(self, ae_order_id)
    }

    fn app_key(&self) -> Option<&str> {
        T::app_key(self)
    }
}

/// The calls that place supplier orders, as a port (separate from [`AliExpressApi`], so the sync
/// paths do not depend on them).
///
/// `order_create` is never retried once the request may have reached AliExpress: an answer that
/// is lost or unreadable comes back as [`CreateOutcome::Unknown`], not as an error. An `Err` means
/// AliExpress refused the request before processing it (nothing was created).
pub trait AliExpressPlacing: Send + Sync {
    /// `aliexpress.ds.product.get`: the product's SKUs, seller and title as sold to a country.
    fn product_get(
        &self,
        product_id: u64,
        ship_to_country: &str,
    ) -> impl Future<Output = Result<ProductAnswer, AeError>> + Send;

    /// `aliexpress.ds.freight.query`: shipping options for `quantity` of one SKU to a country
    /// (empty when AliExpress does not deliver there).
    fn freight_query(
        &self,
        product_id: u64,
        sku_id: &str,
        quantity: u32,
        ship_to_country: &str,
    ) -> impl Future<Output = Result<Vec<FreightOption>, AeError>> + Send;

    /// `aliexpress.ds.order.create`, sent at most once.
    fn order_create(
        &self,
        req: &PlaceOrderRequest,
    ) -> impl Future<Output = Result<CreateOutcome, AeError>> + Send;

    /// The app key whose authorization the calls use, when the client has one: placement looks
    /// up that authorization's re-authorize deadline before reading a customer's address for an
    /// order that could not be sent.
    fn app_key(&self) -> Option<&str> {
        None
    }
}

impl<T: AliExpressPlacing> AliExpressPlacing for Arc<T> {
    fn product_get(
        &self,
        product_id: u64,
        ship_to_country: &str,
    ) -> impl Future<Output = Result<ProductAnswer, AeError>> + Send {
        T::product_get(self, product_id, ship_to_country)
    }

    fn freight_query(
        &self,
        product_id: u64,
        sku_id: &str,
        quantity: u32,
        ship_to_country: &str,
    ) -> impl Future<Output = Result<Vec<FreightOption>, AeError>> + Send {
        T::freight_query(self, product_id, sku_id, quantity, ship_to_country)
    }

    fn order_create(
        &self,
        req: &PlaceOrderRequest,
    ) -> impl Future<Output = Result<CreateOutcome, AeError>> + Send {
        T::order_create(self, req)
    }

    fn app_key(&self) -> Option<&str> {
        T::app_key(self)
    }
}
