//! Wires the EventBridge entry point of the webhook function (deliveries arrive through SQS):
//! the configuration at cold start, the services from the graph on the first invocation.

use aws_lambda_events::event::sqs::SqsEvent;
use dropsync_app::{Config, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let services = wiring::Deferred::from_graph(Config::from_env(false)?, |g| g.webhook());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let services = services.clone();
        async move {
            // Without credentials nothing can be checked: fail the whole batch so it comes back.
            let svc = services.get().await?;
            Ok::<_, Error>(
                dropsync_shopify_webhook::handle_eventbridge_batch(&svc, event.payload).await,
            )
        }
    }))
    .await
}
