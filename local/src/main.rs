//! `make local`: the whole of dropsync on one machine. Every function on
//! `127.0.0.1:${PORT:-3000}` exactly as API Gateway serves it, the poller on its schedule, and
//! the queue consumers that feed the tracking pusher, the order placer (and the poller's
//! continuations) with real SQS batches — against the emulator, with the table and queues
//! created from `template.yaml`.

use dropsync_aliexpress::IopClient;
use dropsync_api::Api;
use dropsync_app::queue::SqsQueue;
use dropsync_app::webhook::WebhookService;
use dropsync_app::{Config, Credentials, init_logging, wiring};
use dropsync_local::{consumer, infra, schedule, server};
use dropsync_shopify::admin::AdminClient;
use lambda_http::{Body, Request, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::info;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Local {
    webhook: WebhookService<AdminClient>,
    place_queue: Option<dropsync_app::queue::SqsPlaceQueue>,
    api: Api<IopClient, SqsQueue>,
}

impl server::Handler for Local {
    async fn call(&self, req: Request) -> Response<Body> {
        if req.uri().path().trim_end_matches('/') == "/webhooks/shopify" {
            consumer::webhook(&self.webhook, self.place_queue.as_ref(), req).await
        } else {
            self.api.handle(req).await
        }
    }
}

/// The one line a person (and `make demo`) waits for; everything else is JSON logs.
#[allow(clippy::print_stdout)]
fn announce(addr: std::net::SocketAddr) {
    println!(
        "dropsync local stack ready on http://{addr} (GET /health; webhooks at /webhooks/shopify)"
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let infra_path = std::env::var("DROPSYNC_INFRA")
        .map_err(|_| "DROPSYNC_INFRA is not set: run `make local` (it extracts the definitions from template.yaml)")?;
    let defs = infra::load(&infra_path)?;
    let mut config = Config::from_env(false)?;
    let aws = wiring::aws().await;
    infra::create_table(
        &aws_sdk_dynamodb::Client::new(&aws),
        &defs,
        &config.table_name,
    )
    .await?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let urls = infra::create_queues(&sqs, &defs, &config.table_name).await?;
    let tracking_url = urls
        .get("TrackingQueue")
        .cloned()
        .ok_or("template has no TrackingQueue")?;
    config.tracking_queue_url = Some(tracking_url.clone());
    config.continuation_queue_url = urls.get("PollerContinuationQueue").cloned();
    config.place_queue_url = urls.get("PlaceQueue").cloned();

    // `make local` serves on 127.0.0.1:${PORT}: that is where OAuth redirects come back to.
    if config.public_url.is_none() {
        let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
        config.public_url = Some(format!("http://127.0.0.1:{}", port.trim()));
    }
    let credentials = Arc::new(Credentials::load(&config.credentials).await?);
    // The same graph the functions build, over the local table and queues.
    let graph = wiring::Graph::new(Arc::new(config), aws, credentials);
    let config = graph.config.clone();
    let api = Api::from_graph(&graph)?;
    let sync = api.sync.clone().ok_or(wiring::WiringError::NoAliexpress)?;
    let place = api.place.clone().ok_or(wiring::WiringError::NoAliexpress)?;
    let reconcile = Arc::new(graph.reconcile()?);
    let connect = api.connect.clone();
    let store = graph.store.clone();
    let local = Arc::new(Local {
        webhook: graph.webhook()?,
        place_queue: graph.place_queue(),
        api,
    });
    let pusher = Arc::new(graph.push()?);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server::serve(listener, local));
    // The local queue dead-letters after the template's maxReceiveCount, like the deployed one.
    let max_receives = defs
        .pointer("/queues/TrackingQueue/MaxReceiveCount")
        .and_then(serde_json::Value::as_u64)
        .and_then(|m| u32::try_from(m).ok());
    tokio::spawn(consumer::tracking(
        sqs.clone(),
        tracking_url.clone(),
        pusher,
        max_receives,
    ));
    if let Some(url) = config.place_queue_url.clone() {
        tokio::spawn(consumer::placement(sqs.clone(), url, place, store.clone()));
    }
    if let Some(url) = config.continuation_queue_url.clone() {
        tokio::spawn(consumer::continuations(
            sqs.clone(),
            url.clone(),
            sync.clone(),
            url,
        ));
    }
    let plan = schedule::Plan::from_env()?;
    tokio::spawn(schedule::run_schedule(
        plan.clone(),
        sync,
        sqs,
        config.continuation_queue_url.clone(),
    ));

    // The reconciler on the template's schedule, repairing subscriptions as on AWS.
    let reconcile_plan = schedule::Plan::reconcile_from_env()?;
    tokio::spawn(schedule::run_reconcile_schedule(
        reconcile_plan.clone(),
        reconcile,
        connect,
    ));

    info!(url = %format!("http://{addr}"), table = config.table_name.as_str(), queue = tracking_url.as_str(), schedule = %plan, reconcile_schedule = %reconcile_plan, "local stack ready");
    announce(addr);
    tokio::signal::ctrl_c().await?;
    info!("stopping");
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
