//! Automatic placement (the shop's `auto_place` setting): a paid order whose every item is
//! mapped is placed through a queue, never inside the webhook's 5 s.
//!
//! The webhook path only decides and enqueues ([`enqueue_if_due`]); the order placer consumes the
//! queue ([`place_batch`]) and runs the same [`Placer`] as the place route, so the claim that
//! makes one `order.create` per seller holds here too: a message delivered twice, or racing a
//! merchant's click, places nothing twice.

use crate::place::{PlaceError, Placer};
use crate::push::BatchMessage;
pub use crate::queue::{PlaceMessage, PlaceQueue, QueueError, SqsPlaceQueue};
use crate::webhook::{Outcome, WebhookError, WebhookService};
use dropsync_domain::placement::lines_to_place;
use dropsync_domain::{OrderStatus, ShopDomain};
use dropsync_shopify::admin::ShopifyAdmin;
use dropsync_store::{ShopifyApplied, Store, StoreError};
use serde::Deserialize;
use tracing::{info, warn};

/// Whether the order is due for automatic placement: the shop has `auto_place` on, the order is
/// in `awaiting_order` with nothing placed or being placed yet, and every line still to buy has
/// a variant with a mapping. An unmapped order is simply not due (the merchant maps and places
/// it): it is never turned into a failure by automation.
pub async fn is_due(store: &Store, shop: &ShopDomain, order_id: u64) -> Result<bool, StoreError> {
    if !store.get_shop(shop).await?.settings.auto_place {
        return Ok(false);
    }
    let Some(stored) = store.get_order(shop, order_id).await? else {
        return Ok(false);
    };
    let order = &stored.order;
    if order.status != OrderStatus::AwaitingOrder || !order.placements.is_empty() {
        return Ok(false);
    }
    let lines = lines_to_place(order);
    if lines.is_empty() {
        return Ok(false);
    }
    let mut variants = Vec::with_capacity(lines.len());
    for li in order
        .shopify
        .line_items
        .iter()
        .filter(|li| lines.contains(&li.id))
    {
        match li.variant_id {
            Some(v) => variants.push(v),
            None => return Ok(false),
        }
    }
    let mappings = store.mappings_for(shop, &variants).await?;
    Ok(variants
        .iter()
        .all(|v| mappings.get(v).is_some_and(|m| !m.rows.is_empty())))
}

/// Why an order due for automatic placement was not queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("reading whether the order is due failed")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Enqueues the order when it is due (see [`is_due`]); `Ok(true)` when a message was sent.
/// Sending twice is harmless: the placer's claim makes the second delivery a no-op.
pub async fn enqueue_if_due<Q: PlaceQueue>(
    store: &Store,
    queue: &Q,
    shop: &ShopDomain,
    order_id: u64,
) -> Result<bool, EnqueueError> {
    if !is_due(store, shop, order_id).await? {
        return Ok(false);
    }
    queue
        .send_placement(&PlaceMessage {
            shop: shop.as_str().to_owned(),
            order_id: order_id.to_string(),
        })
        .await?;
    info!(shop = %shop, order_id, "queued for automatic placement");
    Ok(true)
}

/// A webhook delivery over HTTPS ([`WebhookService::handle_signed_delivery`]), then, for an order delivery
/// that left the order in `awaiting_order`, [`enqueue_if_due`]. Only a message is sent: the
/// placing runs in the order placer, never inside Shopify's 5 s. A failed send is logged and does
/// not fail the delivery (the order stays in *Awaiting order*, where the merchant can place it).
pub async fn deliver_and_queue<'h, A: ShopifyAdmin, Q: PlaceQueue>(
    svc: &WebhookService<A>,
    queue: &Q,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
) -> Result<Outcome, WebhookError> {
    let shop = header("x-shopify-shop-domain").and_then(|s| ShopDomain::parse(s).ok());
    let outcome = svc.handle_signed_delivery(header, body).await?;
    if let Outcome::Order(
        ShopifyApplied::Created(OrderStatus::AwaitingOrder)
        | ShopifyApplied::Updated(OrderStatus::AwaitingOrder),
    ) = &outcome
    {
        // Read only now that the delivery is verified and applied.
        let order_id = serde_json::from_slice::<OrderIdOnly>(body)
            .ok()
            .and_then(|o| o.id);
        if let (Some(shop), Some(order_id)) = (shop, order_id)
            && let Err(e) = enqueue_if_due(&svc.store, queue, &shop, order_id).await
        {
            warn!(shop = %shop, order_id, error = %e, "could not queue the order for automatic placement");
        }
    }
    Ok(outcome)
}

