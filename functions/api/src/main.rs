//! Wires the merchant API: configuration, credentials and clients once, then the HTTP loop.

use dropsync_api::Api;
use dropsync_app::sync::SyncService;
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_http::{Error, Request, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env(true)?;
    let credentials = Arc::new(Credentials::load(&config.credentials).await?);
    let aws = wiring::aws().await;
    let store = wiring::store(&aws, &config);
    let sync = match wiring::iop_client(&config, &credentials, &store) {
        Ok(ae) => Some(Arc::new(SyncService {
            store: store.clone(),
            ae: Arc::new(ae),
            queue: Arc::new(wiring::tracking_queue(
                &aws,
                config.tracking_queue_url.as_deref().unwrap_or_default(),
            )),
            concurrency: config.poll_concurrency,
        })),
        Err(wiring::WiringError::NoAliexpress) => None,
        Err(e) => return Err(e.into()),
    };
    let api = Arc::new(Api {
        store,
        credentials,
        sync,
    });
    lambda_http::run(service_fn(move |req: Request| {
        let api = api.clone();
        async move { Ok::<_, Error>(api.handle(req).await) }
    }))
    .await
}
