//! Wires the poller: configuration, credentials and clients once, then the event loop.

use dropsync_aliexpress_poller::{Continuation, run, trigger};
use dropsync_app::sync::{PollCursor, SyncService, deadline_within, time_left};
use dropsync_app::{Config, Credentials, init_logging, wiring};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

struct SqsContinuation {
    client: aws_sdk_sqs::Client,
    url: Option<String>,
}

impl Continuation for SqsContinuation {
    async fn continue_from(&self, cursor: &PollCursor) -> Result<(), String> {
        let url = self
            .url
            .as_deref()
            .ok_or("CONTINUATION_QUEUE_URL is not set")?;
        let body = serde_json::to_string(cursor).map_err(|e| e.to_string())?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

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
                let credentials = Credentials::load(&config.credentials).await?;
                let store = wiring::store(&aws, &config);
                let ae = Arc::new(wiring::iop_client(&config, &credentials, &store)?);
                let queue = Arc::new(wiring::tracking_queue(
                    &aws,
                    config.tracking_queue_url.as_deref().unwrap_or_default(),
                ));
                Ok(SyncService {
                    store,
                    ae,
                    queue,
                    concurrency: config.poll_concurrency,
                })
            }
        })
    };
    deferred.eager_unless_secret(&config).await?;
    let continuation = Arc::new(SqsContinuation {
        client: aws_sdk_sqs::Client::new(&aws),
        url: config.continuation_queue_url.clone(),
    });
    let reserve = config.poll_reserve;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let deferred = deferred.clone();
        let continuation = continuation.clone();
        async move {
            let svc = deferred.get().await?;
            let remaining = time_left(event.context.deadline, Duration::from_secs(60));
            let triggers = trigger(&event.payload)?;
            let reports = run(
                &svc,
                continuation.as_ref(),
                triggers,
                deadline_within(remaining, reserve),
            )
            .await?;
            Ok::<_, Error>(serde_json::to_value(reports)?)
        }
    }))
    .await
}