#[derive(Deserialize)]
struct OrderIdOnly {
    id: Option<u64>,
}

/// What to do with one message after trying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done, or nothing to do: acknowledge.
    Done,
    /// Cannot ever succeed (malformed, no such order, not placeable any more): acknowledged and
    /// logged, so a poison message never blocks the queue.
    Permanent,
    /// May succeed later (AliExpress or Shopify unavailable, the table throttled, no token yet):
    /// reported as a batch-item failure; after the queue's receive limit it lands in the DLQ,
    /// whose alarm tells the operator.
    Retry,
}

/// The one place placement errors become queue dispositions.
pub fn disposition(e: &PlaceError) -> Disposition {
    match e {
        PlaceError::NotFound | PlaceError::NotPlaceable(_) => Disposition::Permanent,
        // Retrying cannot help before the merchant re-authorizes, and could take weeks: the
        // order stays in Awaiting order (placed from there afterwards) and the attention list
        // already says to re-authorize.
        PlaceError::AuthorizationEnded(_) => Disposition::Permanent,
        PlaceError::Store(_)
        | PlaceError::Shopify(_)
        | PlaceError::Ae(_)
        | PlaceError::NoToken
        | PlaceError::ReconnectRequired(_) => Disposition::Retry,
    }
}

async fn place_one(placer: &dyn Placer, store: &Store, body: &str) -> Disposition {
    let Ok(msg) = serde_json::from_str::<PlaceMessage>(body) else {
        warn!("placement message is not a PlaceMessage; dropped");
        return Disposition::Permanent;
    };
    let (Ok(shop), Ok(order_id)) = (ShopDomain::parse(&msg.shop), msg.order_id.parse::<u64>())
    else {
        warn!("placement message names no valid shop or order; dropped");
        return Disposition::Permanent;
    };
    // Re-checked here: the merchant may have placed it, or removed a mapping, since it was queued.
    match is_due(store, &shop, order_id).await {
        Ok(true) => {}
        Ok(false) => {
            info!(shop = %shop, order_id, "no longer due for automatic placement");
            return Disposition::Done;
        }
        Err(e) => {
            warn!(shop = %shop, order_id, error = %e, "cannot read the order; retried");
            return Disposition::Retry;
        }
    }
    match placer.place(&shop, order_id).await {
        Ok(order) => {
            info!(shop = %shop, order_id, status = %order.order.status, "placed automatically");
            Disposition::Done
        }
        Err(e) => {
            let d = disposition(&e);
            warn!(shop = %shop, order_id, error = %e, retry = d == Disposition::Retry, "automatic placement did not complete");
            d
        }
    }
}

/// Places a batch of queued orders, one after another (each is a few AliExpress calls and the
/// placer's own rate limit applies); answers the ids of the messages to retry.
pub async fn place_batch(
    placer: &dyn Placer,
    store: &Store,
    messages: Vec<BatchMessage>,
) -> Vec<String> {
    let mut retry = Vec::new();
    for m in messages {
        if place_one(placer, store, &m.body).await == Disposition::Retry {
            retry.push(m.id);
        }
    }
    retry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_placement_errors_are_retried() {
        assert_eq!(disposition(&PlaceError::NotFound), Disposition::Permanent);
        assert_eq!(
            disposition(&PlaceError::NotPlaceable("canceled".into())),
            Disposition::Permanent
        );
        assert_eq!(disposition(&PlaceError::NoToken), Disposition::Retry);
        assert_eq!(
            disposition(&PlaceError::ReconnectRequired("refused".into())),
            Disposition::Retry
        );
    }

    #[test]
    fn an_ended_aliexpress_authorization_is_not_retried_until_the_queue_gives_up() {
        assert_eq!(
            disposition(&PlaceError::AuthorizationEnded("re-authorize".into())),
            Disposition::Permanent
        );
    }

    #[test]
    fn a_message_carries_the_order_id_as_a_string() {
        let m = PlaceMessage {
            shop: "a.myshopify.com".into(),
            order_id: "18446744073709551615".into(),
        };
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"shop":"a.myshopify.com","order_id":"18446744073709551615"}"#
        );
    }
}
