//! Shop connections: the Shopify token a shop connected by OAuth or by the client credentials
//! grant holds now, single-use OAuth `state` nonces, and the per-shop refresh lease.
//!
//! - A connection is one item (`SHOP#{shop}` / `CONNECTION`) with a `version`: a rotation is a
//!   conditional write naming the version it started from, so two refreshes can never both store
//!   a pair and a refreshed pair is never overwritten by an older one. A small registry item
//!   (`CONNECTIONS` / `{shop}`, no tokens) lets `GET /connections` list shops without a scan.
//! - A nonce is consumed by a conditional update (marking it used) that returns what it was bound
//!   to: only one callback can ever use it.
//! - The refresh lease (`SHOP#{shop}` / `TOKEN_LEASE`) is claimed with a conditional put and
//!   expires by itself, so a crashed holder never blocks a shop for long.
//!
//! Tokens are never logged; the `Debug` of [`ShopConnection`] leaves them out.

use crate::Store;
use crate::codec::{Item, n, s, shop_pk};
use crate::error::{self, StoreError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use dropsync_domain::ShopDomain;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

const CONNECTION_SK: &str = "CONNECTION";
const LEASE_SK: &str = "TOKEN_LEASE";
const REGISTRY_PK: &str = "CONNECTIONS";

/// How long an OAuth `state` nonce may be used after it was issued.
pub const NONCE_TTL_MS: i64 = 10 * 60 * 1000;

/// How a shop's token is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMethod {
    /// Authorization code grant with expiring offline tokens (refreshed with rotation).
    OAuth,
    /// Client credentials grant (minted again before expiry).
    ClientCredentials,
}

impl ConnectMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectMethod::OAuth => "oauth",
            ConnectMethod::ClientCredentials => "client_credentials",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "oauth" => Some(Self::OAuth),
            "client_credentials" => Some(Self::ClientCredentials),
            _ => None,
        }
    }
}

/// Whether the shop's token can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Connected,
    /// Shopify refused the grant for good: the merchant must connect again.
    ReconnectRequired,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::ReconnectRequired => "reconnect_required",
        }
    }
}

/// One webhook topic's subscription state, as last reconciled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicState {
    /// The `orders/create` form.
    pub topic: String,
    pub subscribed: bool,
    /// Why it is not subscribed (Shopify's words), when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A shop's connection as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ShopConnection {
    pub shop: ShopDomain,
    pub method: ConnectMethod,
    pub access_token: String,
    /// ms epoch; `None` for a token that does not expire.
    pub access_expires_at_ms: Option<i64>,
    pub refresh_token: Option<String>,
    pub refresh_expires_at_ms: Option<i64>,
    pub scopes: Vec<String>,
    pub status: ConnectionStatus,
    /// Why the shop must reconnect (advice for the merchant), when it must.
    pub reason: Option<String>,
    /// Bumped by every write; a rotation names the version it started from.
    pub version: u64,
    pub updated_at_ms: i64,
    pub webhooks: Vec<TopicState>,
}

impl fmt::Debug for ShopConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopConnection")
            .field("shop", &self.shop.as_str())
            .field("method", &self.method)
            .field("access_expires_at_ms", &self.access_expires_at_ms)
            .field("refresh_token", &self.refresh_token.is_some())
            .field("status", &self.status)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What an OAuth `state` nonce was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceBinding {
    /// `shopify:{shop}` or `aliexpress`.
    pub subject: String,
    pub issued_at_ms: i64,
}

/// The port the token provider and the connect service use. [`Store`] implements it over
/// DynamoDB, [`MemoryConnections`] in memory (tests).
pub trait ConnectionStore: Send + Sync {
    fn get_connection(
        &self,
        shop: &ShopDomain,
    ) -> impl Future<Output = Result<Option<ShopConnection>, StoreError>> + Send;

