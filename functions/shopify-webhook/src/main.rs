//! Wires the webhook function: the configuration at cold start (a bad value fails it), the
//! services from the graph on the first invocation, then the HTTP loop.

use dropsync_app::auto_place::{SqsPlaceQueue, deliver_and_queue};
use dropsync_app::webhook::WebhookService;
use dropsync_app::{Config, init_logging, wiring};
use dropsync_shopify::admin::AdminClient;
use dropsync_shopify_webhook::{header_lookup, post_only, respond};
use lambda_http::{Error, Request, service_fn};

struct Services {
    webhook: WebhookService<AdminClient>,
    /// Automatic placement: orders due are only queued here (`PLACE_QUEUE_URL`, optional).
    place_queue: Option<SqsPlaceQueue>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let services = wiring::Deferred::from_graph(Config::from_env(false)?, |g| {
        Ok(Services {
            webhook: g.webhook()?,
            place_queue: g.place_queue(),
        })
    });
    lambda_http::run(service_fn(move |req: Request| {
        let services = services.clone();
        async move {
            Ok::<_, Error>(match services.get().await {
                // With a placement queue, due orders are queued after the delivery is applied.
                // This call lives here, not in the crate's library, so that the EventBridge
                // binary (which shares the library) cannot reach the queue send.
                Ok(s) => match (&s.place_queue, post_only(&req)) {
                    (_, Some(refused)) => refused,
                    (Some(queue), None) => respond(
                        deliver_and_queue(
                            &s.webhook,
                            queue,
                            header_lookup(&req),
                            req.body().as_ref(),
                        )
                        .await,
                    ),
                    (None, None) => dropsync_shopify_webhook::handle_request(&s.webhook, req).await,
                },
                Err(e) => dropsync_shopify_webhook::unavailable(&*e),
            })
        }
    }))
    .await
}
