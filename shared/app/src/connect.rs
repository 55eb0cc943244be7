//! Connecting stores: Shopify OAuth (authorization code with expiring offline tokens), the
//! AliExpress authorization, managed webhook subscriptions, and the connections report.
//!
//! Every check on a callback runs before anything is exchanged or stored; a failed check is a
//! typed error the routes turn into a 400 or 401. Tokens go to the table and nowhere else: no
//! answer carries them and no log line names them.

use crate::credentials::Credentials;
use crate::now_ms;
use crate::queue::{PushMessage, SqsQueue, TrackingQueue};
use crate::tokens::{ProviderError, ShopTokens, connection_from_grant};
use dropsync_aliexpress::sign::sign;
use dropsync_domain::ShopDomain;
use dropsync_http::encode_component as encode;
use dropsync_shopify::admin::AdminClient;
use dropsync_shopify::admin::subscriptions::{SubscriptionOutcome, WebhookSubscriptions};
use dropsync_shopify::oauth::{
    TokenClient, TokenError, is_valid_shop_domain, timestamp_is_fresh, verify_query_hmac,
};
use dropsync_store::connections::NONCE_TTL_MS;
use dropsync_store::{
    AeTokenRecord, ConnectMethod, ConnectionStatus, ConnectionStore, NonceBinding, Store,
    StoreError, TopicState,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The webhook topics dropsync subscribes every shop to, as (Shopify topic, GraphQL enum).
pub const TOPICS: &[(&str, &str)] = &[
    ("orders/create", "ORDERS_CREATE"),
    ("orders/updated", "ORDERS_UPDATED"),
    ("orders/paid", "ORDERS_PAID"),
    ("orders/cancelled", "ORDERS_CANCELLED"),
    ("orders/fulfilled", "ORDERS_FULFILLED"),
    ("orders/partially_fulfilled", "ORDERS_PARTIALLY_FULFILLED"),
    ("app/uninstalled", "APP_UNINSTALLED"),
];

/// Compliance topics are configured in the app's settings, never through the API.
pub const COMPLIANCE_TOPICS: &[&str] =
    &["customers/data_request", "customers/redact", "shop/redact"];

/// From this long before the AliExpress refresh token ends, the merchant is asked to
/// re-authorize.
pub const REAUTHORIZE_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a connect step failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A malformed or stale request (bad shop, missing parameter, old timestamp): 400.
    #[error("{0}")]
    BadRequest(String),
    /// A forged or replayed callback (bad HMAC, unknown, reused or foreign state): 401.
    #[error("{0}")]
    Forbidden(String),
    /// The credentials document lacks the app this needs: 400 with the reason.
    #[error("{0}")]
    NotConfigured(String),
    /// Shopify or AliExpress refused the code: 400 with advice.
    #[error("{0}")]
    Refused(String),
    /// Shopify, AliExpress or the table is unavailable: 503.
    #[error("temporarily unavailable")]
    Unavailable,
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        warn!(error = %e, "store error while connecting");
        ConnectError::Unavailable
    }
}

/// The connect service, built once per process.
#[derive(Debug)]
pub struct ConnectService {
    pub store: Store,
    pub credentials: Arc<Credentials>,
    pub tokens: Arc<ShopTokens>,
    pub token_client: TokenClient,
    pub admin: Arc<AdminClient>,
    /// `PUBLIC_URL`, without a trailing slash.
    pub public_url: String,
    /// `ALIEXPRESS_API_URL`.
    pub aliexpress_api_url: String,
    pub http: reqwest::Client,
    /// Where the pushes that waited for a reconnect are sent once the shop is connected again
    /// (absent: they go out with the next scheduled run's sweep of pushes left unsent).
    pub tracking_queue: Option<SqsQueue>,
}

/// How long a reconnect spends queueing the shop's waiting pushes before answering the browser;
/// whatever is left is re-sent by the next scheduled run.
pub const REQUEUE_BUDGET: Duration = Duration::from_secs(10);

