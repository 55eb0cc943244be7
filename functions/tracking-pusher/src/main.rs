//! Wires the tracking pusher: configuration, credentials and clients once, then the SQS loop.

use dropsync_app::push::PushService;
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env(false)?;
    let credentials = Arc::new(Credentials::load(&config.credentials).await?);
    let aws = wiring::aws().await;
    let svc = Arc::new(PushService {
        store: wiring::store(&aws, &config),
        admin: Arc::new(wiring::admin_client(&config)?),
        credentials,
    });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let svc = svc.clone();
            async move {
                Ok::<_, Error>(dropsync_tracking_pusher::handle_batch(svc, event.payload).await)
            }
        },
    ))
    .await
}
