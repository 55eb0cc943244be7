//! Wires the poller: configuration, credentials and clients once, then the event loop.

use dropsync_aliexpress_poller::{run, trigger};
use dropsync_app::sync::{SyncService, deadline_within, time_left};
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Arc::new(Config::from_env(true)?);
    let aws = wiring::aws().await;
    let deferred = {
        let (config, aws) = (config.clone(), aws.clone());
        wiring::Deferred::new(move || {
            let (config, aws) = (config.clone(), aws.clone());
            async move {
                let credentials = Credentials::load(&config.credentials).await?;
                let store = wiring::store(&aws, &config);
                let ae = Arc::new(wiring::iop_client(&config, &credentials, &store)?);
                let queue = Arc::new(wiring::tracking_queue(
                    &aws,
                    config.tracking_queue_url.as_deref().unwrap_or_default(),
                ));
                Ok(SyncService {
                    store,
                    ae,
                    queue,
                    concurrency: config.poll_concurrency,
                })
            }
        })
    };
    deferred.eager_unless_secret(&config).await?;
    let continuation = Arc::new(wiring::continuation_queue(
        &aws,
        config.continuation_queue_url.clone(),
    ));
    let reserve = config.poll_reserve;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let deferred = deferred.clone();
        let continuation = continuation.clone();
        async move {
            let svc = deferred.get().await?;
            let remaining = time_left(event.context.deadline, Duration::from_secs(60));
            let triggers = trigger(&event.payload)?;
            let reports = run(
                &svc,
                continuation.as_ref(),
                triggers,
                deadline_within(remaining, reserve),
            )
            .await?;
            Ok::<_, Error>(serde_json::to_value(reports)?)
        }
    }))
    .await
}
