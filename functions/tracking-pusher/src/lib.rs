//! The tracking pusher: an SQS batch of packages to push, each handled independently.
//!
//! The work is [`dropsync_app::push::push_batch`]: messages for the same order run one after
//! another (two packages of one order must not both plan against the same remaining
//! quantities), different orders run concurrently. A message that must be retried is reported
//! as a batch-item failure (`ReportBatchItemFailures`) and only it comes back; a malformed one is
//! logged and acknowledged so a poison message never blocks the batch (the DLQ catches whatever
//! keeps failing).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dropsync_app::push::{BatchLimits, BatchMessage, Delivery, PushService, push_deliveries};
use dropsync_shopify::admin::ShopifyAdmin;
use std::sync::Arc;
use tracing::warn;

/// The SQS records as queue messages. A record without a message id cannot be reported as a
/// failure, so it is given a placeholder id and treated like any other (its body decides).
pub fn messages(event: SqsEvent) -> Vec<BatchMessage> {
    deliveries(event).into_iter().map(|d| d.message).collect()
}

/// The SQS records with their delivery counts (`ApproximateReceiveCount`; 1 when absent).
pub fn deliveries(event: SqsEvent) -> Vec<Delivery> {
    event
        .records
        .into_iter()
        .map(|rec| {
            let id = rec.message_id.unwrap_or_else(|| {
                warn!("SQS record without a messageId");
                String::new()
            });
            let receive_count = rec
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(1);
            Delivery {
                message: BatchMessage {
                    id,
                    body: rec.body.unwrap_or_default(),
                },
                receive_count,
            }
        })
        .collect()
}

/// Handles one SQS batch; the response names the messages to retry.
pub async fn handle_batch<A: ShopifyAdmin + 'static>(
    svc: Arc<PushService<A>>,
    event: SqsEvent,
) -> SqsBatchResponse {
    handle(svc, event, BatchLimits::default()).await
}

/// [`handle_batch`] within the queue's redrive policy and the invocation's deadline (see
/// [`BatchLimits`]): a push failing on its last delivery is recorded on the order before SQS
/// moves it to the dead-letter queue, and the batch answers before Lambda's timeout.
pub async fn handle<A: ShopifyAdmin + 'static>(
    svc: Arc<PushService<A>>,
    event: SqsEvent,
    limits: BatchLimits,
) -> SqsBatchResponse {
    let failed = push_deliveries(svc, deliveries(event), limits).await;
    let mut response = SqsBatchResponse::default();
    for id in failed {
        response.add_failure(id);
    }
    response
}
