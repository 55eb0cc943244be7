//! Wires the order placer: the configuration at cold start (a bad value fails it), the services
//! from the graph on the first invocation, then the SQS loop.

use dropsync_app::place::Placer;
use dropsync_app::{Config, init_logging, wiring};
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
    let services = wiring::Deferred::from_graph(Config::from_env(false)?, |g| {
        Ok(Services {
            placer: g.placer()?,
            store: g.store.clone(),
        })
    });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let services = services.clone();
            async move {
                let svc = services.get().await?;
                Ok::<_, Error>(
                    dropsync_order_placer::handle(&*svc.placer, &svc.store, event.payload).await,
                )
            }
        },
    ))
    .await
}
