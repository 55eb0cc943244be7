//! Wires the EventBridge entry point of the webhook function (deliveries arrive through SQS).

use aws_lambda_events::event::sqs::SqsEvent;
use dropsync_app::webhook::WebhookService;
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deferred = deferred.clone();
        async move {
            // Without credentials nothing can be checked: fail the whole batch so it comes back.
            let svc = deferred.get().await?;
            Ok::<_, Error>(
                dropsync_shopify_webhook::handle_eventbridge_batch(&svc, event.payload).await,
            )
        }
    }))
    .await
}
