//! The tracking pusher: an SQS batch of packages to push, each handled independently.
//!
//! Messages for the same order run one after another (two packages of one order must not both
//! read the same remaining quantities); different orders run concurrently. A message that must
//! be retried is reported as a batch-item failure and only it comes back; a malformed one is
//! logged and acknowledged so a poison message never blocks the batch (the DLQ catches whatever
//! keeps failing).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dropsync_app::push::{PushError, PushService};
use dropsync_app::queue::PushMessage;
use dropsync_shopify::admin::ShopifyAdmin;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// A parsed message with its SQS message id and its numeric ids.
struct Item {
    id: String,
    msg: PushMessage,
    order_id: u64,
    ae: u64,
}

pub async fn handle_batch<A: ShopifyAdmin + 'static>(
    svc: Arc<PushService<A>>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut groups: BTreeMap<(String, u64), Vec<Item>> = BTreeMap::new();
    for rec in event.records {
        let id = rec.message_id.clone().unwrap_or_default();
        let body = rec.body.as_deref().unwrap_or_default();
        match PushMessage::parse(body) {
            Ok((msg, order_id, ae)) => groups
                .entry((msg.shop.to_string(), order_id))
                .or_default()
                .push(Item {
                    id,
                    msg,
                    order_id,
                    ae,
                }),
            Err(e) => warn!(message_id = id.as_str(), error = %e, "malformed message acknowledged"),
        }
    }
    let mut set = JoinSet::new();
    let mut ids_of_task = std::collections::HashMap::new();
    for (_, msgs) in groups {
        let svc = svc.clone();
        let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
        let handle = set.spawn(async move {
            let mut failed = Vec::new();
            for Item { id, msg, order_id, ae } in msgs {
                match svc.handle(&msg, order_id, ae).await {
                    Ok(outcome) => {
                        info!(shop = %msg.shop, order_id, tracking = msg.tracking_number.as_str(), ?outcome, "push handled")
                    }
                    Err(PushError::Retry(why)) => {
                        warn!(shop = %msg.shop, order_id, tracking = msg.tracking_number.as_str(), why, "push will be retried");
                        failed.push(id);
                    }
                }
            }
            failed
        });
        ids_of_task.insert(handle.id(), ids);
    }
    let mut response = SqsBatchResponse::default();
    while let Some(done) = set.join_next_with_id().await {
        match done {
            Ok((_, failed)) => failed.into_iter().for_each(|id| response.add_failure(id)),
            // A task that died cannot say which of its messages were done: retry them all (the
            // pusher is idempotent, so the done ones are skipped next time).
            Err(e) => {
                warn!(error = %e, "push task failed");
                for id in ids_of_task.remove(&e.id()).unwrap_or_default() {
                    response.add_failure(id);
                }
            }
        }
    }
    response
}
