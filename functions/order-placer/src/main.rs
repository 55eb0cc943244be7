//! Wires the order placer: configuration and clients once, then the SQS loop. The services are
//! built at cold start from a credentials file, or on the first invocation from the secret.

use dropsync_app::place::{PlaceService, Placer};
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::sync::Arc;

/// What one invocation needs: the placement service and the table it re-checks orders in.
struct Services {
    placer: Arc<dyn Placer>,
    store: dropsync_store::Store,
}

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
                let ae = Arc::new(wiring::iop_client(&config, &credentials, &store)?);
                let placer: Arc<dyn Placer> = Arc::new(PlaceService {
                    store: store.clone(),
                    ae,
                    shopify: admin,
                    credentials,
                });
                Ok(Services { placer, store })
            }
        })
    };
    deferred.eager_unless_secret(&config).await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let deferred = deferred.clone();
            async move {
                let svc = deferred.get().await?;
                Ok::<_, Error>(
                    dropsync_order_placer::handle(&*svc.placer, &svc.store, event.payload).await,
                )
            }
        },
    ))
    .await
}
