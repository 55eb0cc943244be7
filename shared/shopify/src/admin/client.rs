//! The HTTP side: one `reqwest::Client`, and the request loop (pace, send, classify, retry).

use super::AdminError;
use super::documents::Operation;
use super::limiter::Limiter;
use super::wire::{self, Classified};
use dropsync_domain::ShopDomain;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The pinned Admin API version.
pub const DEFAULT_API_VERSION: &str = "2026-10";
/// First backoff after a 5xx or network failure; doubles per attempt.
const BASE_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait after repeated throttled answers, unless Shopify asks for longer.
const MAX_THROTTLE_BACKOFF: Duration = Duration::from_secs(4);
/// Connecting is bounded separately: a connect failure is the one network error after which a
/// mutation is known not to have been sent, so it is worth finding out fast.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How to reach Shopify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// `SHOPIFY_ADMIN_URL`: replaces `https://{shop}` (sandbox, local stack). All shops then
    /// share the base and are told apart by their access tokens.
    pub base_override: Option<String>,
    /// `SHOPIFY_API_VERSION`, default [`DEFAULT_API_VERSION`].
    pub api_version: String,
    /// Whole-request timeout (default 10 s).
    pub timeout: Duration,
    /// Attempts per call, first included (default 6): throttled answers, and for queries 5xx and
    /// network failures, are retried up to this many times.
    pub max_attempts: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            base_override: None,
            api_version: DEFAULT_API_VERSION.to_owned(),
            timeout: Duration::from_secs(10),
            max_attempts: 6,
        }
    }
}

/// Counters since the client was built (for benchmarks and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdminStats {
    /// HTTP requests sent (attempts, retries included).
    pub requests: u64,
    /// Throttled answers (HTTP 200 `THROTTLED` and HTTP 429).
    pub throttled: u64,
    /// Attempts made after a failed one.
    pub retries: u64,
    /// Sum of the `requestedQueryCost` Shopify reported.
    pub requested_cost: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
    requested_cost: AtomicU64,
}

/// The Admin GraphQL client. Build it once (at cold start) and share it: it holds the connection
/// pool and the per-shop rate-limit picture. Tokens are passed per call and never kept.
pub struct AdminClient {
    http: reqwest::Client,
    base_override: Option<String>,
    api_version: String,
    max_attempts: u32,
    limiter: Limiter,
    counters: Counters,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("base_override", &self.base_override)
            .field("api_version", &self.api_version)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// One exchange: its classification, and whether the request may have reached Shopify.
struct Attempt {
    classified: Classified,
    /// False only when connecting failed: then even a mutation is safe to resend.
    sent: bool,
}

fn valid_version(v: &str) -> bool {
    let b = v.as_bytes();
    v == "unstable"
        || (b.len() == 7
            && b.iter().enumerate().all(|(i, c)| {
                if i == 4 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            }))
}

/// `d` plus up to 20 % and up to 50 ms, so many clients throttled together do not come back
/// together.
fn jittered(d: Duration) -> Duration {
    d + d.mul_f64(fastrand::f64() * 0.2) + Duration::from_millis(fastrand::u64(0..=50))
}

/// The wait after the `attempt`-th throttled answer (1-based): the bucket's own wait (`base`),
/// doubled for each further throttled attempt — up to [`MAX_THROTTLE_BACKOFF`], or `base` when
/// that is longer — and spread by up to half again. Processes that share a shop's bucket
/// (concurrent Lambdas, each with its own limiter) otherwise all come back as soon as the bucket
/// holds one request's cost, and throttle one another again.
pub(crate) fn throttle_backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    let d = base
        .saturating_mul(factor)
        .min(base.max(MAX_THROTTLE_BACKOFF));
    d + d.mul_f64(fastrand::f64() * 0.5) + Duration::from_millis(fastrand::u64(0..=50))
}

/// Exponential backoff for the `attempt`-th failure (1-based).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