/// An unguessable nonce: 32 bytes from the OS, keyed through HMAC with a secret of the
/// deployment so that even a weak OS source yields nothing an outsider can predict.
fn new_nonce(key: &str) -> String {
    let mut seed = Vec::with_capacity(48);
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let mut buf = [0u8; 32];
        if f.read_exact(&mut buf).is_ok() {
            seed.extend_from_slice(&buf);
        }
    }
    seed.extend_from_slice(&now_ms().to_le_bytes());
    seed.extend_from_slice(&fastrand::u64(..).to_le_bytes());
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return hex::encode(seed);
    };
    mac.update(&seed);
    hex::encode(mac.finalize().into_bytes())
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, ConnectError> {
    let mut found = params.iter().filter(|(k, _)| k == name);
    match (found.next(), found.next()) {
        (Some((_, v)), None) if !v.is_empty() => Ok(v.as_str()),
        (Some(_), Some(_)) => Err(ConnectError::BadRequest(format!("{name} given twice"))),
        _ => Err(ConnectError::BadRequest(format!("missing {name}"))),
    }
}

fn rfc3339(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

/// The AliExpress connection's state at `now` from its refresh token's end.
pub fn aliexpress_status(tokens: Option<&AeTokenRecord>, now: i64) -> &'static str {
    let Some(t) = tokens else {
        return "not_connected";
    };
    match t.refresh_expire_time_ms {
        Some(end) if now >= end => "reauthorize_required",
        Some(end) if now >= end - i64::try_from(REAUTHORIZE_WARNING.as_millis()).unwrap_or(0) => {
            "reauthorize_soon"
        }
        _ => "connected",
    }
}

/// Why no AliExpress call can succeed until the merchant re-authorizes: the stored
/// authorization of `app_key` has passed its refresh token's end, which AliExpress cannot
/// extend. `None` while it is valid, when there is none in the table (a legacy token from the
/// credentials), or when the table cannot be read (the call then answers for itself).
pub async fn aliexpress_authorization_ended(store: &Store, app_key: &str) -> Option<String> {
    authorization_ended(store.get_ae_tokens(app_key).await)
}

/// [`aliexpress_authorization_ended`] from the stored record as read (whatever store it came
/// from).
pub fn authorization_ended(read: Result<Option<AeTokenRecord>, StoreError>) -> Option<String> {
    let rec = match read {
        Ok(rec) => rec?,
        Err(e) => {
            warn!(error = %e, "AliExpress authorization unreadable; going on");
            return None;
        }
    };
    if aliexpress_status(Some(&rec), now_ms()) != "reauthorize_required" {
        return None;
    }
    let when = rec
        .refresh_expire_time_ms
        .and_then(rfc3339)
        .unwrap_or_default();
    Some(format!(
        "the AliExpress authorization ended {when}: re-authorize AliExpress (Shops page, or GET /connect/aliexpress) and try again"
    ))
}

impl ConnectService {
    fn app(&self) -> Result<&crate::credentials::ShopifyApp, ConnectError> {
        self.credentials.shopify_app.as_ref().ok_or_else(|| {
            ConnectError::NotConfigured(
                "the credentials document has no shopify_app section (client_id, client_secret, scopes)".into(),
            )
        })
    }

    fn callback_url(&self, provider: &str) -> String {
        format!("{}/connect/{provider}/callback", self.public_url)
    }

    /// Where `GET /connect/shopify?shop=` sends the browser; stores a nonce bound to the shop.
    pub async fn start_shopify(&self, shop: &str) -> Result<String, ConnectError> {
        if !is_valid_shop_domain(shop) {
            return Err(ConnectError::BadRequest(
                "shop must be a *.myshopify.com domain".into(),
            ));
        }
        let shop = ShopDomain::parse(shop)
            .map_err(|_| ConnectError::BadRequest("invalid shop domain".into()))?;
        let app = self.app()?;
        let nonce = new_nonce(&app.client_secret);
        self.store
            .put_nonce(
                &nonce,
                &NonceBinding {
                    subject: format!("shopify:{shop}"),
                    issued_at_ms: now_ms(),
                },
            )
            .await?;
        Ok(self.token_client.authorize_url(
            shop.as_str(),
            &app.client_id,
            &app.scopes,
            &self.callback_url("shopify"),
            &nonce,
        ))
    }

