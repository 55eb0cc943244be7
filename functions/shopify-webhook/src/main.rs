//! Wires the webhook function: configuration and clients once, then the HTTP loop. The services
//! are built at cold start from a credentials file, or on the first invocation from the secret
//! (see `wiring::Deferred`).

use dropsync_app::auto_place::{SqsPlaceQueue, deliver_and_queue};
use dropsync_app::webhook::WebhookService;
use dropsync_app::{Config, Credentials, init_logging, wiring};
use dropsync_shopify_webhook::{header_lookup, post_only, respond};
use lambda_http::{Error, Request, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Arc::new(Config::from_env(false)?);
    let aws = wiring::aws().await;
    let admin = Arc::new(wiring::admin_client(&config)?);
    let deferred = {
        let (config, aws) = (config.clone(), aws.clone());
        wiring::Deferred::new(move || {
            let (config, aws, admin) = (config.clone(), aws.clone(), admin.clone());
            async move {
                let credentials = Arc::new(Credentials::load(&config.credentials).await?);
                Ok(WebhookService {
                    store: wiring::store(&aws, &config),
                    credentials,
                    admin: Some(admin),
                })
            }
        })
    };
    deferred.eager_unless_secret(&config).await?;
    // Automatic placement: orders due are only queued here (PLACE_QUEUE_URL, optional).
    let place_queue = std::env::var("PLACE_QUEUE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|url| Arc::new(SqsPlaceQueue::from_sdk(&aws, url)));
    lambda_http::run(service_fn(move |req: Request| {
        let (deferred, place_queue) = (deferred.clone(), place_queue.clone());
        async move {
            Ok::<_, Error>(match deferred.get().await {
                // With a placement queue, due orders are queued after the delivery is applied.
                // This call lives here, not in the crate's library, so that the EventBridge
                // binary (which shares the library) cannot reach the queue send.
                Ok(svc) => match (&place_queue, post_only(&req)) {
                    (_, Some(refused)) => refused,
                    (Some(queue), None) => respond(
                        deliver_and_queue(&svc, &**queue, header_lookup(&req), req.body().as_ref())
                            .await,
                    ),
                    (None, None) => dropsync_shopify_webhook::handle_request(&svc, req).await,
                },
                Err(e) => dropsync_shopify_webhook::unavailable(&*e),
            })
        }
    }))
    .await
}
