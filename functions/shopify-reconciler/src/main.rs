//! Wires the reconciler: configuration, credentials and clients once, then the event loop.

use dropsync_app::reconcile::{DEFAULT_LOOKBACK_MS, ReconcileService};
use dropsync_app::sync::{deadline_within, time_left};
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

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
                let store = wiring::store(&aws, &config);
                // Webhook subscriptions are repaired after each shop when there is a PUBLIC_URL.
                let repair = wiring::connect_service(&config, &credentials, &store)?;
                Ok((
                    ReconcileService {
                        store,
                        credentials,
                        admin,
                        lookback_ms: DEFAULT_LOOKBACK_MS,
                    },
                    repair,
                ))
            }
        })
    };
    deferred.eager_unless_secret(&config).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let deferred = deferred.clone();
        async move {
            let services = deferred.get().await?;
            let (svc, repair) = services.as_ref();
            let remaining = time_left(event.context.deadline, Duration::from_secs(300));
            let report = dropsync_shopify_reconciler::run(
                svc,
                repair,
                deadline_within(remaining, Duration::from_secs(20)),
            )
            .await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
