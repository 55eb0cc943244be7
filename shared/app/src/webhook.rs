//! Shopify → dropsync: a verified delivery becomes one conditional write.
//!
//! Transport-free: the HTTP function (API Gateway) and the EventBridge function both call in
//! here, and so does the local stack. Errors map to status codes in one place
//! ([`WebhookError::status`]).

use crate::credentials::Credentials;
use crate::now_ms;
use crate::ports::WebhookStore;
use dropsync_domain::ShopDomain;
use dropsync_shopify::admin::ShopifyAdmin;
use dropsync_shopify::webhook::{
    DeliveryHeaders, EventBridgePayload, HeaderError, PayloadError, Topic, body_digest,
    order_names_shop, parse_app_uninstalled, parse_customers_redact, parse_data_request,
    parse_eventbridge, parse_order_delivery, parse_shop_redact, read_headers, verify_hmac,
};
use dropsync_store::{ShopifyApplied, Store, StoreError};
use std::sync::Arc;
use tracing::{info, warn};

/// Shopify may send bodies over 1 MB; anything over this is not an order.
pub const MAX_BODY: usize = 5 * 1024 * 1024;
/// Delivery ids of topics without `updated_at` are kept longer than Shopify retries (4 h).
const DEDUPE_TTL_SECS: i64 = 48 * 3600;
/// Shopify sends `shop/redact` 48 hours after `app/uninstalled`; one arriving earlier, or for a
/// shop whose uninstall was never confirmed, is not Shopify's.
pub const REDACT_AFTER_UNINSTALL_MS: i64 = 48 * 3600 * 1000;

/// Why a delivery was not accepted, or could not be.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("payload too large")]
    TooLarge,
    #[error("{0}")]
    BadRequest(String),
    /// Bad or missing HMAC, or a shop we do not serve: the same answer, no hint which.
    #[error("unauthorized")]
    Unauthorized,
    /// The store is throttled or unreachable: Shopify must retry.
    #[error("temporarily unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl WebhookError {
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::TooLarge => 413,
            WebhookError::BadRequest(_) => 400,
            WebhookError::Unauthorized => 401,
            WebhookError::Unavailable => 503,
            WebhookError::Internal => 500,
        }
    }
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> Self {
        if let StoreError::TooLarge(bytes) = e {
            warn!(bytes, "order too large to store; refused");
            return WebhookError::TooLarge;
        }
        if e.is_retryable() {
            warn!(error = %e, "store unavailable");
            WebhookError::Unavailable
        } else {
            warn!(error = %e, "store error");
            WebhookError::Internal
        }
    }
}

/// What a delivery did (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Order(ShopifyApplied),
    ShopDeactivated,
    ShopRedacted(u64),
    /// A destructive topic that could not be confirmed (Shopify still accepts the shop's token;
    /// a redact without an uninstall 48 h before): acknowledged, nothing changed.
    Unconfirmed,
    ComplianceAcknowledged,
    Duplicate,
    NeedsRefetch,
    Ignored,
}

/// The webhook's dependencies, built once at cold start. The store is any [`WebhookStore`]:
/// DynamoDB in the functions, `memory::MemoryStore` in tests.
#[derive(Debug, Clone)]
pub struct WebhookService<A, S = Store> {
    pub store: S,
    pub credentials: Arc<Credentials>,
    /// Used to re-fetch orders that arrive id-only over EventBridge.
    pub admin: Option<Arc<A>>,
}

fn header_error(e: HeaderError) -> WebhookError {
    WebhookError::BadRequest(e.to_string())
}