    /// Writes `conn` with version `expected + 1` if the stored version is `expected` (`None`:
    /// only if there is none). `Ok(false)` when someone else wrote first.
    fn put_connection(
        &self,
        conn: &ShopConnection,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn list_connections(
        &self,
    ) -> impl Future<Output = Result<Vec<ShopConnection>, StoreError>> + Send;

    fn put_nonce(
        &self,
        nonce: &str,
        binding: &NonceBinding,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the nonce and returns what it was bound to; `None` if it does not exist (never
    /// issued, or already used).
    fn take_nonce(
        &self,
        nonce: &str,
    ) -> impl Future<Output = Result<Option<NonceBinding>, StoreError>> + Send;

    /// Claims the shop's refresh lease until `until_ms`; false while someone else holds it.
    fn claim_refresh_lease(
        &self,
        shop: &ShopDomain,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn release_refresh_lease(
        &self,
        shop: &ShopDomain,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn nonce_pk(nonce: &str) -> String {
    format!("OAUTH#{nonce}")
}

fn encode(conn: &ShopConnection, version: u64) -> Result<Item, StoreError> {
    let mut item = key(shop_pk(&conn.shop), CONNECTION_SK);
    item.insert("shop".into(), s(conn.shop.as_str()));
    item.insert("method".into(), s(conn.method.as_str()));
    item.insert("access_token".into(), s(conn.access_token.clone()));
    if let Some(t) = conn.access_expires_at_ms {
        item.insert("access_expires_at".into(), n(t));
    }
    if let Some(r) = &conn.refresh_token {
        item.insert("refresh_token".into(), s(r.clone()));
    }
    if let Some(t) = conn.refresh_expires_at_ms {
        item.insert("refresh_expires_at".into(), n(t));
    }
    item.insert("scopes".into(), s(conn.scopes.join(",")));
    item.insert("status".into(), s(conn.status.as_str()));
    if let Some(r) = &conn.reason {
        item.insert("reason".into(), s(r.clone()));
    }
    item.insert("version".into(), n(version));
    item.insert("updated_at".into(), n(conn.updated_at_ms));
    item.insert(
        "webhooks".into(),
        s(serde_json::to_string(&conn.webhooks).map_err(|e| StoreError::Other(e.to_string()))?),
    );
    Ok(item)
}

fn decode(item: &Item) -> Result<ShopConnection, StoreError> {
    let str_of = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    let num_of = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse::<i64>().ok(),
        _ => None,
    };
    let corrupt = |k: &str| StoreError::Corrupt(format!("connection {k}"));
    let shop = str_of("shop")
        .and_then(|v| ShopDomain::parse(&v).ok())
        .ok_or_else(|| corrupt("shop"))?;
    Ok(ShopConnection {
        shop,
        method: str_of("method")
            .and_then(|m| ConnectMethod::parse(&m))
            .ok_or_else(|| corrupt("method"))?,
        access_token: str_of("access_token").ok_or_else(|| corrupt("access_token"))?,
        access_expires_at_ms: num_of("access_expires_at"),
        refresh_token: str_of("refresh_token"),
        refresh_expires_at_ms: num_of("refresh_expires_at"),
        scopes: str_of("scopes")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        status: if str_of("status").as_deref() == Some("reconnect_required") {
            ConnectionStatus::ReconnectRequired
        } else {
            ConnectionStatus::Connected
        },
        reason: str_of("reason"),
        version: num_of("version")
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| corrupt("version"))?,
        updated_at_ms: num_of("updated_at").unwrap_or(0),
        webhooks: str_of("webhooks")
            .and_then(|w| serde_json::from_str(&w).ok())
            .unwrap_or_default(),
    })
}

fn conditional<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

impl ConnectionStore for Store {
    async fn get_connection(
        &self,
        shop: &ShopDomain,
    ) -> Result<Option<ShopConnection>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(shop_pk(shop), CONNECTION_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(error::sdk)?;
        out.item().map(decode).transpose()
    }

    async fn put_connection(
        &self,
        conn: &ShopConnection,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let next = expected.map_or(1, |v| v + 1);
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(conn, next)?));
        req = match expected {
            Some(v) => req
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
            None => req.condition_expression("attribute_not_exists(pk)"),
        };
        match req.send().await {
            Ok(_) => {}
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(error::sdk(e)),
        }
        // The registry entry carries no token: it only lets the shop be listed.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some({
                let mut i = key(REGISTRY_PK.to_owned(), conn.shop.as_str());
                i.insert("shop".into(), s(conn.shop.as_str()));
                i
            }))
            .send()
            .await
            .map_err(error::sdk)?;
        Ok(true)
    }

    async fn list_connections(&self) -> Result<Vec<ShopConnection>, StoreError> {
        let mut shops = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(REGISTRY_PK))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(error::sdk)?;
            for item in out.items() {
                if let Some(AttributeValue::S(shop)) = item.get("sk")
                    && let Ok(shop) = ShopDomain::parse(shop)
                {
                    shops.push(shop);
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        let mut out = Vec::new();
        for shop in shops {
            if let Some(c) = self.get_connection(&shop).await? {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn put_nonce(&self, nonce: &str, binding: &NonceBinding) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(nonce_pk(nonce)))
            .item("sk", s("STATE"))
            .item("subject", s(binding.subject.clone()))
            .item("issued_at", n(binding.issued_at_ms))
            // DynamoDB's TTL sweeps it eventually; the age check on use is what counts.
            .item(
                "expires_at",
                n((binding.issued_at_ms + NONCE_TTL_MS) / 1000 + 60),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }

    async fn take_nonce(&self, nonce: &str) -> Result<Option<NonceBinding>, StoreError> {
        // Marked used (not deleted) so the functions need no DeleteItem; TTL sweeps it later.
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(nonce_pk(nonce), "STATE")))
            .update_expression("SET used = :t")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(used)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) if conditional(&e) => return Ok(None),
            Err(e) => return Err(error::sdk(e)),
        };
        let Some(old) = out.attributes() else {
            return Ok(None);
        };
        let subject = match old.get("subject") {
            Some(AttributeValue::S(v)) => v.clone(),
            _ => return Err(StoreError::Corrupt("nonce subject".into())),
        };
        let issued_at_ms = match old.get("issued_at") {
            Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
            _ => 0,
        };
        Ok(Some(NonceBinding {
            subject,
            issued_at_ms,
        }))
    }

    async fn claim_refresh_lease(
        &self,
        shop: &ShopDomain,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some({
                let mut i = key(shop_pk(shop), LEASE_SK);
                i.insert("owner".into(), s(owner));
                i.insert("until".into(), n(until_ms));
                i.insert("expires_at".into(), n(until_ms / 1000 + 3600));
                i
            }))
            .condition_expression("attribute_not_exists(pk) OR #u < :now OR #o = :me")
            .expression_attribute_names("#u", "until")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if conditional(&e) => Ok(false),
            Err(e) => Err(error::sdk(e)),
        }
    }

    async fn release_refresh_lease(
        &self,
        shop: &ShopDomain,
        owner: &str,
    ) -> Result<(), StoreError> {
        // Ends the lease by moving its end to the past (UpdateItem: no DeleteItem needed).
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(shop_pk(shop), LEASE_SK)))
            .update_expression("SET #u = :zero")
            .condition_expression("#o = :me")
            .expression_attribute_names("#u", "until")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if conditional(&e) => Ok(()),
            Err(e) => Err(error::sdk(e)),
        }
    }
}

