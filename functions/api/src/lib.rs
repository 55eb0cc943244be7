//! The merchant API (API Gateway HTTP API): orders by tab, order detail, linking an AliExpress
//! order, manual sync of an order or a shop, settings, the attention list, and `GET /health`.
//!
//! The router parses the raw path itself (rather than relying on API Gateway's path
//! parameters), so the same handler serves a `{proxy+}` route on AWS and the local stack.
//! Errors become JSON `{"error": ...}` answers in one place ([`ApiError::response`]); a 5xx
//! never carries internals.

pub mod pages;
pub mod routes;
pub mod view;

use dropsync_aliexpress::AliExpressApi;
use dropsync_app::credentials::Access;
use dropsync_app::place::Placer;
use dropsync_app::queue::TrackingQueue;
use dropsync_app::reconcile::{ReconcileError, ReconcileService};
use dropsync_app::sync::{SyncError, SyncService};
use dropsync_app::wiring::WiringError;
use dropsync_app::{Credentials, now_ms};
use dropsync_domain::ops::{LinkError, link_supplier_order};
use dropsync_domain::{ItemLink, OrderStatus, ShopDomain, ShopSettings};
use dropsync_shopify::admin::AdminClient;
use dropsync_store::{Store, StoreError};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::{info, warn};

/// Largest request body the API accepts (its JSON documents are small).
pub const MAX_BODY: usize = 64 * 1024;
const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 250;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("this token may not access this shop")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but refers to something that does not exist elsewhere (an AliExpress product).
    #[error("{0}")]
    Unprocessable(String),
    #[error("request body too large")]
    TooLarge,
    #[error("temporarily unavailable")]
    Unavailable,
    /// A manual shop sync is in flight, or one started too recently: `Retry-After` seconds.
    #[error("a sync of this shop is running or just ran; retry later")]
    TooManyRequests(u64),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn response(&self) -> Response<Body> {
        let mut res = json_response(self.status(), &json!({"error": self.to_string()}));
        if let ApiError::MethodNotAllowed(allow) = self {
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let ApiError::TooManyRequests(secs) = self
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let ApiError::Unauthorized = self {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor => ApiError::BadRequest("invalid cursor".into()),
            StoreError::NotFound => ApiError::NotFound,
            e if e.is_retryable() => {
                warn!(error = %e, "store unavailable");
                ApiError::Unavailable
            }
            e => {
                warn!(error = %e, "store error");
                ApiError::Internal
            }
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::NotFound => ApiError::NotFound,
            // The merchant's move, not a transient fault: say what to do.
            SyncError::AuthorizationEnded(why) => ApiError::Conflict(why),
            SyncError::Store(s) => s.into(),
            SyncError::Ae(a) => {
                warn!(error = %a, "AliExpress unavailable for a manual sync");
                ApiError::Unavailable
            }
        }
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut res = Response::new(Body::Text(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The routes the API serves, as (method, path template). Kept in step with `openapi.yaml` by a
/// test.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/shops/{shop}/orders"),
    ("GET", "/shops/{shop}/attention"),
    ("GET", "/shops/{shop}/orders/{order_id}"),
    ("PUT", "/shops/{shop}/orders/{order_id}/supplier-orders"),
    ("POST", "/shops/{shop}/orders/{order_id}/sync"),
    ("POST", "/shops/{shop}/sync"),
    ("POST", "/shops/{shop}/reconcile"),
    ("GET", "/shops/{shop}/settings"),
    ("PUT", "/shops/{shop}/settings"),
    ("GET", "/shops/{shop}/mappings"),
    ("PUT", "/shops/{shop}/mappings/{variant_id}"),
    ("DELETE", "/shops/{shop}/mappings/{variant_id}"),
    ("POST", "/shops/{shop}/orders/{order_id}/place"),
    ("POST", "/shops/{shop}/orders/place"),
    ("GET", "/connect/shopify"),
    ("GET", "/connect/shopify/callback"),
    ("GET", "/connect/aliexpress"),
    ("GET", "/connect/aliexpress/callback"),
    ("GET", "/connections"),
    ("POST", "/shops/{shop}/webhooks/reconcile"),
];

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health,
    Orders(ShopDomain),
    Attention(ShopDomain),
    Order(ShopDomain, u64),
    Link(ShopDomain, u64),
    SyncOrder(ShopDomain, u64),
    SyncShop(ShopDomain),
    Reconcile(ShopDomain),
    Settings(ShopDomain),
    Mappings(ShopDomain),
    Mapping(ShopDomain, u64),
    PlaceOrder(ShopDomain, u64),
    PlaceBulk(ShopDomain),
    ConnectShopify,
    ShopifyCallback,
    ConnectAliexpress,
    AliexpressCallback,
    Connections,
    ReconcileWebhooks(ShopDomain),
}

fn parse_shop(seg: &str) -> Result<ShopDomain, ApiError> {
    ShopDomain::parse(seg).map_err(|_| ApiError::BadRequest("invalid shop domain".into()))
}

fn parse_order_id(seg: &str) -> Result<u64, ApiError> {
    if seg.is_empty() || seg.len() > 20 || !seg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest("invalid order id".into()));
    }
    seg.parse()
        .map_err(|_| ApiError::BadRequest("invalid order id".into()))
}

