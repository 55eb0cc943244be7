//! The one place every Shopify call gets its access token from.
//!
//! - **Legacy** shops (`access_token` in the credentials document): the token as is.
//! - **Client credentials** shops: minted with the app's id and secret, cached in the table and
//!   in memory, minted again [`RENEW_BEFORE`] before it expires.
//! - **OAuth** shops (in the table): refreshed [`RENEW_BEFORE`] before expiry, or once after a
//!   401; Shopify rotates the refresh token on every refresh, so the new pair is stored with a
//!   conditional write naming the version the refresh started from.
//!
//! Renewals are single-flight: within a process behind a per-shop mutex, across Lambdas behind a
//! per-shop lease in the table. A loser waits for the winner's write and uses its token, so a
//! burst of concurrent pushes makes one token call and a rotation is never lost.
//!
//! A terminal refusal (400 `invalid_grant`, 401 on refresh, `shop_not_permitted`, …) marks the
//! shop `reconnect_required` with advice for the merchant; callers then leave their work pending
//! instead of failing it. Tokens are never logged.

use crate::credentials::Credentials;
use crate::now_ms;
use dropsync_domain::ShopDomain;
use dropsync_shopify::oauth::{Refusal, TokenClient, TokenError, TokenGrant, granted_scopes};
use dropsync_store::{
    ConnectMethod, ConnectionStatus, ConnectionStore, ShopConnection, Store, StoreError,
};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tracing::{info, warn};

/// Tokens are renewed this long before they expire.
pub const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// How long a refresh lease keeps other Lambdas off a shop's renewal.
pub const LEASE: Duration = Duration::from_secs(20);
/// How long a loser waits for the winner's token before giving up for now.
const WAIT_FOR_WINNER: Duration = Duration::from_secs(15);

/// Why no token can be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The shop is neither in the credentials document nor connected.
    #[error("the shop is not connected")]
    NotConnected,
    /// The merchant must connect the shop again; work for it waits.
    #[error("the shop must be reconnected: {0}")]
    ReconnectRequired(String),
    /// Shopify or the table is unavailable: try again later.
    #[error("cannot get a token now: {0}")]
    Unavailable(String),
}

/// The token endpoint, as the provider uses it ([`TokenClient`] over HTTP).
pub trait TokenEndpoint: Send + Sync {
    fn refresh(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> impl Future<Output = Result<TokenGrant, TokenError>> + Send;

    fn client_credentials(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
    ) -> impl Future<Output = Result<TokenGrant, TokenError>> + Send;
}

impl TokenEndpoint for TokenClient {
    async fn refresh(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> Result<TokenGrant, TokenError> {
        TokenClient::refresh(self, shop, client_id, client_secret, refresh_token).await
    }

    async fn client_credentials(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<TokenGrant, TokenError> {
        TokenClient::client_credentials(self, shop, client_id, client_secret).await
    }
}

/// Counters for tests and the bench.
#[derive(Debug, Default)]
pub struct ProviderStats {
    /// Calls to the token endpoint (refreshes and mints).
    pub token_calls: AtomicU64,
    /// Tokens handed out.
    pub tokens_served: AtomicU64,
}

/// The token provider. See the module documentation.
pub struct TokenProvider<S, E> {
    store: S,
    endpoint: E,
    credentials: Arc<Credentials>,
    cache: Mutex<HashMap<ShopDomain, ShopConnection>>,
    flights: Mutex<HashMap<ShopDomain, Arc<tokio::sync::Mutex<()>>>>,
    owner: String,
    pub stats: ProviderStats,
}

impl<S, E> std::fmt::Debug for TokenProvider<S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// The provider the functions use.
pub type ShopTokens = TokenProvider<Store, TokenClient>;

fn renew_margin_ms() -> i64 {
    i64::try_from(RENEW_BEFORE.as_millis()).unwrap_or(300_000)
}

fn fresh(conn: &ShopConnection, now: i64) -> bool {
    conn.status == ConnectionStatus::Connected
        && conn
            .access_expires_at_ms
            .is_none_or(|t| t - renew_margin_ms() > now)
}

fn secs_to_ms(now: i64, secs: Option<u64>) -> Option<i64> {
    secs.map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX / 2000) * 1000))
}