impl<A: ShopifyAdmin, S: WebhookStore> WebhookService<A, S> {
    /// An HTTPS delivery: `header` is a case-insensitive lookup of the request's headers and
    /// `body` the exact bytes received. The signature is checked before the body is parsed.
    pub async fn handle_signed_delivery<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
    ) -> Result<Outcome, WebhookError> {
        if body.len() > MAX_BODY {
            return Err(WebhookError::TooLarge);
        }
        let shop_header = header("x-shopify-shop-domain")
            .ok_or_else(|| WebhookError::BadRequest("missing X-Shopify-Shop-Domain".into()))?;
        let shop = ShopDomain::parse(shop_header)
            .map_err(|_| WebhookError::BadRequest("invalid X-Shopify-Shop-Domain".into()))?;
        let secrets = self.credentials.webhook_secrets_for(&shop);
        if secrets.is_empty() {
            return Err(WebhookError::Unauthorized);
        }
        let hmac = header("x-shopify-hmac-sha256").ok_or(WebhookError::Unauthorized)?;
        if !verify_hmac(&secrets, body, hmac) {
            return Err(WebhookError::Unauthorized);
        }
        let headers = read_headers(&header).map_err(header_error)?;
        let shared = self.secret_signs_other_shops(&shop, &secrets);
        self.apply(&headers, body, shared).await
    }

    /// Whether the secrets that verify `shop`'s deliveries also sign another shop's: the app's
    /// client secret (every shop connected by OAuth), or a per-shop secret configured twice.
    /// Then a signature proves the body came from Shopify, not that it is about this shop.
    fn secret_signs_other_shops(&self, shop: &ShopDomain, secrets: &[String]) -> bool {
        let own = self
            .credentials
            .shops
            .get(shop)
            .is_some_and(|c| !c.webhook_secrets.is_empty());
        !own || self.credentials.shops.iter().any(|(other, c)| {
            other != shop && c.webhook_secrets.iter().any(|s| secrets.contains(s))
        })
    }

    /// An order body that does not name its shop, signed by a secret other shops share, about an
    /// order dropsync does not hold for this shop: it could be another shop's delivery replayed
    /// under this shop's header. The order is confirmed with Shopify for this shop before any
    /// state is created. `Ok(false)`: Shopify does not know it in this shop.
    async fn order_is_this_shops(&self, shop: &ShopDomain, id: u64) -> Result<bool, WebhookError> {
        if self.store.holds_order(shop, id).await? {
            // Order ids are unique across Shopify: one stored for this shop is this shop's.
            return Ok(true);
        }
        let Some(admin) = &self.admin else {
            return Err(WebhookError::Unavailable);
        };
        let tokens = self
            .store
            .shop_tokens(&self.credentials, admin.admin_base_override())
            .map_err(|_| WebhookError::Unavailable)?;
        let token = tokens
            .token(shop)
            .await
            .map_err(|_| WebhookError::Unavailable)?;
        match admin.fetch_order(shop, &token, id).await {
            Ok(found) => Ok(found.is_some_and(|(found, _)| found == id)),
            Err(e) => {
                warn!(shop = %shop, order_id = id, error = %e, "cannot confirm an order with Shopify; Shopify will retry");
                Err(WebhookError::Unavailable)
            }
        }
    }

    /// An EventBridge delivery (Shopify's partner event source: trusted by AWS, not signed).
    pub async fn handle_eventbridge(
        &self,
        event: &serde_json::Value,
    ) -> Result<Outcome, WebhookError> {
        let delivery =
            parse_eventbridge(event).map_err(|e| WebhookError::BadRequest(e.to_string()))?;
        // Only AWS can emit `aws.partner/…` sources (PutEvents refuses them), so this is what
        // authenticates an unsigned delivery — whatever else may be able to write to the queue.
        if !delivery.from_shopify_partner_source() {
            warn!("EventBridge event not from a Shopify partner event source; refused");
            return Err(WebhookError::Unauthorized);
        }
        let shop = delivery.headers.shop.clone();
        // Shops connected by OAuth or client credentials live in the table, not the document.
        if self.credentials.shop(&shop).is_none() && !self.store.is_connected(&shop).await? {
            warn!(shop = %shop, "EventBridge delivery for a shop that is not connected; refused");
            return Err(WebhookError::Unauthorized);
        }
        match delivery.payload {
            EventBridgePayload::Full(body) => {
                if body.len() > MAX_BODY {
                    return Err(WebhookError::TooLarge);
                }
                // AWS authenticates the source and the shop it names: nothing to confirm.
                self.apply(&delivery.headers, &body, false).await
            }
            EventBridgePayload::IdOnly(id) => self.refetch(&shop, id).await,
        }
    }

    async fn refetch(&self, shop: &ShopDomain, id: u64) -> Result<Outcome, WebhookError> {
        // Tokens come from the one provider (legacy, client credentials or OAuth alike).
        let token = match &self.admin {
            Some(admin) => match self
                .store
                .shop_tokens(&self.credentials, admin.admin_base_override())
            {
                Ok(tokens) => tokens.token(shop).await.ok(),
                Err(_) => None,
            },
            None => None,
        };
        if let (Some(admin), Some(token)) = (&self.admin, token) {
            match admin.fetch_order(shop, &token, id).await {
                Ok(Some((id, facts))) => {
                    let applied = self
                        .store
                        .save_shopify_facts(
                            shop,
                            id,
                            facts,
                            "re-fetched after an id-only event",
                            now_ms(),
                        )
                        .await?;
                    return Ok(Outcome::Order(applied));
                }
                Ok(None) => info!(shop = %shop, order_id = id, "re-fetch found no order"),
                Err(e) => {
                    warn!(shop = %shop, order_id = id, error = %e, "re-fetch failed; kept for later")
                }
            }
        }
        self.store.mark_needs_refetch(shop, id).await?;
        Ok(Outcome::NeedsRefetch)
    }

    async fn apply(
        &self,
        headers: &DeliveryHeaders,
        body: &[u8],
        shared_secret: bool,
    ) -> Result<Outcome, WebhookError> {
        let shop = &headers.shop;
        let topic = &headers.topic;
        if let Some(version) = &headers.api_version
            && !headers.is_pinned_api_version()
        {
            // Shopify falls forward silently when the pinned version is retired.
            warn!(shop = %shop, topic = topic.as_str(), api_version = version.as_str(), "payload serialised with an API version other than the pinned one");
        }
        match topic {
            Topic::OrdersCreate
            | Topic::OrdersUpdated
            | Topic::OrdersPaid
            | Topic::OrdersCancelled
            | Topic::OrdersFulfilled
            | Topic::OrdersPartiallyFulfilled => {
                let parsed = parse_order_delivery(body, shop)
                    .map_err(|e| WebhookError::BadRequest(e.to_string()))?;
                if shared_secret
                    && !order_names_shop(body, shop)
                    && !self.order_is_this_shops(shop, parsed.id).await?
                {
                    warn!(shop = %shop, order_id = parsed.id, topic = topic.as_str(),
                        "order not in this shop according to Shopify: a delivery replayed under another shop's header; nothing written");
                    return Ok(Outcome::Unconfirmed);
                }
                let applied = self
                    .store
                    .save_shopify_facts(shop, parsed.id, parsed.facts, topic.as_str(), now_ms())
                    .await?;
                info!(shop = %shop, order_id = parsed.id, topic = topic.as_str(), outcome = ?applied, "order event");
                Ok(Outcome::Order(applied))
            }
            Topic::AppUninstalled => self.uninstall(shop, body).await,
            Topic::CustomersDataRequest | Topic::CustomersRedact | Topic::ShopRedact => {
                self.compliance(headers, body).await
            }
            Topic::Other(name) => {
                info!(shop = %shop, topic = name.as_str(), "topic not used; ignored");
                Ok(Outcome::Ignored)
            }
        }
    }
}