/// Matches path and method. Unknown paths are 404, known paths with another method 405.
fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let allow = |ok: bool, allow: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed(allow))
        }
    };
    match segs.as_slice() {
        ["health"] => allow(method == Method::GET, "GET").map(|_| Route::Health),
        ["shops", shop, "orders"] => {
            allow(method == Method::GET, "GET")?;
            Ok(Route::Orders(parse_shop(shop)?))
        }
        ["shops", shop, "attention"] => {
            allow(method == Method::GET, "GET")?;
            Ok(Route::Attention(parse_shop(shop)?))
        }
        ["shops", shop, "orders", "place"] => {
            allow(method == Method::POST, "POST")?;
            Ok(Route::PlaceBulk(parse_shop(shop)?))
        }
        ["shops", shop, "orders", id, "place"] => {
            allow(method == Method::POST, "POST")?;
            Ok(Route::PlaceOrder(parse_shop(shop)?, parse_order_id(id)?))
        }
        ["shops", shop, "mappings"] => {
            allow(method == Method::GET, "GET")?;
            Ok(Route::Mappings(parse_shop(shop)?))
        }
        ["shops", shop, "mappings", variant] => {
            allow(
                method == Method::PUT || method == Method::DELETE,
                "PUT, DELETE",
            )?;
            let variant = parse_order_id(variant)
                .map_err(|_| ApiError::BadRequest("invalid variant id".into()))?;
            Ok(Route::Mapping(parse_shop(shop)?, variant))
        }
        ["shops", shop, "orders", id] => {
            allow(method == Method::GET, "GET")?;
            Ok(Route::Order(parse_shop(shop)?, parse_order_id(id)?))
        }
        ["shops", shop, "orders", id, "supplier-orders"] => {
            allow(method == Method::PUT, "PUT")?;
            Ok(Route::Link(parse_shop(shop)?, parse_order_id(id)?))
        }
        ["shops", shop, "orders", id, "sync"] => {
            allow(method == Method::POST, "POST")?;
            Ok(Route::SyncOrder(parse_shop(shop)?, parse_order_id(id)?))
        }
        ["shops", shop, "sync"] => {
            allow(method == Method::POST, "POST")?;
            Ok(Route::SyncShop(parse_shop(shop)?))
        }
        ["shops", shop, "reconcile"] => {
            allow(method == Method::POST, "POST")?;
            Ok(Route::Reconcile(parse_shop(shop)?))
        }
        ["shops", shop, "settings"] => {
            allow(method == Method::GET || method == Method::PUT, "GET, PUT")?;
            Ok(Route::Settings(parse_shop(shop)?))
        }
        ["connect", "shopify"] => {
            allow(method == Method::GET, "GET").map(|_| Route::ConnectShopify)
        }
        ["connect", "shopify", "callback"] => {
            allow(method == Method::GET, "GET").map(|_| Route::ShopifyCallback)
        }
        ["connect", "aliexpress"] => {
            allow(method == Method::GET, "GET").map(|_| Route::ConnectAliexpress)
        }
        ["connect", "aliexpress", "callback"] => {
            allow(method == Method::GET, "GET").map(|_| Route::AliexpressCallback)
        }
        ["connections"] => allow(method == Method::GET, "GET").map(|_| Route::Connections),
        ["shops", shop, "webhooks", "reconcile"] => {
            allow(method == Method::POST, "POST")?;
            Ok(Route::ReconcileWebhooks(parse_shop(shop)?))
        }
        _ => Err(ApiError::NotFound),
    }
}