    /// The App URL request: Shopify opens the Dev Dashboard app's App URL with `shop, hmac,
    /// timestamp, host` when the merchant installs or opens the app. The same checks as a
    /// callback's (hmac with the client secret, a fresh timestamp, a strict shop domain) come
    /// first; then the browser goes to the dashboard when the shop is connected, else to Shopify's
    /// authorize page with a new state, exactly as `GET /connect/shopify` sends it.
    pub async fn install_shopify(
        &self,
        params: &[(String, String)],
    ) -> Result<String, ConnectError> {
        let app = self.app()?;
        let shop_raw = param(params, "shop")?;
        let timestamp = param(params, "timestamp")?;
        param(params, "hmac")?;
        if !verify_query_hmac(&app.secrets(), params) {
            warn!("App URL request with a bad hmac; refused");
            return Err(ConnectError::Forbidden("invalid hmac".into()));
        }
        if !is_valid_shop_domain(shop_raw) {
            return Err(ConnectError::BadRequest(
                "shop must be a *.myshopify.com domain".into(),
            ));
        }
        let shop = ShopDomain::parse(shop_raw)
            .map_err(|_| ConnectError::BadRequest("invalid shop domain".into()))?;
        if !timestamp_is_fresh(timestamp, now_ms() / 1000) {
            return Err(ConnectError::BadRequest("stale timestamp".into()));
        }
        let connected = self.tokens.is_legacy(&shop)
            || self
                .store
                .get_connection(&shop)
                .await?
                .is_some_and(|c| c.status == ConnectionStatus::Connected);
        if connected {
            info!(shop = %shop, "App URL opened for a connected shop; to the dashboard");
            return Ok(format!("{}/app", self.public_url));
        }
        info!(shop = %shop, "App URL opened for a shop not connected yet; to Shopify's authorize page");
        self.start_shopify(shop.as_str()).await
    }

    /// Checks a Shopify callback and, only if every check passes, exchanges the code, stores
    /// the token pair, reactivates the shop and subscribes its webhooks.
    pub async fn finish_shopify(
        &self,
        params: &[(String, String)],
    ) -> Result<ShopDomain, ConnectError> {
        let app = self.app()?;
        let shop_raw = param(params, "shop")?;
        let code = param(params, "code")?;
        let state = param(params, "state")?;
        let timestamp = param(params, "timestamp")?;
        param(params, "hmac")?;
        if !verify_query_hmac(&app.secrets(), params) {
            warn!("OAuth callback with a bad hmac; refused");
            return Err(ConnectError::Forbidden("invalid hmac".into()));
        }
        if !is_valid_shop_domain(shop_raw) {
            return Err(ConnectError::BadRequest(
                "shop must be a *.myshopify.com domain".into(),
            ));
        }
        let shop = ShopDomain::parse(shop_raw)
            .map_err(|_| ConnectError::BadRequest("invalid shop domain".into()))?;
        let now = now_ms();
        if !timestamp_is_fresh(timestamp, now / 1000) {
            return Err(ConnectError::BadRequest("stale timestamp".into()));
        }
        // Consumed here whatever follows: a state is good for one attempt only.
        let binding = self.store.take_nonce(state).await?.ok_or_else(|| {
            warn!(shop = %shop, "OAuth callback with an unknown or reused state; refused");
            ConnectError::Forbidden("unknown or already used state".into())
        })?;
        if binding.subject != format!("shopify:{shop}") {
            warn!(shop = %shop, "OAuth callback whose state was issued for another shop; refused");
            return Err(ConnectError::Forbidden(
                "state was issued for another shop".into(),
            ));
        }
        if now - binding.issued_at_ms > NONCE_TTL_MS {
            return Err(ConnectError::Forbidden("state expired".into()));
        }
        let grant = self
            .token_client
            .exchange_code(shop.as_str(), &app.client_id, &app.client_secret, code)
            .await
            .map_err(|e| match e {
                TokenError::Refused(r) => ConnectError::Refused(r.advice().to_owned()),
                TokenError::Transient(_) => ConnectError::Unavailable,
                TokenError::Unexpected(why) => {
                    warn!(shop = %shop, error = %why, "unexpected code exchange answer");
                    ConnectError::Unavailable
                }
            })?;
        // Replace whatever was there (a reconnect), re-reading on a lost race.
        for _ in 0..5 {
            let prev = self.store.get_connection(&shop).await?;
            let mut conn = connection_from_grant(&shop, ConnectMethod::OAuth, &grant, None, now);
            conn.webhooks = prev
                .as_ref()
                .map(|p| p.webhooks.clone())
                .unwrap_or_default();
            if self
                .store
                .put_connection(&conn, prev.as_ref().map(|p| p.version))
                .await?
            {
                break;
            }
        }
        self.tokens.forget(&shop);
        // A shop deactivated by app/uninstalled comes back by connecting again.
        self.store.set_active(&shop, true).await?;
        info!(shop = %shop, expires_in = grant.expires_in, "shop connected by OAuth");
        if let Err(e) = self.reconcile_webhooks(&shop).await {
            warn!(shop = %shop, error = %e, "webhook subscriptions not reconciled yet; the scheduled run retries");
        }
        match self.requeue_waiting_pushes(&shop).await {
            Ok(0) => {}
            Ok(n) => info!(shop = %shop, pushes = n, "pushes that waited for the reconnect queued"),
            Err(e) => {
                warn!(shop = %shop, error = %e, "waiting pushes not queued; the next scheduled run re-sends them")
            }
        }
        Ok(shop)
    }

