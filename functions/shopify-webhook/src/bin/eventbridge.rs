//! Wires the EventBridge entry point of the webhook function (deliveries arrive through SQS).

use aws_lambda_events::event::sqs::SqsEvent;
use dropsync_app::webhook::WebhookService;
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env(false)?;
    let credentials = Arc::new(Credentials::load(&config.credentials).await?);
    let aws = wiring::aws().await;
    let svc = Arc::new(WebhookService {
        store: wiring::store(&aws, &config),
        credentials,
        admin: Some(Arc::new(wiring::admin_client(&config)?)),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let svc = svc.clone();
        async move {
            Ok::<_, Error>(
                dropsync_shopify_webhook::handle_eventbridge_batch(&svc, event.payload).await,
            )
        }
    }))
    .await
}
