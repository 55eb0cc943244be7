//! Wires the tracking pusher: the configuration at cold start (a bad value fails it), the
//! services from the graph on the first invocation, then the SQS loop.

use dropsync_app::push::BatchLimits;
use dropsync_app::sync::{deadline_within, time_left};
use dropsync_app::{Config, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::time::Duration;

/// Time kept back from the Lambda deadline: recording a push that gave up and answering the
/// batch.
const DEADLINE_RESERVE: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let config = Config::from_env(false)?;
    let max_receives = Some(config.tracking_max_receives);
    let services = wiring::Deferred::from_graph(config, |g| g.push());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let services = services.clone();
            async move {
                let svc = services.get().await?;
                let remaining = time_left(event.context.deadline, Duration::from_secs(30));
                let limits = BatchLimits {
                    max_receives,
                    deadline: Some(deadline_within(remaining, DEADLINE_RESERVE)),
                };
                Ok::<_, Error>(dropsync_tracking_pusher::handle(svc, event.payload, limits).await)
            }
        },
    ))
    .await
}
