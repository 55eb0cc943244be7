//! The order placer: an SQS batch of orders due for automatic placement (the shop's
//! `auto_place` setting), each placed by the same service as `POST …/orders/{id}/place`.
//!
//! A message that may succeed later is reported as a batch-item failure
//! (`ReportBatchItemFailures`) and only it comes back; after the queue's receive limit it lands
//! in the dead-letter queue, whose alarm tells the operator. Which failures are retried is
//! decided in one place, [`dropsync_app::auto_place::disposition`].

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dropsync_app::auto_place::place_batch;
use dropsync_app::place::Placer;
use dropsync_app::push::BatchMessage;
use dropsync_store::Store;
use tracing::warn;

/// Handles one SQS batch; the response names the messages to retry.
pub async fn handle(placer: &dyn Placer, store: &Store, event: SqsEvent) -> SqsBatchResponse {
    let messages = event
        .records
        .into_iter()
        .map(|rec| BatchMessage {
            id: rec.message_id.unwrap_or_else(|| {
                warn!("SQS record without a messageId");
                String::new()
            }),
            body: rec.body.unwrap_or_default(),
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    for id in place_batch(placer, store, messages).await {
        response.add_failure(id);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use dropsync_app::auto_place::PlaceMessage;

    #[test]
    fn the_sample_event_is_an_sqs_batch_of_place_messages() {
        let event: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_str(include_str!("../../../events/sqs-order-place.json")).unwrap();
        let body = event.records[0].body.as_deref().unwrap();
        let msg: PlaceMessage = serde_json::from_str(body).unwrap();
        assert_eq!(msg.shop, "example.myshopify.com");
        assert_eq!(msg.order_id, "820982911946154508");
    }
}