    /// Queues every push still due for the shop, so that the pushes which waited while the shop
    /// had to be reconnected go out now instead of at the next scheduled run. A push that is
    /// already on the queue is harmless to send again: the pusher's lease and its check of the
    /// order's fulfillments make it land once. Returns how many messages were sent.
    pub async fn requeue_waiting_pushes(&self, shop: &ShopDomain) -> Result<u64, ConnectError> {
        let Some(queue) = &self.tracking_queue else {
            return Ok(0);
        };
        let started = tokio::time::Instant::now();
        let mut sent = 0u64;
        for shard in 0..self.store.open_shards() {
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .store
                    .open_orders_page_for_shop(shard, shop, cursor.as_deref(), 50)
                    .await?;
                let mut msgs = Vec::new();
                for (_, order_id) in &page.items {
                    let Some(stored) = self.store.get_order(shop, *order_id).await? else {
                        continue;
                    };
                    for (ae, package) in stored.order.due_pushes() {
                        msgs.push(PushMessage::new(
                            shop,
                            *order_id,
                            ae,
                            &package.tracking_number,
                        ));
                    }
                }
                if !msgs.is_empty() {
                    queue.send(&msgs).await.map_err(|e| {
                        warn!(shop = %shop, error = %e, "cannot queue the waiting pushes");
                        ConnectError::Unavailable
                    })?;
                    sent += u64::try_from(msgs.len()).unwrap_or(u64::MAX);
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
                if started.elapsed() > REQUEUE_BUDGET {
                    warn!(shop = %shop, pushes = sent, "reconnect queued what it could in its budget; the next scheduled run re-sends the rest");
                    return Ok(sent);
                }
            }
        }
        Ok(sent)
    }