impl AdminClient {
    /// Builds the client. Fails on a bad base URL, API version or timeout.
    pub fn new(config: AdminConfig) -> Result<Self, AdminError> {
        let base_override = match config.base_override.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => {
                let base = raw.trim_end_matches('/');
                let ok = reqwest::Url::parse(base)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
                if !ok {
                    return Err(AdminError::Permanent(format!(
                        "SHOPIFY_ADMIN_URL is not an http(s) URL: {base}"
                    )));
                }
                Some(base.to_owned())
            }
        };
        let api_version = config.api_version.trim().to_owned();
        if !valid_version(&api_version) {
            return Err(AdminError::Permanent(format!(
                "SHOPIFY_API_VERSION must look like 2026-10, not {api_version:?}"
            )));
        }
        if config.timeout.is_zero() {
            return Err(AdminError::Permanent(
                "the Shopify request timeout must be above zero".to_owned(),
            ));
        }
        let http = dropsync_http::client_builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            // Never follow redirects: the access token header would travel to wherever the
            // redirect points (reqwest only strips standard auth headers).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dropsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AdminError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_override,
            api_version,
            max_attempts: config.max_attempts.max(1),
            limiter: Limiter::default(),
            counters: Counters::default(),
        })
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> AdminStats {
        AdminStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            throttled: self.counters.throttled.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            requested_cost: self.counters.requested_cost.load(Ordering::Relaxed),
        }
    }

    /// `{base}/admin/api/{version}/graphql.json`, base `https://{shop}` unless overridden.
    pub(crate) fn base_override(&self) -> Option<String> {
        self.base_override.clone()
    }

    pub(crate) fn endpoint(&self, shop: &ShopDomain) -> String {
        match &self.base_override {
            Some(base) => format!("{base}/admin/api/{}/graphql.json", self.api_version),
            None => format!(
                "https://{}/admin/api/{}/graphql.json",
                shop.as_str(),
                self.api_version
            ),
        }
    }

    /// Sends `op` and returns its `data`, pacing by the shop's bucket and retrying what may be
    /// retried: throttled answers always (nothing ran), 5xx/network failures only for queries
    /// or when the request never left (a mutation's outcome is otherwise unknown).
    pub(crate) async fn run(
        &self,
        shop: &ShopDomain,
        token: &str,
        op: &Operation,
        variables: Value,
        order_id: Option<u64>,
    ) -> Result<Value, AdminError> {
        let mut token_header =
            HeaderValue::from_str(token).map_err(|_| AdminError::Unauthorized)?;
        // Keeps the value out of reqwest's and hyper's debug output.
        token_header.set_sensitive(true);
        let body = serde_json::to_vec(&serde_json::json!({
            "query": op.document,
            "variables": variables,
            "operationName": op.name,
        }))
        .map_err(|e| AdminError::Permanent(format!("cannot encode {}: {e}", op.name)))?;
        let url = self.endpoint(shop);
        let shop_name = shop.as_str();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut permit = self.limiter.acquire(shop_name, op).await;
            let Attempt { classified, sent } = self.send_once(&url, &token_header, &body).await;
            permit.answered();
            if let Some(cost) = classified.cost {
                // Feed the limiter before releasing the permit, so requests waiting for this
                // (probe) answer see the reading.
                if let Some(status) = cost.throttle_status {
                    self.limiter
                        .observe(shop_name, &status, tokio::time::Instant::now());
                }
                if let Some(actual) = cost.actual_query_cost {
                    self.limiter.record_charge(op, actual);
                }
                if let Some(requested) = cost.requested_query_cost {
                    self.limiter.record_cost(op, requested);
                    if requested.is_finite() && requested > 0.0 {
                        self.counters
                            .requested_cost
                            .fetch_add(requested.round() as u64, Ordering::Relaxed);
                    }
                }
                tracing::debug!(
                    shop = shop_name,
                    order_id,
                    operation = op.name,
                    attempt,
                    requested_cost = cost.requested_query_cost,
                    actual_cost = cost.actual_query_cost,
                    available = cost.throttle_status.map(|s| s.currently_available),
                    "shopify admin answer"
                );
            }
            drop(permit);
            let error = match classified.outcome {
                Ok(data) => return Ok(data),
                Err(e) => e,
            };
            if matches!(error, AdminError::Throttled { .. }) {
                self.counters.throttled.fetch_add(1, Ordering::Relaxed);
            }
            let may_retry = match &error {
                AdminError::Throttled { .. } => true,
                AdminError::Retryable(_) => !op.mutation || !sent,
                AdminError::Unauthorized | AdminError::Permanent(_) => false,
            };
            if !may_retry || attempt >= self.max_attempts {
                tracing::warn!(
                    shop = shop_name,
                    order_id,
                    operation = op.name,
                    attempt,
                    error = %error,
                    outcome_unknown = op.mutation && sent && matches!(error, AdminError::Retryable(_)),
                    "shopify admin call failed"
                );
                return Err(error);
            }
            let wait = match error.retry_after() {
                Some(base) => throttle_backoff(base, attempt),
                None => jittered(backoff(attempt)),
            };
            tracing::info!(
                shop = shop_name,
                order_id,
                operation = op.name,
                attempt,
                error = %error,
                wait_ms = wait.as_millis() as u64,
                "retrying shopify admin call"
            );
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(&self, url: &str, token: &HeaderValue, body: &[u8]) -> Attempt {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .http
            .post(url)
            .header("X-Shopify-Access-Token", token.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => return network_failure(&e, !e.is_connect()),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match resp.bytes().await {
            Ok(bytes) => Attempt {
                classified: wire::classify(status, retry_after.as_deref(), &bytes),
                sent: true,
            },
            Err(e) => network_failure(&e, true),
        }
    }
}

fn network_failure(e: &reqwest::Error, sent: bool) -> Attempt {
    let what = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "network error"
    };
    // The URL holds only the shop domain; the token is a header and never part of the text.
    Attempt {
        classified: Classified {
            outcome: Err(AdminError::Retryable(format!("{what}: {e}"))),
            cost: None,
        },
        sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> ShopDomain {
        ShopDomain::parse("example.myshopify.com").unwrap()
    }

    #[test]
    fn the_endpoint_is_the_shop_unless_overridden() {
        let c = AdminClient::new(AdminConfig::default()).unwrap();
        assert_eq!(
            c.endpoint(&shop()),
            "https://example.myshopify.com/admin/api/2026-10/graphql.json"
        );
        let c = AdminClient::new(AdminConfig {
            base_override: Some("http://127.0.0.1:9999/".into()),
            api_version: "2027-01".into(),
            ..AdminConfig::default()
        })
        .unwrap();
        assert_eq!(
            c.endpoint(&shop()),
            "http://127.0.0.1:9999/admin/api/2027-01/graphql.json"
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        for base in ["127.0.0.1:9999", "ftp://x", "not a url"] {
            assert!(
                AdminClient::new(AdminConfig {
                    base_override: Some(base.into()),
                    ..AdminConfig::default()
                })
                .is_err(),
                "{base}"
            );
        }
        for version in ["2026-1", "latest", "", "2026/10"] {
            assert!(
                AdminClient::new(AdminConfig {
                    api_version: version.into(),
                    ..AdminConfig::default()
                })
                .is_err(),
                "{version}"
            );
        }
        assert!(
            AdminClient::new(AdminConfig {
                timeout: Duration::ZERO,
                ..AdminConfig::default()
            })
            .is_err()
        );
        // An empty override means none.
        let c = AdminClient::new(AdminConfig {
            base_override: Some(" ".into()),
            ..AdminConfig::default()
        })
        .unwrap();
        assert!(
            c.endpoint(&shop())
                .starts_with("https://example.myshopify.com/")
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(4), Duration::from_millis(1600));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn throttled_retries_back_off_from_the_buckets_wait_spread_and_capped() {
        let base = Duration::from_millis(130);
        for _ in 0..100 {
            let first = throttle_backoff(base, 1);
            assert!(first >= base && first <= base.mul_f64(1.5) + Duration::from_millis(50));
            let third = throttle_backoff(base, 3);
            assert!(
                third >= base * 4 && third <= (base * 4).mul_f64(1.5) + Duration::from_millis(50)
            );
            let late = throttle_backoff(base, 30);
            assert!(late >= MAX_THROTTLE_BACKOFF);
            assert!(late <= MAX_THROTTLE_BACKOFF.mul_f64(1.5) + Duration::from_millis(50));
            // Shopify's own longer wait is never shortened.
            let long = Duration::from_secs(10);
            assert!(throttle_backoff(long, 4) >= long);
        }
    }

    #[test]
    fn jitter_only_adds_a_little() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(1));
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_millis(1250));
        }
    }

    #[test]
    fn debug_output_shows_no_internals() {
        let c = AdminClient::new(AdminConfig::default()).unwrap();
        let text = format!("{c:?}");
        assert!(text.contains("2026-10"));
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_a_header_is_unauthorized_before_any_request() {
        let c = AdminClient::new(AdminConfig::default()).unwrap();
        let r = c
            .run(
                &shop(),
                "bad\ntoken",
                &super::super::documents::OP_ORDER_FULFILLMENT_STATE,
                Value::Null,
                Some(1),
            )
            .await;
        assert_eq!(r, Err(AdminError::Unauthorized));
        assert_eq!(c.stats().requests, 0);
    }
}