/// An id given as a JSON string or number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id(pub(crate) u64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Id(n)),
            Raw::S(s)
                if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.parse()
                    .map(Id)
                    .map_err(|_| serde::de::Error::custom("id out of range"))
            }
            Raw::S(_) => Err(serde::de::Error::custom("ids are digit strings or numbers")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkItem {
    line_item_id: Id,
    #[serde(default)]
    aliexpress_product_id: Option<Id>,
    #[serde(default)]
    aliexpress_sku_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    aliexpress_order_id: Id,
    line_item_ids: Vec<Id>,
    #[serde(default)]
    items: Vec<LinkItem>,
}

/// The API's dependencies, built once.
#[derive(Debug)]
pub struct Api<A, Q> {
    pub store: Store,
    pub credentials: Arc<Credentials>,
    /// Manual sync (absent when no AliExpress credentials are configured).
    pub sync: Option<Arc<SyncService<A, Q>>>,
    /// Supplier-order placement and mapping checks (absent without AliExpress credentials).
    pub place: Option<Arc<dyn Placer>>,
    /// Connecting stores (absent when `PUBLIC_URL` is not configured).
    pub connect: Option<Arc<dropsync_app::connect::ConnectService>>,
    /// `POST /shops/{shop}/reconcile` (absent: 503).
    pub reconcile: Option<Arc<ReconcileService<AdminClient>>>,
}

impl Api<dropsync_aliexpress::IopClient, dropsync_app::queue::SqsQueue> {
    /// The API's services from the graph: manual sync and placing need AliExpress credentials,
    /// connecting stores needs `PUBLIC_URL`; each is absent (its routes answer so) without them.
    pub fn from_graph(g: &dropsync_app::wiring::Graph) -> Result<Self, WiringError> {
        let (sync, place) = match g.aliexpress() {
            Ok(_) => (Some(Arc::new(g.sync()?)), Some(g.placer()?)),
            Err(WiringError::NoAliexpress) => (None, None),
            Err(e) => return Err(e),
        };
        Ok(Self {
            store: g.store.clone(),
            credentials: g.credentials.clone(),
            sync,
            place,
            connect: g.connect()?.map(Arc::new),
            reconcile: Some(Arc::new(g.reconcile()?)),
        })
    }
}

/// The least time between the starts of two manual syncs of one shop.
pub const MANUAL_SYNC_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// A manual sync's gate is held for its budget plus this, at most (a crashed holder's opens).
const SYNC_HOLD_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A unique holder id for one manual sync.
fn sync_holder() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        dropsync_app::now_ms(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// How long one `POST /shops/{shop}/reconcile` may run (API Gateway's 30 s, less a margin); a
/// big backlog resumes from the stored watermark on the next call or scheduled run.
const RECONCILE_BUDGET: std::time::Duration = std::time::Duration::from_secs(25);

fn reconcile_error(e: ReconcileError) -> ApiError {
    match e {
        ReconcileError::UnknownShop => ApiError::NotFound,
        ReconcileError::Unavailable(_) | ReconcileError::Refused(_) => {
            warn!(error = %e, "reconciliation failed");
            ApiError::Unavailable
        }
        ReconcileError::Internal => ApiError::Internal,
    }
}

fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn body_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// How long one manual shop sync may run: API Gateway gives up on an HTTP API integration after
/// 30 s, and the page in flight at the deadline (up to 50 orders) is finished first.
pub const SHOP_SYNC_BUDGET: std::time::Duration = std::time::Duration::from_secs(15);

/// A shop sync's `next_cursor`: `{shard}` or `{shard}-{open-index page}`.
fn sync_cursor(c: &dropsync_app::sync::PollCursor) -> String {
    match &c.page {
        Some(p) => format!("{}-{p}", c.shard),
        None => c.shard.to_string(),
    }
}

fn parse_sync_cursor(raw: &str, shards: u32) -> Result<dropsync_app::sync::PollCursor, ApiError> {
    let bad = || ApiError::BadRequest("invalid cursor".into());
    let (shard, page) = match raw.split_once('-') {
        Some((s, p)) => (s, Some(p)),
        None => (raw, None),
    };
    if shard.is_empty() || shard.len() > 3 || !shard.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let shard: u32 = shard.parse().map_err(|_| bad())?;
    if shard >= shards || page.is_some_and(|p| !dropsync_store::cursor_is_valid(p)) {
        return Err(bad());
    }
    Ok(dropsync_app::sync::PollCursor {
        shard,
        page: page.map(str::to_owned),
        run: None,
        shop: None,
    })
}

/// `limit` (1..=250, default 50) and `cursor` of a list request.
fn paging(query: Option<&str>) -> Result<(i32, Option<&str>), ApiError> {
    let limit = match query_param(query, "limit")? {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1..={MAX_PAGE}")))?,
    };
    let cursor = query_param(query, "cursor")?.filter(|c| !c.is_empty());
    if let Some(c) = cursor
        && !dropsync_store::cursor_is_valid(c)
    {
        return Err(ApiError::BadRequest("invalid cursor".into()));
    }
    Ok((limit, cursor))
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Result<Option<&'a str>, ApiError> {
    let Some(q) = query else { return Ok(None) };
    let mut found = None;
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err(ApiError::BadRequest(format!("{name} given twice")));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

/// The bearer token of a request (the first Authorization header), if any.
fn bearer(req: &Request) -> Option<&str> {
    let raw = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    raw.strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .map(str::trim)
}

/// The request's one bearer token: 401 when it is missing or not a bearer token, 400 when the
/// request carries several `Authorization` headers (which one a proxy would pick is unknowable).
pub(crate) fn the_bearer_token(req: &Request) -> Result<&str, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let first = values.next().ok_or(ApiError::Unauthorized)?;
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "more than one Authorization header".into(),
        ));
    }
    let raw = first.to_str().map_err(|_| ApiError::Unauthorized)?;
    Ok(raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized)?
        .trim())
}

