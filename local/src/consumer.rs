//! Queue consumers: what Lambda's SQS event source does on AWS — long-poll, hand the batch to the
//! function, delete what succeeded, leave the reported failures to come back.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use dropsync_aliexpress::AliExpressApi;
use dropsync_aliexpress_poller::{run, trigger};
use dropsync_app::auto_place::{SqsPlaceQueue, deliver_and_queue};
use dropsync_app::place::Placer;
use dropsync_app::push::PushService;
use dropsync_app::queue::{SqsContinuation, TrackingQueue};
use dropsync_app::sync::{SyncService, deadline_within};
use dropsync_app::webhook::WebhookService;
use dropsync_shopify::admin::ShopifyAdmin;
use dropsync_store::Store;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long a failed message stays invisible locally before it comes back (AWS uses the queue's
/// visibility timeout; locally a short backoff keeps runs brisk).
fn local_backoff(receive_count: u32) -> i32 {
    (2i32).saturating_pow(receive_count.min(5)).min(30)
}

async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Option<(Value, Vec<(String, String, u32)>)> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "receive failed");
            tokio::time::sleep(Duration::from_millis(500)).await;
            return None;
        }
    };
    let msgs = out.messages();
    if msgs.is_empty() {
        return None;
    }
    let mut records = Vec::new();
    let mut handles = Vec::new();
    for m in msgs {
        let id = m.message_id().unwrap_or_default().to_owned();
        let count: u32 = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        records.push(json!({
            "messageId": id,
            "receiptHandle": m.receipt_handle(),
            "body": m.body(),
            "attributes": {"ApproximateReceiveCount": count.to_string()},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
        }));
        handles.push((id, m.receipt_handle().unwrap_or_default().to_owned(), count));
    }
    Some((json!({ "Records": records }), handles))
}

async fn settle(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    handles: Vec<(String, String, u32)>,
    failed: &[String],
) {
    for (id, receipt, count) in handles {
        let res = if failed.contains(&id) {
            sqs.change_message_visibility()
                .queue_url(url)
                .receipt_handle(receipt)
                .visibility_timeout(local_backoff(count))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(receipt)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        if let Err(e) = res {
            warn!(error = e.as_str(), "settling a message failed");
        }
    }
}

/// Feeds one queue to a function's batch handler, as Lambda's SQS event source does: receive a
/// batch, hand it over as an `SqsEvent`, delete what the handler did not report as failed.
async fn serve<F, Fut>(sqs: aws_sdk_sqs::Client, url: String, mut handle: F)
where
    F: FnMut(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    loop {
        let Some((event, handles)) = receive(&sqs, &url).await else {
            continue;
        };
        let event: SqsEvent = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "batch not representable as an SQS event");
                continue;
            }
        };
        let response = handle(event).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        settle(&sqs, &url, handles, &failed).await;
    }
}

/// Feeds the tracking pusher.
pub async fn tracking<A: ShopifyAdmin + 'static>(
    sqs: aws_sdk_sqs::Client,
    url: String,
    pusher: Arc<PushService<A>>,
    max_receives: Option<u32>,
) {
    serve(sqs, url, |event| {
        // The template's pusher timeout (30 s) less the same reserve as on Lambda.
        let limits = dropsync_app::push::BatchLimits {
            max_receives,
            deadline: Some(std::time::Instant::now() + Duration::from_secs(27)),
        };
        dropsync_tracking_pusher::handle(pusher.clone(), event, limits)
    })
    .await
}

/// Feeds the order placer (shops with `auto_place` on) with the same library handler as the
/// `order-placer` function, so a paid, mapped order is placed locally as it is on AWS.
pub async fn placement(
    sqs: aws_sdk_sqs::Client,
    url: String,
    placer: Arc<dyn Placer>,
    store: Store,
) {
    serve(sqs, url, |event| {
        let (placer, store) = (placer.clone(), store.clone());
        async move { dropsync_order_placer::handle(&*placer, &store, event).await }
    })
    .await
}

/// One webhook delivery as the `shopify-webhook` function answers it: applied, then (with a
/// placement queue) an order due for automatic placement is queued for [`placement`].
pub async fn webhook<A: ShopifyAdmin>(
    svc: &WebhookService<A>,
    place_queue: Option<&SqsPlaceQueue>,
    req: Request,
) -> Response<Body> {
    match (place_queue, dropsync_shopify_webhook::post_only(&req)) {
        (_, Some(refused)) => refused,
        (Some(queue), None) => dropsync_shopify_webhook::respond(
            deliver_and_queue(
                svc,
                queue,
                dropsync_shopify_webhook::header_lookup(&req),
                req.body().as_ref(),
            )
            .await,
        ),
        (None, None) => dropsync_shopify_webhook::handle_request(svc, req).await,
    }
}

/// How long one local poller "invocation" may run (the template's poller timeout).
pub const POLL_INVOCATION: Duration = Duration::from_secs(900);

/// Feeds the poller its continuations.
pub async fn continuations<A: AliExpressApi + 'static, Q: TrackingQueue + 'static>(
    sqs: aws_sdk_sqs::Client,
    url: String,
    sync: Arc<SyncService<A, Q>>,
    continuation_url: String,
) {
    let cont = SqsContinuation::new(sqs.clone(), Some(continuation_url));
    loop {
        let Some((event, handles)) = receive(&sqs, &url).await else {
            continue;
        };
        let ok = match trigger(&event) {
            Ok(triggers) => run(
                &sync,
                &cont,
                triggers,
                deadline_within(POLL_INVOCATION, Duration::from_secs(30)),
            )
            .await
            .map_err(|e| warn!(error = %e, "continuation failed"))
            .is_ok(),
            Err(e) => {
                warn!(error = %e, "bad continuation");
                true
            }
        };
        let failed: Vec<String> = if ok {
            vec![]
        } else {
            handles.iter().map(|h| h.0.clone()).collect()
        };
        settle(&sqs, &url, handles, &failed).await;
    }
}
