//! The tracking pusher: an SQS batch of packages to push, each handled independently.
//!
//! The work is [`dropsync_app::push::push_batch`]: messages for the same order run one after
//! another (two packages of one order must not both plan against the same remaining
//! quantities), different orders run concurrently. A message that must be retried is reported
//! as a batch-item failure (`ReportBatchItemFailures`) and only it comes back; a malformed one is
//! logged and acknowledged so a poison message never blocks the batch (the DLQ catches whatever
//! keeps failing).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dropsync_app::push::{BatchMessage, PushService, push_batch};
use dropsync_shopify::admin::ShopifyAdmin;
use std::sync::Arc;
use tracing::warn;

/// The SQS records as queue messages. A record without a message id cannot be reported as a
/// failure, so it is given a placeholder id and treated like any other (its body decides).
pub fn messages(event: SqsEvent) -> Vec<BatchMessage> {
    event
        .records
        .into_iter()
        .map(|rec| {
            let id = rec.message_id.unwrap_or_else(|| {
                warn!("SQS record without a messageId");
                String::new()
            });
            BatchMessage {
                id,
                body: rec.body.unwrap_or_default(),
            }
        })
        .collect()
}

/// Handles one SQS batch; the response names the messages to retry.
pub async fn handle_batch<A: ShopifyAdmin + 'static>(
    svc: Arc<PushService<A>>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let failed = push_batch(svc, messages(event)).await;
    let mut response = SqsBatchResponse::default();
    for id in failed {
        response.add_failure(id);
    }
    response
}