impl<A: AliExpressApi + 'static, Q: TrackingQueue + 'static> Api<A, Q> {
    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let path = req.uri().path();
        if path == "/app" || path.starts_with("/app/") {
            return self.handle_app(&req).await;
        }
        match self.dispatch(&req).await {
            Ok(res) => res,
            Err(e) => e.response(),
        }
    }

    async fn authorize(&self, req: &Request, shop: &ShopDomain) -> Result<(), ApiError> {
        let token = the_bearer_token(req)?;
        match self.credentials.token_sees(token, shop) {
            Access::Granted => Ok(()),
            // Shops connected by OAuth live in the table, not the credentials document.
            Access::Forbidden
                if self.credentials.is_admin(token)
                    && routes::connect::is_connected(&self.store, shop).await? =>
            {
                Ok(())
            }
            Access::Forbidden => Err(ApiError::Forbidden),
            Access::Unknown => Err(ApiError::Unauthorized),
        }
    }

    async fn dispatch(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let route = route(req.method(), req.uri().path())?;
        let body = req.body().as_ref();
        if body.len() > MAX_BODY {
            return Err(ApiError::TooLarge);
        }
        let query = req.uri().query();
        match route {
            Route::Health => match self.store.ping().await {
                Ok(()) => Ok(json_response(StatusCode::OK, &json!({"ok": true}))),
                Err(e) => {
                    warn!(error = %e, "health check: table unreachable");
                    Err(ApiError::Unavailable)
                }
            },
            Route::ConnectShopify => {
                routes::connect::start_shopify(self.connect.as_deref(), req, &self.credentials)
                    .await
            }
            Route::ShopifyCallback => {
                routes::connect::shopify_callback(self.connect.as_deref(), req).await
            }
            Route::ConnectAliexpress => {
                routes::connect::start_aliexpress(self.connect.as_deref(), req, &self.credentials)
                    .await
            }
            Route::AliexpressCallback => {
                routes::connect::aliexpress_callback(self.connect.as_deref(), req).await
            }
            Route::Connections => {
                routes::connect::connections(self.connect.as_deref(), req, &self.credentials).await
            }
            Route::ReconcileWebhooks(shop) => {
                // A shop the token cannot see is a 403 whatever else is configured.
                self.authorize(req, &shop).await?;
                routes::connect::reconcile(self.connect.as_deref(), req, &self.credentials, &shop)
                    .await
            }
            Route::Orders(shop) => {
                self.authorize(req, &shop).await?;
                self.list(&shop, query).await
            }
            Route::Attention(shop) => {
                self.authorize(req, &shop).await?;
                self.attention(&shop, query).await
            }
            Route::Order(shop, id) => {
                self.authorize(req, &shop).await?;
                let stored = self
                    .store
                    .get_order(&shop, id)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                Ok(json_response(
                    StatusCode::OK,
                    &view::order_json(&stored.order),
                ))
            }
            Route::Link(shop, id) => {
                self.authorize(req, &shop).await?;
                self.link(&shop, id, body).await
            }
            Route::SyncOrder(shop, id) => {
                self.authorize(req, &shop).await?;
                let sync = self.sync.as_ref().ok_or(ApiError::Unavailable)?;
                self.store
                    .get_order(&shop, id)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                let (stored, report) = sync.sync_order(&shop, id).await?;
                let mut v = view::order_json(&stored.order);
                if let Some(o) = v.as_object_mut() {
                    o.insert("sync".into(), json!(report));
                }
                Ok(json_response(StatusCode::OK, &v))
            }
            Route::SyncShop(shop) => {
                self.authorize(req, &shop).await?;
                let sync = self.sync.as_ref().ok_or(ApiError::Unavailable)?;
                let from = query_param(query, "cursor")?
                    .filter(|c| !c.is_empty())
                    .map(|c| parse_sync_cursor(c, self.store.open_shards()))
                    .transpose()?;
                // One manual sync per shop at a time, across every Lambda, and one start per
                // MANUAL_SYNC_MIN_INTERVAL: a client looping on this route cannot spend the
                // AliExpress app key's rate (shared by every shop) or stack concurrent syncs.
                let holder = sync_holder();
                let now = dropsync_app::now_ms();
                if let Some(wait_ms) = self
                    .store
                    .start_manual_sync(
                        &shop,
                        &holder,
                        now,
                        ms(SHOP_SYNC_BUDGET + SYNC_HOLD_MARGIN),
                        // Going on from a cursor continues a sync: only one at a time applies.
                        if from.is_some() {
                            0
                        } else {
                            ms(MANUAL_SYNC_MIN_INTERVAL)
                        },
                    )
                    .await?
                {
                    let secs = u64::try_from(wait_ms.saturating_add(999) / 1000).unwrap_or(1);
                    info!(shop = %shop, retry_after = secs, "manual shop sync refused: one running or just ran");
                    return Err(ApiError::TooManyRequests(secs.max(1)));
                }
                let deadline = std::time::Instant::now() + SHOP_SYNC_BUDGET;
                let result = sync.sync_shop(&shop, from, deadline).await;
                if let Err(e) = self.store.end_manual_sync(&shop, &holder).await {
                    warn!(shop = %shop, error = %e, "manual sync gate not released; it opens at its hold's end");
                }
                let mut report = result?;
                info!(shop = %shop, ?report, "manual shop sync");
                let next = report.continue_from.take().map(|c| sync_cursor(&c));
                let mut v = json!(report);
                if let Some(o) = v.as_object_mut() {
                    o.remove("continue_from");
                    o.insert("complete".into(), json!(next.is_none()));
                    o.insert("next_cursor".into(), json!(next));
                }
                Ok(json_response(StatusCode::OK, &v))
            }
            Route::Mappings(shop) => {
                self.authorize(req, &shop).await?;
                routes::mappings::list(&self.store, &shop, query).await
            }
            Route::Mapping(shop, variant) => {
                self.authorize(req, &shop).await?;
                if req.method() == Method::DELETE {
                    return routes::mappings::delete(&self.store, &shop, variant).await;
                }
                routes::mappings::put(&self.store, self.place.as_deref(), &shop, variant, body)
                    .await
            }
            Route::PlaceOrder(shop, id) => {
                self.authorize(req, &shop).await?;
                routes::place::place_one(self.place.as_deref(), &shop, id).await
            }
            Route::PlaceBulk(shop) => {
                self.authorize(req, &shop).await?;
                routes::place::place_bulk(self.place.as_deref(), &shop, body).await
            }
            Route::Reconcile(shop) => {
                // Admin only: it spends the shop's Shopify budget.
                self.authorize(req, &shop).await?;
                if !self.credentials.is_admin(bearer(req).unwrap_or_default()) {
                    return Err(ApiError::Forbidden);
                }
                let svc = self.reconcile.as_ref().ok_or(ApiError::Unavailable)?;
                let deadline = std::time::Instant::now() + RECONCILE_BUDGET;
                let report = svc
                    .reconcile_shop(&shop, deadline)
                    .await
                    .map_err(reconcile_error)?;
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"checked": report.checked, "changed": report.changed,
                        "watermark": rfc3339_ms(report.watermark_ms)}),
                ))
            }
            Route::Settings(shop) => {
                self.authorize(req, &shop).await?;
                if req.method() == Method::PUT {
                    let settings: ShopSettings = body_json(body)?;
                    validate_settings(&settings)?;
                    self.store.put_settings(&shop, &settings).await?;
                    return Ok(json_response(StatusCode::OK, &json!(settings)));
                }
                let rec = self.store.get_shop(&shop).await?;
                Ok(json_response(StatusCode::OK, &json!(rec.settings)))
            }
        }
    }

    async fn list(
        &self,
        shop: &ShopDomain,
        query: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let status: OrderStatus = query_param(query, "status")?
            .ok_or_else(|| ApiError::BadRequest("status is required (a tab name)".into()))?
            .parse()
            .map_err(|_| ApiError::BadRequest("unknown status".into()))?;
        let (limit, cursor) = paging(query)?;
        let page = self
            .store
            .list_by_status(shop, status, cursor, limit)
            .await?;
        let counts = self.store.count_by_status(shop).await?;
        let rec = self.store.get_shop(shop).await?;
        let orders: Vec<Value> = page
            .items
            .iter()
            .map(|s| view::order_json(&s.order))
            .collect();
        let counts: serde_json::Map<String, Value> = counts
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "orders": orders,
                "next_cursor": page.next,
                "counts": counts,
                "shop": {"domain": shop, "active": rec.active, "aliexpress_reauth_needed": rec.aliexpress_reauth_needed},
            }),
        ))
    }

    /// Everything the merchant must look at: orders with an attention flag (a push Shopify refused
    /// or one that went to the dead-letter queue, a supplier-side problem, a cancel to make by
    /// hand), each with its reasons in `attention`, newest first.
    async fn attention(
        &self,
        shop: &ShopDomain,
        query: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let (limit, cursor) = paging(query)?;
        let page = self.store.list_attention(shop, cursor, limit).await?;
        let orders: Vec<Value> = page
            .items
            .iter()
            .map(|s| view::order_json(&s.order))
            .collect();
        // Connections needing the merchant (reconnect Shopify, re-authorize AliExpress) head the list.
        let connections = match &self.connect {
            Some(c) => c
                .attention()
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i.get("shop").is_none_or(|s| s == shop.as_str()))
                .collect(),
            None => Vec::new(),
        };
        Ok(json_response(
            StatusCode::OK,
            &json!({"orders": orders, "next_cursor": page.next, "connections": connections}),
        ))
    }

    async fn link(
        &self,
        shop: &ShopDomain,
        id: u64,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        let req: LinkBody = body_json(body)?;
        if req.line_item_ids.is_empty() || req.line_item_ids.len() > 250 || req.items.len() > 250 {
            return Err(ApiError::BadRequest(
                "line_item_ids must hold 1 to 250 ids".into(),
            ));
        }
        let lines: Vec<u64> = req.line_item_ids.iter().map(|i| i.0).collect();
        let items: Vec<ItemLink> = req
            .items
            .iter()
            .map(|it| ItemLink {
                line_item_id: it.line_item_id.0,
                product_id: it.aliexpress_product_id.map(|p| p.0.to_string()),
                sku_id: it.aliexpress_sku_id.clone().filter(|s| !s.is_empty()),
            })
            .collect();
        let ae = req.aliexpress_order_id.0;
        // Read once: the order must exist before its AliExpress order is claimed, and the link's
        // conditional write starts from this read (naming its version) instead of reading again.
        let Some(current) = self.store.get_order(shop, id).await? else {
            return Err(ApiError::NotFound);
        };
        // An AliExpress order belongs to one order of one shop: claimed first, so two links of
        // the same id to different orders cannot both land.
        let newly_owned = match self.store.claim_aliexpress_order(shop, id, ae).await? {
            dropsync_store::Ownership::Claimed => true,
            dropsync_store::Ownership::AlreadyOurs => false,
            dropsync_store::Ownership::Elsewhere { .. } => {
                return Err(ApiError::Conflict(format!(
                    "AliExpress order {ae} is already linked to another order"
                )));
            }
        };
        let mut result: Result<bool, LinkError> = Ok(false);
        let now = now_ms();
        let stored = self
            .store
            .update_order_from(shop, id, Some(current), |o| {
                result = link_supplier_order(o, ae, &lines, items.clone(), now);
                matches!(result, Ok(true))
            })
            .await?
            .ok_or(ApiError::NotFound)?;
        if result.is_err() && newly_owned {
            self.store.release_aliexpress_order(shop, id, ae).await?;
        }
        let created = match result {
            Ok(created) => created,
            Err(
                e @ (LinkError::AlreadyLinked { .. }
                | LinkError::DifferentLines(_)
                | LinkError::WrongStatus(_)),
            ) => {
                return Err(ApiError::Conflict(e.to_string()));
            }
            Err(e) => return Err(ApiError::BadRequest(e.to_string())),
        };
        info!(shop = %shop, order_id = id, ae_order_id = ae, created, "supplier order linked");
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(json_response(status, &view::order_json(&stored.order)))
    }
}