/// An in-memory [`ConnectionStore`] with the same conditional semantics (tests).
#[derive(Debug, Clone, Default)]
pub struct MemoryConnections {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    connections: BTreeMap<String, ShopConnection>,
    nonces: HashMap<String, NonceBinding>,
    leases: HashMap<String, (String, i64)>,
}

impl MemoryConnections {
    fn with<T>(&self, f: impl FnOnce(&mut MemoryState) -> T) -> Result<T, StoreError> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| StoreError::Other("poisoned".into()))?;
        Ok(f(&mut guard))
    }
}

impl ConnectionStore for MemoryConnections {
    async fn get_connection(
        &self,
        shop: &ShopDomain,
    ) -> Result<Option<ShopConnection>, StoreError> {
        self.with(|m| m.connections.get(shop.as_str()).cloned())
    }

    async fn put_connection(
        &self,
        conn: &ShopConnection,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        self.with(|m| {
            let stored = m.connections.get(conn.shop.as_str()).map(|c| c.version);
            if stored != expected {
                return false;
            }
            let mut c = conn.clone();
            c.version = expected.map_or(1, |v| v + 1);
            m.connections.insert(conn.shop.as_str().to_owned(), c);
            true
        })
    }

    async fn list_connections(&self) -> Result<Vec<ShopConnection>, StoreError> {
        self.with(|m| m.connections.values().cloned().collect())
    }

