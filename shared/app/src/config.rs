//! Typed configuration, read from the environment once at cold start. A missing or bad value
//! fails the cold start with a message that names the variable.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

/// Where the credentials document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsSource {
    /// Local runs: a JSON file.
    File(String),
    /// On AWS: a Secrets Manager secret id, read through the Parameters and Secrets extension.
    Secret(String),
}

/// Everything the functions read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub tracking_queue_url: Option<String>,
    pub continuation_queue_url: Option<String>,
    /// `PLACE_QUEUE_URL`: where the webhook function queues orders due for automatic placement
    /// (absent: nothing is placed automatically).
    pub place_queue_url: Option<String>,
    pub shopify_api_version: String,
    pub shopify_admin_url: Option<String>,
    pub aliexpress_api_url: String,
    pub credentials: CredentialsSource,
    /// AliExpress calls per second per app key (conservative by default: no limit is published).
    pub aliexpress_calls_per_second: f64,
    pub aliexpress_concurrency: usize,
    /// How many orders the poller syncs at once.
    pub poll_concurrency: usize,
    /// The poller hands the rest to a continuation when less than this is left of its time.
    pub poll_reserve: Duration,
    /// The tracking queue's `maxReceiveCount` (`TRACKING_MAX_RECEIVES`): a push that fails on this
    /// delivery goes to the dead-letter queue, so the pusher records why on the order first.
    pub tracking_max_receives: u32,
    /// `PUBLIC_URL`: where browsers, Shopify and AliExpress reach this deployment (OAuth redirect
    /// URLs and webhook subscriptions are built from it). `None` when unset: connecting stores
    /// and managing subscriptions then answer that it must be set.
    pub public_url: Option<String>,
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            why: e.to_string(),
        }),
    }
}

fn url(name: &'static str, v: String) -> Result<String, ConfigError> {
    let v = v.trim().trim_end_matches('/').to_owned();
    if v.starts_with("https://") || v.starts_with("http://") {
        Ok(v)
    } else {
        Err(ConfigError::Invalid {
            name,
            why: "must be an http(s) URL".into(),
        })
    }
}

impl Config {
    /// Reads the configuration; `needs_queue` says whether this function sends to the tracking
    /// queue (then `TRACKING_QUEUE_URL` is required).
    pub fn from_env(needs_queue: bool) -> Result<Self, ConfigError> {
        let table_name = var("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        let tracking_queue_url = var("TRACKING_QUEUE_URL");
        if needs_queue && tracking_queue_url.is_none() {
            return Err(ConfigError::Missing("TRACKING_QUEUE_URL"));
        }
        let credentials = match (var("CREDENTIALS_FILE"), var("CREDENTIALS_SECRET_ID")) {
            (Some(f), _) => CredentialsSource::File(f),
            (None, Some(s)) => CredentialsSource::Secret(s),
            (None, None) => {
                return Err(ConfigError::Missing(
                    "CREDENTIALS_FILE or CREDENTIALS_SECRET_ID",
                ));
            }
        };
        let shopify_api_version = var("SHOPIFY_API_VERSION").unwrap_or_else(|| "2026-10".into());
        let ok_version = shopify_api_version.len() == 7
            && shopify_api_version
                .chars()
                .enumerate()
                .all(|(i, c)| if i == 4 { c == '-' } else { c.is_ascii_digit() });
        if !ok_version {
            return Err(ConfigError::Invalid {
                name: "SHOPIFY_API_VERSION",
                why: "expected YYYY-MM".into(),
            });
        }
        let calls: f64 = parse("ALIEXPRESS_CALLS_PER_SECOND", 10.0)?;
        if !(calls > 0.0 && calls <= 1000.0) {
            return Err(ConfigError::Invalid {
                name: "ALIEXPRESS_CALLS_PER_SECOND",
                why: "must be in (0, 1000]".into(),
            });
        }
        Ok(Self {
            table_name,
            tracking_queue_url,
            continuation_queue_url: var("CONTINUATION_QUEUE_URL"),
            place_queue_url: var("PLACE_QUEUE_URL"),
            shopify_api_version,
            shopify_admin_url: var("SHOPIFY_ADMIN_URL")
                .map(|v| url("SHOPIFY_ADMIN_URL", v))
                .transpose()?,
            aliexpress_api_url: url(
                "ALIEXPRESS_API_URL",
                var("ALIEXPRESS_API_URL").unwrap_or_else(|| "https://api-sg.aliexpress.com".into()),
            )?,
            credentials,
            aliexpress_calls_per_second: calls,
            aliexpress_concurrency: parse("ALIEXPRESS_CONCURRENCY", 4usize)?.clamp(1, 64),
            poll_concurrency: parse("POLL_CONCURRENCY", 16usize)?.clamp(1, 256),
            poll_reserve: Duration::from_secs(parse("POLL_RESERVE_SECONDS", 30u64)?),
            tracking_max_receives: parse("TRACKING_MAX_RECEIVES", 8u32)?.max(1),
            public_url: var("PUBLIC_URL")
                .map(|v| url("PUBLIC_URL", v))
                .transpose()?,
        })
    }
}
