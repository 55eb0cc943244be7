//! Wires the reconciler: the configuration at cold start (a bad value fails it), the services
//! from the graph on the first invocation, then the event loop.

use dropsync_app::connect::ConnectService;
use dropsync_app::reconcile::ReconcileService;
use dropsync_app::sync::{deadline_within, time_left};
use dropsync_app::{Config, init_logging, wiring};
use dropsync_shopify::admin::AdminClient;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::time::Duration;

struct Services {
    reconcile: ReconcileService<AdminClient>,
    /// Webhook subscriptions are repaired after each shop when there is a `PUBLIC_URL`.
    repair: Option<ConnectService>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let services = wiring::Deferred::from_graph(Config::from_env(false)?, |g| {
        Ok(Services {
            reconcile: g.reconcile()?,
            repair: g.connect()?,
        })
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let services = services.clone();
        async move {
            let s = services.get().await?;
            let remaining = time_left(event.context.deadline, Duration::from_secs(300));
            let report = dropsync_shopify_reconciler::run(
                &s.reconcile,
                &s.repair,
                deadline_within(remaining, Duration::from_secs(20)),
            )
            .await?;
            Ok::<_, Error>(serde_json::to_value(report)?)
        }
    }))
    .await
}