    async fn put_nonce(&self, nonce: &str, binding: &NonceBinding) -> Result<(), StoreError> {
        self.with(|m| {
            m.nonces.insert(nonce.to_owned(), binding.clone());
        })
    }

    async fn take_nonce(&self, nonce: &str) -> Result<Option<NonceBinding>, StoreError> {
        self.with(|m| m.nonces.remove(nonce))
    }

    async fn claim_refresh_lease(
        &self,
        shop: &ShopDomain,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.with(|m| match m.leases.get(shop.as_str()) {
            Some((o, until)) if o != owner && *until >= now_ms => false,
            _ => {
                m.leases
                    .insert(shop.as_str().to_owned(), (owner.to_owned(), until_ms));
                true
            }
        })
    }

    async fn release_refresh_lease(
        &self,
        shop: &ShopDomain,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.with(|m| {
            if m.leases.get(shop.as_str()).is_some_and(|(o, _)| o == owner) {
                m.leases.remove(shop.as_str());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(token: &str) -> ShopConnection {
        ShopConnection {
            shop: ShopDomain::parse("a.myshopify.com").unwrap(),
            method: ConnectMethod::OAuth,
            access_token: token.into(),
            access_expires_at_ms: Some(1),
            refresh_token: Some("shprt_secret".into()),
            refresh_expires_at_ms: None,
            scopes: vec!["read_orders".into()],
            status: ConnectionStatus::Connected,
            reason: None,
            version: 0,
            updated_at_ms: 0,
            webhooks: vec![],
        }
    }

    #[test]
    fn a_connection_round_trips_and_its_debug_hides_the_tokens() {
        let c = conn("shpat_secret");
        let item = encode(&c, 3).unwrap();
        let back = decode(&item).unwrap();
        assert_eq!(back.version, 3);
        assert_eq!(back.access_token, "shpat_secret");
        assert_eq!(back.refresh_token.as_deref(), Some("shprt_secret"));
        let dbg = format!("{back:?}");
        assert!(
            !dbg.contains("shpat_secret") && !dbg.contains("shprt_secret"),
            "{dbg}"
        );
    }

    #[tokio::test]
    async fn a_rotation_from_a_stale_version_loses_and_a_nonce_is_single_use() {
        let m = MemoryConnections::default();
        assert!(m.put_connection(&conn("t1"), None).await.unwrap());
        assert!(!m.put_connection(&conn("t2"), None).await.unwrap());
        assert!(m.put_connection(&conn("t2"), Some(1)).await.unwrap());
        assert!(!m.put_connection(&conn("t3"), Some(1)).await.unwrap());
        let shop = ShopDomain::parse("a.myshopify.com").unwrap();
        assert_eq!(
            m.get_connection(&shop).await.unwrap().unwrap().access_token,
            "t2"
        );
        let b = NonceBinding {
            subject: "shopify:a.myshopify.com".into(),
            issued_at_ms: 5,
        };
        m.put_nonce("n", &b).await.unwrap();
        assert_eq!(m.take_nonce("n").await.unwrap(), Some(b));
        assert_eq!(m.take_nonce("n").await.unwrap(), None);
        assert!(m.claim_refresh_lease(&shop, "x", 0, 100).await.unwrap());
        assert!(!m.claim_refresh_lease(&shop, "y", 50, 150).await.unwrap());
        assert!(m.claim_refresh_lease(&shop, "y", 101, 200).await.unwrap());
        m.release_refresh_lease(&shop, "y").await.unwrap();
        assert!(m.claim_refresh_lease(&shop, "z", 102, 200).await.unwrap());
    }
}
