//! Webhook subscriptions managed over the Admin API (list, create, point back at us), so a
//! merchant never makes them by hand and a deleted one is put back.

use super::AdminError;
use super::client::AdminClient;
use super::documents::Operation;
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;

/// Lists the shop's subscriptions, 50 a page. Requested cost is checked in
/// `tests/admin_documents.rs`.
pub const WEBHOOK_SUBSCRIPTIONS: &str = include_str!("graphql/webhook_subscriptions.graphql");
/// Creates one subscription with `uri` (`callbackUrl` is deprecated).
pub const WEBHOOK_SUBSCRIPTION_CREATE: &str =
    include_str!("graphql/webhook_subscription_create.graphql");
/// Points an existing subscription at another `uri`.
pub const WEBHOOK_SUBSCRIPTION_UPDATE: &str =
    include_str!("graphql/webhook_subscription_update.graphql");

pub(crate) const OP_WEBHOOK_SUBSCRIPTIONS: Operation = Operation {
    name: "WebhookSubscriptions",
    document: WEBHOOK_SUBSCRIPTIONS,
    mutation: false,
    expected_cost: 52,
};
pub(crate) const OP_WEBHOOK_SUBSCRIPTION_CREATE: Operation = Operation {
    name: "WebhookSubscriptionCreate",
    document: WEBHOOK_SUBSCRIPTION_CREATE,
    mutation: true,
    expected_cost: 10,
};
pub(crate) const OP_WEBHOOK_SUBSCRIPTION_UPDATE: Operation = Operation {
    name: "WebhookSubscriptionUpdate",
    document: WEBHOOK_SUBSCRIPTION_UPDATE,
    mutation: true,
    expected_cost: 10,
};

/// Pages read at most: a shop has a few dozen subscriptions at most.
const MAX_PAGES: usize = 20;

/// One subscription as Shopify lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subscription {
    /// The GraphQL gid.
    pub id: String,
    /// The enum name, e.g. `ORDERS_CREATE`.
    pub topic: String,
    pub uri: String,
}

/// What a create or update answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionOutcome {
    Done(Subscription),
    /// Shopify's `userErrors` messages (e.g. a topic the app lacks the scope for).
    Refused(Vec<String>),
}

/// The port the connect service manages subscriptions through.
pub trait WebhookSubscriptions: Send + Sync {
    fn list_subscriptions(
        &self,
        shop: &dropsync_domain::ShopDomain,
        token: &str,
    ) -> impl Future<Output = Result<Vec<Subscription>, AdminError>> + Send;

    fn create_subscription(
        &self,
        shop: &dropsync_domain::ShopDomain,
        token: &str,
        topic: &str,
        uri: &str,
    ) -> impl Future<Output = Result<SubscriptionOutcome, AdminError>> + Send;

    fn update_subscription(
        &self,
        shop: &dropsync_domain::ShopDomain,
        token: &str,
        id: &str,
        uri: &str,
    ) -> impl Future<Output = Result<SubscriptionOutcome, AdminError>> + Send;
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    #[serde(default)]
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRoot {
    webhook_subscriptions: ListConn,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListConn {
    nodes: Vec<Subscription>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct UserError {
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    webhook_subscription: Option<Subscription>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

fn decode<T: serde::de::DeserializeOwned>(op: &Operation, data: Value) -> Result<T, AdminError> {
    serde_json::from_value(data)
        .map_err(|e| AdminError::Permanent(format!("unexpected {} answer: {e}", op.name)))
}

fn outcome(op: &Operation, payload: Option<Payload>) -> Result<SubscriptionOutcome, AdminError> {
    let payload =
        payload.ok_or_else(|| AdminError::Permanent(format!("{} answered null", op.name)))?;
    if !payload.user_errors.is_empty() {
        return Ok(SubscriptionOutcome::Refused(
            payload.user_errors.into_iter().map(|e| e.message).collect(),
        ));
    }
    payload
        .webhook_subscription
        .map(SubscriptionOutcome::Done)
        .ok_or_else(|| AdminError::Permanent(format!("{} returned no subscription", op.name)))
}

impl WebhookSubscriptions for AdminClient {
    async fn list_subscriptions(
        &self,
        shop: &dropsync_domain::ShopDomain,
        token: &str,
    ) -> Result<Vec<Subscription>, AdminError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let data = self
                .run(
                    shop,
                    token,
                    &OP_WEBHOOK_SUBSCRIPTIONS,
                    json!({ "after": after }),
                    None,
                )
                .await?;
            let root: ListRoot = decode(&OP_WEBHOOK_SUBSCRIPTIONS, data)?;
            out.extend(root.webhook_subscriptions.nodes);
            match root.webhook_subscriptions.page_info {
                PageInfo {
                    has_next_page: true,
                    end_cursor: Some(c),
                } => after = Some(c),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    async fn create_subscription(
        &self,
        shop: &dropsync_domain::ShopDomain,
        token: &str,
        topic: &str,
        uri: &str,
    ) -> Result<SubscriptionOutcome, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Root {
            webhook_subscription_create: Option<Payload>,
        }
        let op = &OP_WEBHOOK_SUBSCRIPTION_CREATE;
        let data = self
            .run(
                shop,
                token,
                op,
                json!({ "topic": topic, "webhookSubscription": { "uri": uri } }),
                None,
            )
            .await?;
        let root: Root = decode(op, data)?;
        outcome(op, root.webhook_subscription_create)
    }

    async fn update_subscription(
        &self,
        shop: &dropsync_domain::ShopDomain,
        token: &str,
        id: &str,
        uri: &str,
    ) -> Result<SubscriptionOutcome, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Root {
            webhook_subscription_update: Option<Payload>,
        }
        let op = &OP_WEBHOOK_SUBSCRIPTION_UPDATE;
        let data = self
            .run(
                shop,
                token,
                op,
                json!({ "id": id, "webhookSubscription": { "uri": uri } }),
                None,
            )
            .await?;
        let root: Root = decode(op, data)?;
        outcome(op, root.webhook_subscription_update)
    }
}
