//! Wires the poller: the configuration at cold start (a bad value fails it), the services from
//! the graph on the first invocation, then the event loop.

use dropsync_aliexpress::IopClient;
use dropsync_aliexpress_poller::{run, trigger};
use dropsync_app::queue::{SqsContinuation, SqsQueue};
use dropsync_app::sync::{SyncService, deadline_within, time_left};
use dropsync_app::{Config, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

struct Services {
    sync: Arc<SyncService<IopClient, SqsQueue>>,
    continuation: SqsContinuation,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env(true)?;
    let reserve = config.poll_reserve;
    let services = wiring::Deferred::from_graph(config, |g| {
        Ok(Services {
            sync: Arc::new(g.sync()?),
            continuation: g.continuation_queue(),
        })
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let services = services.clone();
        async move {
            let s = services.get().await?;
            let remaining = time_left(event.context.deadline, Duration::from_secs(60));
            let triggers = trigger(&event.payload)?;
            let reports = run(
                &s.sync,
                &s.continuation,
                triggers,
                deadline_within(remaining, reserve),
            )
            .await?;
            Ok::<_, Error>(serde_json::to_value(reports)?)
        }
    }))
    .await
}
