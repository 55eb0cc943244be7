//! dropsync's services, shared by the Lambda functions and the local stack: configuration and
//! credentials (loaded once), the tracking-queue message, and the logic of the three sync paths
//! — each generic over the narrow ports it talks through (AliExpress, Shopify Admin, the queue).

pub mod ae_pace;
pub mod auto_place;
pub mod config;
pub mod connect;
pub mod credentials;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod place;
pub mod ports;
pub mod push;
pub mod queue;
pub mod reconcile;
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

/// The crates whose events are logged at every level `RUST_LOG` allows; all others (hyper,
/// rustls, h2, tower, reqwest, the AWS SDK, the Lambda runtime…) are capped at INFO, because at
/// DEBUG and TRACE they print request headers and bodies: bearer tokens, AliExpress tokens and
/// customer data. Matched on the target's crate, the part before the first `::`.
const OWN_TARGETS: &[&str] = &[
    "dropsync",
    "api",
    "shopify_webhook",
    "eventbridge",
    "aliexpress_poller",
    "tracking_pusher",
    "shopify_reconciler",
];

/// Whether an event or span of `target` at `level` may be logged: everything of dropsync's own
/// crates, and at most INFO of any other crate.
pub fn log_allowed(target: &str, level: &tracing::Level) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    let own = OWN_TARGETS
        .iter()
        .any(|own| krate == *own || krate.starts_with("dropsync"));
    own || *level <= tracing::Level::INFO
}

/// JSON logs (tracing), honouring `RUST_LOG` / `AWS_LAMBDA_LOG_LEVEL` for dropsync's own crates;
/// every other crate is capped at INFO whatever the level ([`log_allowed`]). Logs carry shop and
/// order ids; nothing here logs secrets, tokens, signatures or customer data.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .map(|l| tracing_subscriber::EnvFilter::new(l.to_ascii_lowercase()))
        })
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let cap =
        tracing_subscriber::filter::filter_fn(|meta| log_allowed(meta.target(), meta.level()));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .finish()
        .with(cap)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn third_party_crates_are_capped_at_info_and_dropsyncs_own_are_not() {
        for target in [
            "hyper::proto::h1::io",
            "hyper_util::client",
            "rustls::client::hs",
            "h2::codec",
            "tower::buffer",
            "reqwest::connect",
            "aws_smithy_runtime::client::http",
            "aws_sigv4::http_request",
            "lambda_runtime",
        ] {
            assert!(!log_allowed(target, &Level::TRACE), "{target}");
            assert!(!log_allowed(target, &Level::DEBUG), "{target}");
            assert!(log_allowed(target, &Level::INFO), "{target}");
            assert!(log_allowed(target, &Level::WARN), "{target}");
        }
        for target in [
            "dropsync_app::webhook",
            "dropsync_shopify::admin::client",
            "shopify_webhook",
            "api",
        ] {
            assert!(log_allowed(target, &Level::TRACE), "{target}");
        }
        assert!(!log_allowed("apis_of_others", &Level::DEBUG));
    }
}
