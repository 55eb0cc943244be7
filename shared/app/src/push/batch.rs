//! A batch of tracking-queue messages: grouped per order (two packages of one order must not both
//! plan against the same remaining quantities), orders run concurrently, bounded by the
//! invocation's deadline and the queue's redrive policy.

use super::{PushError, PushService};
use crate::ports::PushStore;
use crate::queue::PushMessage;
use dropsync_shopify::admin::ShopifyAdmin;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// One queue message: its id (the SQS message id) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    pub id: String,
    pub body: String,
}

/// A queue message as delivered: how many times SQS has handed it out so far
/// (`ApproximateReceiveCount`, 1 on the first delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message: BatchMessage,
    pub receive_count: u32,
}

struct Parsed {
    id: String,
    msg: PushMessage,
    order_id: u64,
    ae: u64,
    receive_count: u32,
}

/// The parsed messages per (shop, order), each order's in delivery order; a malformed message is
/// logged and left out (acknowledged: a poison message never blocks the batch).
fn group_by_order(deliveries: Vec<Delivery>) -> BTreeMap<(String, u64), Vec<Parsed>> {
    let mut groups: BTreeMap<(String, u64), Vec<Parsed>> = BTreeMap::new();
    for Delivery {
        message: BatchMessage { id, body },
        receive_count,
    } in deliveries
    {
        match PushMessage::parse(&body) {
            Ok((msg, order_id, ae)) => groups
                .entry((msg.shop.to_string(), order_id))
                .or_default()
                .push(Parsed {
                    id,
                    msg,
                    order_id,
                    ae,
                    receive_count,
                }),
            Err(e) => {
                warn!(message_id = id.as_str(), error = %e, "malformed message acknowledged");
            }
        }
    }
    groups
}

/// Runs a batch of push messages and returns the ids of the messages to retry (SQS batch-item
/// failures). Messages of one order run one after another, orders run concurrently. A malformed
/// message is logged and acknowledged: a poison message never blocks the batch.
pub async fn push_batch<A: ShopifyAdmin + 'static, S: PushStore + 'static>(
    svc: Arc<PushService<A, S>>,
    messages: Vec<BatchMessage>,
) -> Vec<String> {
    let deliveries = messages
        .into_iter()
        .map(|message| Delivery {
            message,
            receive_count: 1,
        })
        .collect();
    push_deliveries(svc, deliveries, BatchLimits::default()).await
}

/// What bounds a batch: the queue's redrive policy and the invocation's time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchLimits {
    /// The queue's `maxReceiveCount`: a message failing on this delivery is dead-lettered next.
    pub max_receives: Option<u32>,
    /// When the invocation must have answered (the Lambda deadline less a reserve). A push still
    /// running then is abandoned like a crash — the package's lease and the read-back after an
    /// unknown outcome make that safe — and its message reported for a retry; messages not started
    /// are reported without being tried. Lambda would otherwise time out and return the whole
    /// batch, done messages included.
    pub deadline: Option<std::time::Instant>,
}

/// [`push_batch`] knowing each message's delivery count. With `max_receives` (the queue's
/// `maxReceiveCount`), a message that fails on its last delivery — the next stop is the
/// dead-letter queue — has its failure recorded on the package first, so the merchant sees it
/// (`GET /shops/{shop}/attention`) while the push stays due for a replay or the next run.
pub async fn push_deliveries<A: ShopifyAdmin + 'static, S: PushStore + 'static>(
    svc: Arc<PushService<A, S>>,
    deliveries: Vec<Delivery>,
    limits: BatchLimits,
) -> Vec<String> {
    let BatchLimits {
        max_receives,
        deadline,
    } = limits;
    let groups = group_by_order(deliveries);
    let mut set = JoinSet::new();
    let mut ids_of_task = HashMap::new();
    for (_, msgs) in groups {
        let svc = svc.clone();
        let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
        let handle = set.spawn(async move {
            let mut failed = Vec::new();
            for Parsed {
                id,
                msg,
                order_id,
                ae,
                receive_count,
            } in msgs
            {
                let result = match deadline {
                    Some(d) if Instant::now() >= d => {
                        Err(PushError::Retry("no time left in this invocation".into()))
                    }
                    Some(d) => tokio::time::timeout_at(
                        tokio::time::Instant::from_std(d),
                        svc.handle(&msg, order_id, ae),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(PushError::Retry(
                            "the invocation ran out of time mid-push".into(),
                        ))
                    }),
                    None => svc.handle(&msg, order_id, ae).await,
                };
                match result {
                    Ok(outcome) => {
                        info!(shop = %msg.shop, order_id, ae_order_id = ae,
                            tracking = msg.tracking_number.as_str(), ?outcome, "push handled");
                    }
                    Err(PushError::Retry(why))
                        if max_receives.is_some_and(|max| receive_count >= max) =>
                    {
                        error!(shop = %msg.shop, order_id, ae_order_id = ae,
                            tracking = msg.tracking_number.as_str(), why, receive_count,
                            "push failed on its last delivery; the message goes to the dead-letter queue");
                        svc.record_gave_up(&msg, order_id, ae, &why, receive_count)
                            .await;
                        failed.push(id);
                    }
                    Err(PushError::Retry(why)) => {
                        warn!(shop = %msg.shop, order_id, ae_order_id = ae,
                            tracking = msg.tracking_number.as_str(), why, "push will be retried");
                        failed.push(id);
                    }
                }
            }
            failed
        });
        ids_of_task.insert(handle.id(), ids);
    }
    let mut failed = Vec::new();
    while let Some(done) = set.join_next_with_id().await {
        match done {
            Ok((_, ids)) => failed.extend(ids),
            // A task that died cannot say which of its messages were done: retry them all (the
            // pusher is idempotent, so the done ones are skipped next time).
            Err(e) => {
                warn!(error = %e, "push task failed");
                failed.extend(ids_of_task.remove(&e.id()).unwrap_or_default());
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, body: String) -> Delivery {
        Delivery {
            message: BatchMessage {
                id: id.to_owned(),
                body,
            },
            receive_count: 1,
        }
    }

    fn body(shop: &str, order_id: u64, tracking: &str) -> String {
        let shop = dropsync_domain::ShopDomain::parse(shop).unwrap();
        PushMessage::new(&shop, order_id, 9, tracking).to_body()
    }

    #[test]
    fn messages_are_grouped_per_order_in_delivery_order_and_malformed_ones_are_left_out() {
        let groups = group_by_order(vec![
            delivery("m1", body("a.myshopify.com", 1, "T1")),
            delivery("bad", "{not json".to_owned()),
            delivery("m2", body("b.myshopify.com", 1, "T2")),
            delivery("m3", body("a.myshopify.com", 1, "T3")),
            delivery("m4", body("a.myshopify.com", 2, "T4")),
        ]);
        let ids: Vec<((String, u64), Vec<&str>)> = groups
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|p| p.id.as_str()).collect()))
            .collect();
        assert_eq!(
            ids,
            vec![
                (("a.myshopify.com".to_owned(), 1), vec!["m1", "m3"]),
                (("a.myshopify.com".to_owned(), 2), vec!["m4"]),
                (("b.myshopify.com".to_owned(), 1), vec!["m2"]),
            ]
        );
    }
}