    /// Lists the shop's subscriptions and creates or repoints what is missing, so every topic
    /// dropsync uses is delivered to `{PUBLIC_URL}/webhooks/shopify`. Returns every topic's
    /// state (compliance topics are reported as set in the app's settings) and stores it on the
    /// shop's connection for `GET /connections`.
    pub async fn reconcile_webhooks(
        &self,
        shop: &ShopDomain,
    ) -> Result<Vec<TopicState>, ConnectError> {
        let token = self.tokens.token(shop).await.map_err(|e| match e {
            ProviderError::NotConnected => {
                ConnectError::BadRequest("the shop is not connected".into())
            }
            ProviderError::ReconnectRequired(why) => ConnectError::Refused(why),
            ProviderError::Unavailable(_) => ConnectError::Unavailable,
        })?;
        let uri = format!("{}/webhooks/shopify", self.public_url);
        let existing = self
            .admin
            .list_subscriptions(shop, &token)
            .await
            .map_err(|e| {
                warn!(shop = %shop, error = %e, "cannot list webhook subscriptions");
                ConnectError::Unavailable
            })?;
        let mut states = Vec::new();
        for (topic, enum_name) in TOPICS {
            let mine: Vec<_> = existing.iter().filter(|s| s.topic == *enum_name).collect();
            let state = if mine.iter().any(|s| s.uri == uri) {
                Ok(())
            } else {
                let outcome = match mine.first() {
                    Some(elsewhere) => {
                        info!(shop = %shop, topic, "webhook subscription points elsewhere; repointing");
                        self.admin
                            .update_subscription(shop, &token, &elsewhere.id, &uri)
                            .await
                    }
                    None => {
                        info!(shop = %shop, topic, "webhook subscription missing; creating");
                        self.admin
                            .create_subscription(shop, &token, enum_name, &uri)
                            .await
                    }
                };
                match outcome {
                    Ok(SubscriptionOutcome::Done(_)) => Ok(()),
                    Ok(SubscriptionOutcome::Refused(errs)) => Err(errs.join("; ")),
                    Err(e) => Err(e.to_string()),
                }
            };
            if let Err(why) = &state {
                warn!(shop = %shop, topic, error = %why, "cannot subscribe a webhook topic");
            }
            states.push(TopicState {
                topic: (*topic).to_owned(),
                subscribed: state.is_ok(),
                error: state.err(),
            });
        }
        for topic in COMPLIANCE_TOPICS {
            states.push(TopicState {
                topic: (*topic).to_owned(),
                subscribed: false,
                error: Some(
                    "compliance topics cannot be subscribed through the API; set them in the app's configuration if the app is listed in the App Store".into(),
                ),
            });
        }
        for _ in 0..5 {
            let Some(mut conn) = self.store.get_connection(shop).await? else {
                break;
            };
            let expected = conn.version;
            conn.webhooks = states.clone();
            if self.store.put_connection(&conn, Some(expected)).await? {
                break;
            }
        }
        Ok(states)
    }

    /// Where `GET /connect/aliexpress` sends the browser.
    pub async fn start_aliexpress(&self) -> Result<String, ConnectError> {
        let ae = self.credentials.aliexpress.as_ref().ok_or_else(|| {
            ConnectError::NotConfigured("the credentials document has no aliexpress section".into())
        })?;
        let nonce = new_nonce(&ae.app_secret);
        self.store
            .put_nonce(
                &nonce,
                &NonceBinding {
                    subject: "aliexpress".into(),
                    issued_at_ms: now_ms(),
                },
            )
            .await?;
        Ok(format!(
            "{}/oauth/authorize?response_type=code&force_auth=true&redirect_uri={}&client_id={}&state={}",
            self.aliexpress_api_url,
            encode(&self.callback_url("aliexpress")),
            encode(&ae.app_key),
            encode(&nonce),
        ))
    }