pub(crate) fn validate_settings(s: &ShopSettings) -> Result<(), ApiError> {
    let t = &s.tracking_url_template;
    if !(t.starts_with("https://") && t.contains("{number}") && t.len() <= 512) {
        return Err(ApiError::BadRequest(
            "tracking_url_template must be an https URL containing {number}".into(),
        ));
    }
    if s.carrier_mapping.len() > 200
        || s.carrier_mapping.iter().any(|(k, v)| {
            k.trim().is_empty() || v.trim().is_empty() || k.len() > 100 || v.len() > 100
        })
    {
        return Err(ApiError::BadRequest(
            "carrier_mapping: up to 200 non-empty names of at most 100 characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_is_served_and_no_other_method_is() {
        for (m, p) in ROUTES {
            let path = p
                .replace("{shop}", "a.myshopify.com")
                .replace("{order_id}", "1")
                .replace("{variant_id}", "2");
            let method: Method = m.parse().unwrap();
            assert!(route(&method, &path).is_ok(), "{m} {p}");
            for other in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
                if !ROUTES.iter().any(|(mm, pp)| *mm == other && pp == p) {
                    let r = route(&other.parse().unwrap(), &path);
                    assert!(
                        matches!(r, Err(ApiError::MethodNotAllowed(_))),
                        "{other} {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn routes_match_methods_and_reject_traversal() {
        let shop = ShopDomain::parse("a.myshopify.com").unwrap();
        assert_eq!(route(&Method::GET, "/health").unwrap(), Route::Health);
        assert_eq!(
            route(&Method::GET, "/shops/a.myshopify.com/orders/12").unwrap(),
            Route::Order(shop.clone(), 12)
        );
        assert!(matches!(
            route(&Method::DELETE, "/shops/a.myshopify.com/orders"),
            Err(ApiError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            route(&Method::GET, "/shops/../orders"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            route(&Method::GET, "/shops/../etc/orders"),
            Err(ApiError::NotFound)
        ));
        assert!(matches!(
            route(&Method::GET, "/nope"),
            Err(ApiError::NotFound)
        ));
        assert!(matches!(
            route(
                &Method::GET,
                "/shops/a.myshopify.com/orders/123456789012345678901234"
            ),
            Err(ApiError::BadRequest(_))
        ));
    }
}