impl<A: ShopifyAdmin, S: WebhookStore> WebhookService<A, S> {
    /// `app/uninstalled`, acted on only when Shopify confirms it by refusing the shop's token
    /// (it revokes an app's tokens on uninstall). The header topic is not signed: without the
    /// check, any captured shop-shaped body would deactivate the shop. When Shopify cannot be
    /// asked, 503: Shopify retries.
    async fn uninstall(&self, shop: &ShopDomain, body: &[u8]) -> Result<Outcome, WebhookError> {
        let parsed =
            parse_app_uninstalled(body).map_err(|e| WebhookError::BadRequest(e.to_string()))?;
        if &parsed.shop_domain != shop {
            return Err(WebhookError::BadRequest(
                "myshopify_domain does not match X-Shopify-Shop-Domain".into(),
            ));
        }
        let record = self.store.shop(shop).await?;
        if !record.active && record.uninstalled_at_ms.is_some() {
            info!(shop = %shop, "app/uninstalled seen before");
            return Ok(Outcome::Duplicate);
        }
        let Some(admin) = &self.admin else {
            warn!(shop = %shop, "app/uninstalled cannot be confirmed: no Shopify client");
            return Err(WebhookError::Unavailable);
        };
        let tokens = self
            .store
            .shop_tokens(&self.credentials, admin.admin_base_override())
            .map_err(|_| WebhookError::Unavailable)?;
        let token = match tokens.token(shop).await {
            Ok(token) => token,
            // No token dropsync could use: nothing can confirm the uninstall, so nothing changes.
            Err(crate::tokens::ProviderError::NotConnected) => {
                return Err(WebhookError::Unauthorized);
            }
            // Shopify already refused to renew the shop's token: that is the confirmation.
            Err(crate::tokens::ProviderError::ReconnectRequired(_)) => {
                self.store.mark_uninstalled(shop, now_ms()).await?;
                info!(shop = %shop, "app uninstalled (Shopify refused to renew the token): shop inactive");
                return Ok(Outcome::ShopDeactivated);
            }
            Err(crate::tokens::ProviderError::Unavailable(_)) => {
                return Err(WebhookError::Unavailable);
            }
        };
        match admin.token_refused(shop, &token).await {
            Ok(true) => {
                self.store.mark_uninstalled(shop, now_ms()).await?;
                info!(shop = %shop, "app uninstalled (Shopify refuses the token): shop inactive");
                Ok(Outcome::ShopDeactivated)
            }
            Ok(false) => {
                warn!(shop = %shop, "app/uninstalled not confirmed: Shopify still accepts the shop's token; nothing changed");
                Ok(Outcome::Unconfirmed)
            }
            Err(e) => {
                warn!(shop = %shop, error = %e, "app/uninstalled cannot be confirmed now; Shopify will retry");
                Err(WebhookError::Unavailable)
            }
        }
    }

