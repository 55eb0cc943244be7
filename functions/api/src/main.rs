//! Wires the merchant API: configuration and clients once, then the HTTP loop. The services are
//! built at cold start from a credentials file, or on the first invocation from the secret.

use dropsync_api::{Api, ApiError};
use dropsync_app::place::{PlaceService, Placer};
use dropsync_app::reconcile::{DEFAULT_LOOKBACK_MS, ReconcileService};
use dropsync_app::sync::SyncService;
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_http::{Error, Request, service_fn};
use std::sync::Arc;
use tracing::warn;

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
                let credentials = Arc::new(Credentials::load(&config.credentials).await?);
                let store = wiring::store(&aws, &config);
                let (sync, place) = match wiring::iop_client(&config, &credentials, &store) {
                    Ok(ae) => {
                        let ae = Arc::new(ae);
                        let place: Arc<dyn Placer> = Arc::new(PlaceService {
                            store: store.clone(),
                            ae: ae.clone(),
                            shopify: Arc::new(wiring::admin_client(&config)?),
                            credentials: credentials.clone(),
                        });
                        let sync = Arc::new(SyncService {
                            store: store.clone(),
                            ae,
                            queue: Arc::new(wiring::tracking_queue(
                                &aws,
                                config.tracking_queue_url.as_deref().unwrap_or_default(),
                            )),
                            concurrency: config.poll_concurrency,
                        });
                        (Some(sync), Some(place))
                    }
                    Err(wiring::WiringError::NoAliexpress) => (None, None),
                    Err(e) => return Err(e.into()),
                };
                let connect =
                    wiring::connect_service(&config, &credentials, &store)?.map(|mut c| {
                        // A reconnect queues the pushes that waited for it.
                        c.tracking_queue = config
                            .tracking_queue_url
                            .as_deref()
                            .map(|url| wiring::tracking_queue(&aws, url));
                        Arc::new(c)
                    });
                let reconcile = Some(Arc::new(ReconcileService {
                    store: store.clone(),
                    credentials: credentials.clone(),
                    admin: Arc::new(wiring::admin_client(&config)?),
                    lookback_ms: DEFAULT_LOOKBACK_MS,
                }));
                Ok(Api {
                    store,
                    credentials,
                    sync,
                    place,
                    connect,
                    reconcile,
                })
            }
        })
    };
    deferred.eager_unless_secret(&config).await?;
    lambda_http::run(service_fn(move |req: Request| {
        let deferred = deferred.clone();
        async move {
            Ok::<_, Error>(match deferred.get().await {
                Ok(api) => api.handle(req).await,
                Err(e) => {
                    warn!(error = %e, "services not ready");
                    ApiError::Unavailable.response()
                }
            })
        }
    }))
    .await
}