/// The connection a grant makes (a fresh pair, from `prev` when it is a refresh).
pub fn connection_from_grant(
    shop: &ShopDomain,
    method: ConnectMethod,
    grant: &TokenGrant,
    prev: Option<&ShopConnection>,
    now: i64,
) -> ShopConnection {
    ShopConnection {
        shop: shop.clone(),
        method,
        access_token: grant.access_token.clone(),
        access_expires_at_ms: secs_to_ms(now, grant.expires_in),
        // Keep the old refresh token only if Shopify sent none (never null it out).
        refresh_token: grant
            .refresh_token
            .clone()
            .or_else(|| prev.and_then(|p| p.refresh_token.clone())),
        refresh_expires_at_ms: secs_to_ms(now, grant.refresh_token_expires_in)
            .or_else(|| prev.and_then(|p| p.refresh_expires_at_ms)),
        scopes: if grant.scope.is_empty() {
            prev.map(|p| p.scopes.clone()).unwrap_or_default()
        } else {
            granted_scopes(&grant.scope)
        },
        status: ConnectionStatus::Connected,
        reason: None,
        version: prev.map_or(0, |p| p.version),
        updated_at_ms: now,
        webhooks: prev.map(|p| p.webhooks.clone()).unwrap_or_default(),
    }
}

