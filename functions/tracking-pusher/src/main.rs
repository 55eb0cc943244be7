//! Wires the tracking pusher: configuration and clients once, then the SQS loop. The services
//! are built at cold start from a credentials file, or on the first invocation from the secret.

use dropsync_app::push::{BatchLimits, PushService};
use dropsync_app::sync::{deadline_within, time_left};
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;
use std::time::Duration;

/// Time kept back from the Lambda deadline: recording a push that gave up and answering the
/// batch.
const DEADLINE_RESERVE: Duration = Duration::from_secs(3);

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
                Ok(PushService {
                    store: wiring::store(&aws, &config).caching_shops(wiring::SHOP_CACHE_TTL),
                    admin,
                    credentials,
                })
            }
        })
    };
    deferred.eager_unless_secret(&config).await?;
    let max_receives = Some(config.tracking_max_receives);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let deferred = deferred.clone();
            async move {
                let svc = deferred.get().await?;
                let remaining = time_left(event.context.deadline, Duration::from_secs(30));
                let limits = BatchLimits {
                    max_receives,
                    deadline: Some(deadline_within(remaining, DEADLINE_RESERVE)),
                };
                Ok::<_, Error>(dropsync_tracking_pusher::handle(svc, event.payload, limits).await)
            }
        },
    ))
    .await
}
