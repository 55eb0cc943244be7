//! Dashboard sessions: one item per signed-in browser, keyed by a hash of the session id (so a
//! reader of the table cannot take over a session), with the shops it may see and its CSRF
//! token. DynamoDB's TTL removes expired items eventually; reads check the expiry themselves.
//! Also the dashboard's order search by Shopify order name.

use crate::Store;
use crate::StoredOrder;
use crate::codec::{decode_order, s, tab_pk};
use crate::error::{self, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_domain::{OrderStatus, ShopDomain};

const SESSION_SK: &str = "SESSION";

/// A signed-in dashboard session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Signed in with the admin token: sees every configured shop, including ones added later.
    pub admin: bool,
    /// The shops a shop token may see (empty for the admin).
    pub shops: Vec<ShopDomain>,
    /// The token every state-changing form must carry.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("admin", &self.admin)
            .field("shops", &self.shops)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn session_pk(key: &str) -> String {
    format!("SESSION#{key}")
}

fn session_key(key: &str) -> std::collections::HashMap<String, AttributeValue> {
    std::collections::HashMap::from([
        ("pk".to_owned(), s(session_pk(key))),
        ("sk".to_owned(), s(SESSION_SK)),
    ])
}

impl Store {
    /// Stores a new session under `key` (a hash of its id, never the id itself).
    pub async fn put_session(&self, key: &str, rec: &SessionRecord) -> Result<(), StoreError> {
        let shops: Vec<String> = rec.shops.iter().map(|s| s.as_str().to_owned()).collect();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(session_pk(key)))
            .item("sk", s(SESSION_SK))
            .item("admin", AttributeValue::Bool(rec.admin))
            .item(
                "shops",
                s(serde_json::to_string(&shops).map_err(|e| StoreError::Other(e.to_string()))?),
            )
            .item("csrf", s(rec.csrf.clone()))
            .item("expires_at", AttributeValue::N(rec.expires_at.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }

    /// The session stored under `key`, unless it is missing or expired at `now_secs`.
    pub async fn get_session(
        &self,
        key: &str,
        now_secs: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(session_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(error::sdk)?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let expires_at: i64 = match item.get("expires_at") {
            Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
            _ => 0,
        };
        if expires_at <= now_secs {
            return Ok(None);
        }
        let shops: Vec<String> = match item.get("shops") {
            Some(AttributeValue::S(raw)) => serde_json::from_str(raw)
                .map_err(|e| StoreError::Corrupt(format!("session shops: {e}")))?,
            _ => Vec::new(),
        };
        let csrf = match item.get("csrf") {
            Some(AttributeValue::S(v)) if !v.is_empty() => v.clone(),
            _ => return Err(StoreError::Corrupt("session csrf".into())),
        };
        Ok(Some(SessionRecord {
            admin: matches!(item.get("admin"), Some(AttributeValue::Bool(true))),
            shops: shops
                .iter()
                .filter_map(|s| ShopDomain::parse(s).ok())
                .collect(),
            csrf,
            expires_at,
        }))
    }

    /// Ends a session: the cookie that named it no longer works.
    pub async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(session_key(key)))
            .send()
            .await
            .map(|_| ())
            .map_err(error::sdk)
    }

    /// Finds a shop's order by its Shopify name (`#1001`). There is no index by name: this
    /// reads the tab partitions with a filter, newest first, and stops at the first match —
    /// about one read unit per 4 KB of the shop's orders in the worst case.
    pub async fn find_order_by_name(
        &self,
        shop: &ShopDomain,
        name: &str,
    ) -> Result<Option<StoredOrder>, StoreError> {
        for status in OrderStatus::ALL {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("gsi2")
                    .key_condition_expression("gsi2pk = :p")
                    .filter_expression("#n = :n")
                    .expression_attribute_names("#n", "name")
                    .expression_attribute_values(":p", s(tab_pk(shop, status)))
                    .expression_attribute_values(":n", s(name))
                    .scan_index_forward(false)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(error::sdk)?;
                if let Some(item) = out.items().first() {
                    let (order, version) = decode_order(item)?;
                    return Ok(Some(StoredOrder { order, version }));
                }
                start = out.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(None)
    }
}