impl<S: ConnectionStore, E: TokenEndpoint> TokenProvider<S, E> {
    pub fn new(store: S, endpoint: E, credentials: Arc<Credentials>) -> Self {
        Self {
            store,
            endpoint,
            credentials,
            cache: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            owner: format!("{:016x}", fastrand::u64(..)),
            stats: ProviderStats::default(),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Whether the shop's token comes from the credentials document as is.
    pub fn is_legacy(&self, shop: &ShopDomain) -> bool {
        self.credentials
            .shop(shop)
            .is_some_and(|c| c.access_token.is_some())
    }

    /// A token valid for at least [`RENEW_BEFORE`] (or not expiring).
    pub async fn token(&self, shop: &ShopDomain) -> Result<String, ProviderError> {
        if let Some(t) = self
            .credentials
            .shop(shop)
            .and_then(|c| c.access_token.clone())
        {
            self.stats.tokens_served.fetch_add(1, Ordering::Relaxed);
            return Ok(t);
        }
        let now = now_ms();
        if let Some(c) = self.cached(shop)
            && fresh(&c, now)
        {
            self.stats.tokens_served.fetch_add(1, Ordering::Relaxed);
            return Ok(c.access_token);
        }
        let stored = self.store.get_connection(shop).await.map_err(unavailable)?;
        if let Some(c) = &stored {
            if c.status == ConnectionStatus::ReconnectRequired {
                return Err(ProviderError::ReconnectRequired(
                    c.reason
                        .clone()
                        .unwrap_or_else(|| "reconnect the shop".into()),
                ));
            }
            if fresh(c, now) {
                self.remember(c);
                self.stats.tokens_served.fetch_add(1, Ordering::Relaxed);
                return Ok(c.access_token.clone());
            }
        }
        let token = self.renew(shop, stored.map(|c| c.version), None).await?;
        self.stats.tokens_served.fetch_add(1, Ordering::Relaxed);
        Ok(token)
    }

    /// Shopify answered 401 to `rejected`: returns a renewed token, at most one renewal per
    /// rejected token whoever asks. Legacy tokens cannot be renewed.
    pub async fn after_unauthorized(
        &self,
        shop: &ShopDomain,
        rejected: &str,
    ) -> Result<String, ProviderError> {
        if self.is_legacy(shop) {
            return Err(ProviderError::Unavailable(
                "Shopify refused the shop's access token".into(),
            ));
        }
        self.forget(shop);
        let stored = self.store.get_connection(shop).await.map_err(unavailable)?;
        if let Some(c) = &stored {
            if c.status == ConnectionStatus::ReconnectRequired {
                return Err(ProviderError::ReconnectRequired(
                    c.reason.clone().unwrap_or_default(),
                ));
            }
            if c.access_token != rejected {
                self.remember(c);
                return Ok(c.access_token.clone());
            }
        }
        self.renew(shop, stored.map(|c| c.version), Some(rejected))
            .await
    }

    fn cached(&self, shop: &ShopDomain) -> Option<ShopConnection> {
        self.cache.lock().ok().and_then(|m| m.get(shop).cloned())
    }

    fn remember(&self, conn: &ShopConnection) {
        if let Ok(mut m) = self.cache.lock() {
            m.insert(conn.shop.clone(), conn.clone());
        }
    }

    /// Drops the in-memory copy (after a reconnect or a 401).
    pub fn forget(&self, shop: &ShopDomain) {
        if let Ok(mut m) = self.cache.lock() {
            m.remove(shop);
        }
    }

    fn flight(&self, shop: &ShopDomain) -> Arc<tokio::sync::Mutex<()>> {
        match self.flights.lock() {
            Ok(mut m) => m.entry(shop.clone()).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Whether `c` is what a renewal that started from `seen_version` (and was told `rejected`
    /// is bad) can use instead of renewing again.
    fn usable(
        c: &ShopConnection,
        seen_version: Option<u64>,
        rejected: Option<&str>,
        now: i64,
    ) -> bool {
        let moved_on = Some(c.version) != seen_version;
        match rejected {
            Some(r) => c.access_token != r && c.status == ConnectionStatus::Connected,
            None => fresh(c, now) || (moved_on && c.status == ConnectionStatus::Connected),
        }
    }

    async fn renew(
        &self,
        shop: &ShopDomain,
        seen_version: Option<u64>,
        rejected: Option<&str>,
    ) -> Result<String, ProviderError> {
        let flight = self.flight(shop);
        let _local = flight.lock().await;
        let started = tokio::time::Instant::now();
        loop {
            // Another task or Lambda may have renewed while this one waited.
            let stored = self.store.get_connection(shop).await.map_err(unavailable)?;
            if let Some(c) = &stored {
                if c.status == ConnectionStatus::ReconnectRequired {
                    return Err(ProviderError::ReconnectRequired(
                        c.reason.clone().unwrap_or_default(),
                    ));
                }
                if Self::usable(c, seen_version, rejected, now_ms()) {
                    self.remember(c);
                    return Ok(c.access_token.clone());
                }
            }
            let now = now_ms();
            let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(20_000);
            if self
                .store
                .claim_refresh_lease(shop, &self.owner, now, now + lease_ms)
                .await
                .map_err(unavailable)?
            {
                let result = self.renew_under_lease(shop, stored).await;
                if let Err(e) = self.store.release_refresh_lease(shop, &self.owner).await {
                    warn!(shop = %shop, error = %e, "could not release the refresh lease; it expires by itself");
                }
                return result;
            }
            if started.elapsed() > WAIT_FOR_WINNER {
                return Err(ProviderError::Unavailable(
                    "another worker is renewing the token".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100 + fastrand::u64(..100))).await;
        }
    }

    async fn renew_under_lease(
        &self,
        shop: &ShopDomain,
        stored: Option<ShopConnection>,
    ) -> Result<String, ProviderError> {
        let app = self.credentials.shopify_app.as_ref().ok_or_else(|| {
            ProviderError::ReconnectRequired(
                "the credentials document has no shopify_app section".into(),
            )
        })?;
        let wants_cc = self
            .credentials
            .shop(shop)
            .is_some_and(|c| c.client_credentials);
        let method = match &stored {
            Some(c) => c.method,
            None if wants_cc => ConnectMethod::ClientCredentials,
            None => return Err(ProviderError::NotConnected),
        };
        let started = tokio::time::Instant::now();
        self.stats.token_calls.fetch_add(1, Ordering::Relaxed);
        let result = match (
            method,
            stored.as_ref().and_then(|c| c.refresh_token.as_deref()),
        ) {
            (ConnectMethod::OAuth, Some(refresh)) => {
                self.endpoint
                    .refresh(shop.as_str(), &app.client_id, &app.client_secret, refresh)
                    .await
            }
            (ConnectMethod::OAuth, None) => Err(TokenError::Refused(Refusal::InvalidGrant)),
            (ConnectMethod::ClientCredentials, _) => {
                self.endpoint
                    .client_credentials(shop.as_str(), &app.client_id, &app.client_secret)
                    .await
            }
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let now = now_ms();
        match result {
            Ok(grant) => {
                let conn = connection_from_grant(shop, method, &grant, stored.as_ref(), now);
                let expected = stored.as_ref().map(|c| c.version);
                if self
                    .store
                    .put_connection(&conn, expected)
                    .await
                    .map_err(unavailable)?
                {
                    info!(shop = %shop, method = method.as_str(), elapsed_ms, "shopify token renewed");
                    let mut stored_conn = conn;
                    stored_conn.version = expected.map_or(1, |v| v + 1);
                    self.remember(&stored_conn);
                    Ok(stored_conn.access_token)
                } else {
                    // Someone wrote between our read and our write (a reconnect): theirs wins.
                    let now_stored = self.store.get_connection(shop).await.map_err(unavailable)?;
                    match now_stored {
                        Some(c) if c.status == ConnectionStatus::Connected => {
                            self.remember(&c);
                            Ok(c.access_token)
                        }
                        _ => Err(ProviderError::Unavailable("the connection changed".into())),
                    }
                }
            }
            Err(TokenError::Refused(refusal)) => {
                warn!(shop = %shop, method = method.as_str(), refusal = refusal.code(), "Shopify refused the grant; the shop must be reconnected");
                let reason = refusal.advice().to_owned();
                self.mark_reconnect_required(shop, stored, method, &reason, now)
                    .await?;
                Err(ProviderError::ReconnectRequired(reason))
            }
            Err(e) => {
                warn!(shop = %shop, method = method.as_str(), error = %e, "token renewal failed; will retry");
                Err(ProviderError::Unavailable(e.to_string()))
            }
        }
    }

    async fn mark_reconnect_required(
        &self,
        shop: &ShopDomain,
        stored: Option<ShopConnection>,
        method: ConnectMethod,
        reason: &str,
        now: i64,
    ) -> Result<(), ProviderError> {
        self.forget(shop);
        let expected = stored.as_ref().map(|c| c.version);
        let mut conn = stored.unwrap_or(ShopConnection {
            shop: shop.clone(),
            method,
            access_token: String::new(),
            access_expires_at_ms: Some(0),
            refresh_token: None,
            refresh_expires_at_ms: None,
            scopes: Vec::new(),
            status: ConnectionStatus::ReconnectRequired,
            reason: None,
            version: 0,
            updated_at_ms: now,
            webhooks: Vec::new(),
        });
        conn.status = ConnectionStatus::ReconnectRequired;
        conn.reason = Some(reason.to_owned());
        conn.updated_at_ms = now;
        // A lost race means someone reconnected meanwhile: their state stands.
        self.store
            .put_connection(&conn, expected)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

fn unavailable(e: StoreError) -> ProviderError {
    ProviderError::Unavailable(e.to_string())
}

type Registry = Mutex<HashMap<(String, Option<String>, usize), Arc<ShopTokens>>>;

/// The process's provider for this table, admin base and credentials document. Every service of
/// a process shares it, so its in-memory cache and single-flight cover all of them.
pub fn shared(
    store: &Store,
    credentials: &Arc<Credentials>,
    admin_base: Option<String>,
) -> Result<Arc<ShopTokens>, ProviderError> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let key = (
        store.table().to_owned(),
        admin_base.clone(),
        Arc::as_ptr(credentials) as usize,
    );
    let mut map = REGISTRY
        .get_or_init(Registry::default)
        .lock()
        .map_err(|_| ProviderError::Unavailable("token registry poisoned".into()))?;
    if let Some(p) = map.get(&key) {
        return Ok(p.clone());
    }
    let client =
        TokenClient::new(admin_base).map_err(|e| ProviderError::Unavailable(e.to_string()))?;
    let provider = Arc::new(TokenProvider::new(
        store.clone(),
        client,
        credentials.clone(),
    ));
    map.insert(key, provider.clone());
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::FakeTokenEndpoint as FakeEndpoint;
    use dropsync_store::MemoryConnections;

    fn creds() -> Arc<Credentials> {
        Arc::new(
            Credentials::parse(br#"{"admin_token":"0123456789abcdef-admin","shopify_app":{"client_id":"cid","client_secret":"sec","scopes":"read_orders"},"shops":{"legacy.myshopify.com":{"access_token":"shpat_legacy","webhook_secrets":["w"]},"cc.myshopify.com":{"client_credentials":true}}}"#)
                .unwrap(),
        )
    }

    fn oauth_conn(shop: &ShopDomain, expires_at: i64) -> ShopConnection {
        ShopConnection {
            shop: shop.clone(),
            method: ConnectMethod::OAuth,
            access_token: "access-0".into(),
            access_expires_at_ms: Some(expires_at),
            refresh_token: Some("refresh-0".into()),
            refresh_expires_at_ms: None,
            scopes: vec![],
            status: ConnectionStatus::Connected,
            reason: None,
            version: 0,
            updated_at_ms: 0,
            webhooks: vec![],
        }
    }

    #[tokio::test]
    async fn a_legacy_token_is_used_as_is_without_any_call() {
        let e = FakeEndpoint::default();
        let p = TokenProvider::new(MemoryConnections::default(), e.clone(), creds());
        let shop = ShopDomain::parse("legacy.myshopify.com").unwrap();
        assert_eq!(p.token(&shop).await.unwrap(), "shpat_legacy");
        assert_eq!(e.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_expiring_token_is_refreshed_once_for_twenty_concurrent_callers() {
        let e = FakeEndpoint::default();
        let store = MemoryConnections::default();
        let shop = ShopDomain::parse("o.myshopify.com").unwrap();
        // Expires within the renewal margin.
        store
            .put_connection(&oauth_conn(&shop, now_ms() + 60_000), None)
            .await
            .unwrap();
        let p = Arc::new(TokenProvider::new(store.clone(), e.clone(), creds()));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let p = p.clone();
            let shop = shop.clone();
            set.spawn(async move { p.token(&shop).await });
        }
        let mut tokens = Vec::new();
        while let Some(r) = set.join_next().await {
            tokens.push(r.unwrap().unwrap());
        }
        assert_eq!(e.calls.load(Ordering::SeqCst), 1);
        assert!(tokens.iter().all(|t| t == "access-1-from-refresh-0"));
        let stored = store.get_connection(&shop).await.unwrap().unwrap();
        assert_eq!(stored.refresh_token.as_deref(), Some("refresh-1"));
        assert_eq!(stored.version, 2);
    }

    #[tokio::test]
    async fn two_processes_sharing_the_table_refresh_once() {
        let e = FakeEndpoint::default();
        let store = MemoryConnections::default();
        let shop = ShopDomain::parse("o.myshopify.com").unwrap();
        store
            .put_connection(&oauth_conn(&shop, now_ms() - 1), None)
            .await
            .unwrap();
        let a = Arc::new(TokenProvider::new(store.clone(), e.clone(), creds()));
        let b = Arc::new(TokenProvider::new(store.clone(), e.clone(), creds()));
        let (ta, tb) = tokio::join!(a.token(&shop), b.token(&shop));
        assert_eq!(ta.unwrap(), tb.unwrap());
        assert_eq!(e.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_401_renews_once_and_a_second_report_of_the_same_token_reuses_the_renewal() {
        let e = FakeEndpoint::default();
        let store = MemoryConnections::default();
        let shop = ShopDomain::parse("o.myshopify.com").unwrap();
        store
            .put_connection(&oauth_conn(&shop, now_ms() + 3_600_000), None)
            .await
            .unwrap();
        let p = TokenProvider::new(store, e.clone(), creds());
        assert_eq!(p.token(&shop).await.unwrap(), "access-0");
        let t1 = p.after_unauthorized(&shop, "access-0").await.unwrap();
        let t2 = p.after_unauthorized(&shop, "access-0").await.unwrap();
        assert_eq!(t1, t2);
        assert_eq!(e.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_revoked_refresh_token_marks_the_shop_reconnect_required_and_stops_calling() {
        let e = FakeEndpoint::default();
        *e.refuse.lock().unwrap() = Some(Refusal::InvalidGrant);
        let store = MemoryConnections::default();
        let shop = ShopDomain::parse("o.myshopify.com").unwrap();
        store
            .put_connection(&oauth_conn(&shop, now_ms() - 1), None)
            .await
            .unwrap();
        let p = TokenProvider::new(store.clone(), e.clone(), creds());
        assert!(matches!(
            p.token(&shop).await,
            Err(ProviderError::ReconnectRequired(_))
        ));
        assert!(matches!(
            p.token(&shop).await,
            Err(ProviderError::ReconnectRequired(_))
        ));
        assert_eq!(e.calls.load(Ordering::SeqCst), 1);
        let stored = store.get_connection(&shop).await.unwrap().unwrap();
        assert_eq!(stored.status, ConnectionStatus::ReconnectRequired);
    }

    #[tokio::test]
    async fn a_client_credentials_shop_is_minted_once_and_cached() {
        let e = FakeEndpoint::default();
        let store = MemoryConnections::default();
        let shop = ShopDomain::parse("cc.myshopify.com").unwrap();
        let p = TokenProvider::new(store.clone(), e.clone(), creds());
        assert_eq!(p.token(&shop).await.unwrap(), "cc-1");
        assert_eq!(p.token(&shop).await.unwrap(), "cc-1");
        assert_eq!(e.calls.load(Ordering::SeqCst), 1);
        let stored = store.get_connection(&shop).await.unwrap().unwrap();
        assert_eq!(stored.method, ConnectMethod::ClientCredentials);
    }

    #[tokio::test]
    async fn shop_not_permitted_says_to_use_oauth() {
        let e = FakeEndpoint::default();
        *e.refuse.lock().unwrap() = Some(Refusal::ShopNotPermitted);
        let p = TokenProvider::new(MemoryConnections::default(), e, creds());
        let shop = ShopDomain::parse("cc.myshopify.com").unwrap();
        match p.token(&shop).await {
            Err(ProviderError::ReconnectRequired(why)) => assert!(why.contains("OAuth"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unknown_shop_is_not_connected() {
        let p = TokenProvider::new(
            MemoryConnections::default(),
            FakeEndpoint::default(),
            creds(),
        );
        let shop = ShopDomain::parse("nobody.myshopify.com").unwrap();
        assert_eq!(p.token(&shop).await, Err(ProviderError::NotConnected));
    }
}