    /// Checks the state, trades the code at the signed `/rest/auth/token/create` and stores the
    /// pair with both lifetimes.
    pub async fn finish_aliexpress(&self, params: &[(String, String)]) -> Result<(), ConnectError> {
        let ae = self.credentials.aliexpress.as_ref().ok_or_else(|| {
            ConnectError::NotConfigured("the credentials document has no aliexpress section".into())
        })?;
        let code = param(params, "code")?;
        let state = param(params, "state")?;
        let binding = self
            .store
            .take_nonce(state)
            .await?
            .ok_or_else(|| ConnectError::Forbidden("unknown or already used state".into()))?;
        let now = now_ms();
        if binding.subject != "aliexpress" || now - binding.issued_at_ms > NONCE_TTL_MS {
            return Err(ConnectError::Forbidden("invalid state".into()));
        }
        let mut form = vec![
            ("app_key".to_owned(), ae.app_key.clone()),
            ("timestamp".to_owned(), now.to_string()),
            ("sign_method".to_owned(), "sha256".to_owned()),
            ("code".to_owned(), code.to_owned()),
        ];
        let signature = sign(&ae.app_secret, Some("/auth/token/create"), &form);
        form.push(("sign".to_owned(), signature));
        let resp = self
            .http
            .post(format!(
                "{}/rest/auth/token/create",
                self.aliexpress_api_url
            ))
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                warn!(error = %e.without_url(), "AliExpress token endpoint unreachable");
                ConnectError::Unavailable
            })?;
        if resp.status().is_server_error() || resp.status().as_u16() == 429 {
            return Err(ConnectError::Unavailable);
        }
        let body: Value = resp.json().await.map_err(|_| ConnectError::Unavailable)?;
        let code_field = body.get("code").map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let access = body.get("access_token").and_then(Value::as_str);
        let refresh = body.get("refresh_token").and_then(Value::as_str);
        let (Some(access), Some(refresh)) = (access, refresh) else {
            let why = code_field.unwrap_or_else(|| "no tokens in the answer".into());
            warn!(
                code = why.as_str(),
                "AliExpress refused the authorization code"
            );
            return Err(ConnectError::Refused(format!(
                "AliExpress refused the authorization ({why}): connect AliExpress again"
            )));
        };
        let num = |k: &str| {
            body.get(k).and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let expire_time_ms = num("expire_time")
            .or_else(|| num("expires_in").map(|s| now + s * 1000))
            .unwrap_or(now);
        let refresh_expire_time_ms = num("refresh_token_valid_time")
            .or_else(|| num("refresh_expires_in").map(|s| now + s * 1000));
        let rec = AeTokenRecord {
            access_token: access.to_owned(),
            refresh_token: refresh.to_owned(),
            expire_time_ms,
            refresh_expire_time_ms,
        };
        for _ in 0..5 {
            let prev = self.store.get_ae_tokens(&ae.app_key).await?;
            if self
                .store
                .put_ae_tokens(
                    &ae.app_key,
                    prev.as_ref().map(|p| p.refresh_token.as_str()),
                    &rec,
                )
                .await?
            {
                info!(
                    reauthorize_by = refresh_expire_time_ms,
                    "AliExpress connected"
                );
                return Ok(());
            }
        }
        Err(ConnectError::Unavailable)
    }

    /// `GET /connections`: every Shopify shop (document and table) and AliExpress.
    pub async fn connections(&self) -> Result<Value, ConnectError> {
        let now = now_ms();
        let stored = self.store.list_connections().await?;
        let mut shops = Vec::new();
        for (shop, c) in &self.credentials.shops {
            if c.access_token.is_some() {
                shops.push(json!({
                    "shop": shop.as_str(), "method": "legacy_token", "status": "connected",
                    "access_token_expires_at": null, "scopes": [], "webhooks": [],
                }));
            } else if !stored.iter().any(|s| &s.shop == shop) {
                // A client-credentials shop not minted yet.
                shops.push(json!({
                    "shop": shop.as_str(), "method": "client_credentials", "status": "connected",
                    "access_token_expires_at": null, "scopes": [], "webhooks": [],
                }));
            }
        }
        for c in stored {
            if self.tokens.is_legacy(&c.shop) {
                continue;
            }
            let mut v = json!({
                "shop": c.shop.as_str(),
                "method": c.method.as_str(),
                "status": c.status.as_str(),
                "access_token_expires_at": c.access_expires_at_ms.and_then(rfc3339),
                "scopes": c.scopes,
                "webhooks": c.webhooks,
            });
            if c.status == ConnectionStatus::ReconnectRequired
                && let Some(o) = v.as_object_mut()
            {
                o.insert("reason".into(), json!(c.reason));
            }
            shops.push(v);
        }
        let aliexpress = match &self.credentials.aliexpress {
            None => {
                json!({"status": "not_connected", "access_token_expires_at": null, "reauthorize_by": null})
            }
            Some(ae) => {
                let rec = self.store.get_ae_tokens(&ae.app_key).await?;
                let seeded = ae.access_token.is_some();
                let status = match (&rec, seeded) {
                    (None, true) => "connected",
                    _ => aliexpress_status(rec.as_ref(), now),
                };
                json!({
                    "status": status,
                    "access_token_expires_at": rec.as_ref().map(|r| r.expire_time_ms).or(ae.expire_time).and_then(rfc3339),
                    "reauthorize_by": rec.as_ref().and_then(|r| r.refresh_expire_time_ms).and_then(rfc3339),
                })
            }
        };
        Ok(json!({"shopify": shops, "aliexpress": aliexpress}))
    }

    /// Attention items for connections: shops to reconnect, AliExpress to re-authorize.
    pub async fn attention(&self) -> Result<Vec<Value>, ConnectError> {
        let report = self.connections().await?;
        let mut items = Vec::new();
        if let Some(shops) = report.get("shopify").and_then(Value::as_array) {
            for s in shops {
                if s.get("status").and_then(Value::as_str) == Some("reconnect_required") {
                    items.push(
                        json!({"kind": "shopify_reconnect_required", "shop": s.get("shop").cloned().unwrap_or(Value::Null),
                        "advice": s.get("reason").cloned().unwrap_or(Value::Null)}),
                    );
                }
            }
        }
        let ae = report.get("aliexpress").cloned().unwrap_or(Value::Null);
        match ae.get("status").and_then(Value::as_str) {
            Some("reauthorize_soon") => items.push(json!({"kind": "aliexpress_reauthorize_soon",
                "reauthorize_by": ae.get("reauthorize_by").cloned().unwrap_or(Value::Null),
                "advice": "re-authorize AliExpress (Connect AliExpress) before this date"})),
            Some("reauthorize_required") => items.push(json!({"kind": "aliexpress_reauthorize_required",
                "reauthorize_by": ae.get("reauthorize_by").cloned().unwrap_or(Value::Null),
                "advice": "AliExpress authorization has ended: connect AliExpress again; polls and placements are paused until then"})),
            _ => {}
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(end: Option<i64>) -> AeTokenRecord {
        AeTokenRecord {
            access_token: "a".into(),
            refresh_token: "r".into(),
            expire_time_ms: 0,
            refresh_expire_time_ms: end,
        }
    }

    #[test]
    fn the_aliexpress_deadline_turns_soon_seven_days_before_and_required_after() {
        let day = 24 * 3600 * 1000;
        let end = 100 * day;
        assert_eq!(aliexpress_status(None, 0), "not_connected");
        assert_eq!(
            aliexpress_status(Some(&rec(Some(end))), end - 8 * day),
            "connected"
        );
        assert_eq!(
            aliexpress_status(Some(&rec(Some(end))), end - 7 * day),
            "reauthorize_soon"
        );
        assert_eq!(
            aliexpress_status(Some(&rec(Some(end))), end - 1),
            "reauthorize_soon"
        );
        assert_eq!(
            aliexpress_status(Some(&rec(Some(end))), end),
            "reauthorize_required"
        );
        assert_eq!(aliexpress_status(Some(&rec(None)), end), "connected");
    }

    #[test]
    fn the_official_token_create_signing_vector_matches() {
        let params = vec![
            ("app_key".to_owned(), "12345678".to_owned()),
            (
                "code".to_owned(),
                "3_500102_JxZ05Ux3cnnSSUm6dCxYg6Q26".to_owned(),
            ),
            ("timestamp".to_owned(), "1517820392000".to_owned()),
            ("sign_method".to_owned(), "sha256".to_owned()),
        ];
        assert_eq!(
            sign("helloworld", Some("/auth/token/create"), &params),
            "35607762342831B6A417A0DED84B79C05FEFBF116969C48AD6DC00279A9F4D81"
        );
    }

    #[test]
    fn nonces_are_long_and_never_repeat() {
        let a = new_nonce("k");
        let b = new_nonce("k");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn a_doubled_or_missing_parameter_is_a_bad_request() {
        let p = vec![
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        assert!(matches!(param(&p, "a"), Err(ConnectError::BadRequest(_))));
        assert!(matches!(param(&p, "b"), Err(ConnectError::BadRequest(_))));
    }
}