    /// The mandatory compliance topics. The body is parsed, and must name the shop
    /// the (verified) headers name, before anything is written: a bad body is a 400 with nothing
    /// written, not a recorded delivery that would turn Shopify's retries into no-ops.
    ///
    /// The action comes first and the delivery (dedupe, by body digest) is recorded after it:
    /// every action here is idempotent, and recording first would let a failure between the two
    /// (DynamoDB unavailable half-way through a `shop/redact`) turn the retry into a "duplicate"
    /// that never deletes anything.
    async fn compliance(
        &self,
        headers: &DeliveryHeaders,
        body: &[u8],
    ) -> Result<Outcome, WebhookError> {
        let shop = &headers.shop;
        let bad = |e: PayloadError| WebhookError::BadRequest(e.to_string());
        let body_shop = match headers.topic {
            Topic::ShopRedact => parse_shop_redact(body).map_err(bad)?.shop_domain,
            Topic::CustomersRedact => parse_customers_redact(body).map_err(bad)?.shop_domain,
            _ => parse_data_request(body).map_err(bad)?.shop_domain,
        };
        if &body_shop != shop {
            return Err(WebhookError::BadRequest(
                "shop_domain does not match X-Shopify-Shop-Domain".into(),
            ));
        }
        let outcome = match headers.topic {
            Topic::ShopRedact => {
                let record = self.store.shop(shop).await?;
                let due = record
                    .uninstalled_at_ms
                    .is_some_and(|at| now_ms().saturating_sub(at) >= REDACT_AFTER_UNINSTALL_MS);
                if record.active || !due {
                    warn!(shop = %shop, active = record.active, "shop/redact not confirmed: the shop has not been uninstalled for 48 h; nothing deleted");
                    return Ok(Outcome::Unconfirmed);
                }
                let n = self.store.delete_shop_data(shop).await?;
                info!(shop = %shop, orders = n, "shop redacted");
                Outcome::ShopRedacted(n)
            }
            // dropsync keeps no customer data (no names, emails, phones or addresses; only ids,
            // SKUs, titles and quantities), so there is nothing to erase or to report.
            Topic::CustomersRedact => {
                info!(shop = %shop, "customer redact: no personal data held");
                Outcome::ComplianceAcknowledged
            }
            _ => {
                info!(shop = %shop, "customer data request: no personal data held");
                Outcome::ComplianceAcknowledged
            }
        };
        // Keyed by the signed body, not by `X-Shopify-Webhook-Id`: a replay with a fresh id
        // header is still the same delivery. Shopify's retries carry the same bytes.
        let key = format!("sha256:{}", body_digest(body));
        if !self
            .store
            .record_delivery(shop, &key, now_ms(), DEDUPE_TTL_SECS)
            .await?
        {
            info!(shop = %shop, topic = headers.topic.as_str(), "compliance delivery seen before");
            return Ok(Outcome::Duplicate);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
