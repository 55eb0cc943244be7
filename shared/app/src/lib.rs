//! dropsync's services, shared by the Lambda functions and the local stack: configuration and
//! credentials (loaded once), the tracking-queue message, and the logic of the three sync paths
//! — each generic over the narrow ports it talks through (AliExpress, Shopify Admin, the queue).

pub mod config;
pub mod connect;
pub mod credentials;
pub mod place;
pub mod push;
pub mod queue;
pub mod sync;
pub mod tokens;
pub mod webhook;
pub mod wiring;

pub use config::{Config, ConfigError, CredentialsSource};
pub use credentials::{Credentials, CredentialsError};

/// Milliseconds since the epoch, for history entries and timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// JSON logs (tracing), honouring `RUST_LOG` / `AWS_LAMBDA_LOG_LEVEL`. Logs carry shop and order
/// ids; nothing here logs secrets, tokens, signatures or customer data.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .map(|l| tracing_subscriber::EnvFilter::new(l.to_ascii_lowercase()))
        })
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The AWS SDK traces whole response bodies, and table items hold the shops' OAuth tokens:
    // never below debug for the SDK's wire crates, whatever the level asked for.
    let filter = [
        "aws_smithy_runtime=debug",
        "aws_smithy_runtime_api=debug",
        "aws_smithy_http=debug",
        "aws_smithy_http_client=debug",
    ]
    .iter()
    .filter_map(|d| d.parse().ok())
    .fold(filter, tracing_subscriber::EnvFilter::add_directive);
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}
