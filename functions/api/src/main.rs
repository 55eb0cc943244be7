//! Wires the merchant API: the configuration at cold start (a bad value fails it), the services
//! from the graph on the first invocation, then the HTTP loop.

use dropsync_api::{Api, ApiError};
use dropsync_app::{Config, init_logging, wiring};
use lambda_http::{Error, Request, service_fn};
use tracing::warn;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    // The API syncs on demand, so it needs the tracking queue like the poller.
    let services = wiring::Deferred::from_graph(Config::from_env(true)?, Api::from_graph);
    lambda_http::run(service_fn(move |req: Request| {
        let services = services.clone();
        async move {
            Ok::<_, Error>(match services.get().await {
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
