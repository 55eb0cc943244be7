//! Wires the webhook function: configuration, credentials and clients once, then the HTTP loop.

use dropsync_app::webhook::WebhookService;
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_http::{Error, Request, service_fn};
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
    lambda_http::run(service_fn(move |req: Request| {
        let svc = svc.clone();
        async move { Ok::<_, Error>(dropsync_shopify_webhook::handle_http(&svc, req).await) }
    }))
    .await
}
