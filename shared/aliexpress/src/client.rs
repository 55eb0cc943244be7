//! [`IopClient`]: the real AliExpress client over the IOP gateway.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::error::DEFAULT_BAN;
use crate::limiter::Limiter;
use crate::place::{self, CreateOutcome, FreightOption, PlaceOrderRequest, ProductAnswer};
use crate::sign::sign;
use crate::tokens::{TokenStore, Tokens};
use crate::wire::{self, TrackingDetail};
use crate::{
    AeError, AeOrder, AeTrackingLine, AliExpressApi, AliExpressPlacing, METHOD_ORDER_GET,
    METHOD_TRACKING_GET,
};

/// The `/rest` path of the token refresh; also the prefix of its signature.
const REFRESH_PATH: &str = "/auth/token/refresh";
/// Refresh the access token when it expires within this long (spec §9: 30 minutes before).
const REFRESH_AHEAD_MS: i64 = 30 * 60 * 1000;
/// After a failed early refresh (the token still works), wait this long before trying again,
/// so a broken refresh does not cost an extra call on every request.
const EARLY_REFRESH_BACKOFF_MS: i64 = 60 * 1000;
/// A ban longer than this is not waited out inside an invocation: give the order back to the
/// next run instead (older AliExpress docs describe bans until midnight Beijing time).
const MAX_BAN_WAIT: Duration = Duration::from_secs(30);
/// First backoff step for transient errors; doubles per attempt, capped at [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// How often saving refreshed tokens is tried before giving up (the tokens are kept in memory).
const SAVE_ATTEMPTS: u32 = 3;

/// Configuration of an [`IopClient`]. `Debug` never prints the secret or the tokens.
#[derive(Clone)]
pub struct IopConfig {
    /// Gateway base, without a trailing path: [`IopConfig::DEFAULT_BASE_URL`] in production,
    /// the sandbox in tests.
    pub base_url: String,
    /// The app's key (numeric string); sent with every call and not secret.
    pub app_key: String,
    /// The app's secret: the signing key. Never sent, never logged.
    pub app_secret: String,
    /// The tokens from the credentials; tokens in the [`TokenStore`] win when newer.
    pub initial_tokens: Tokens,
    /// The app key's call budget. Calls start evenly spaced, slightly below this rate.
    pub calls_per_second: f64,
    /// Calls in flight at once.
    pub max_concurrency: usize,
    /// Attempts per call for rate-limited and transient failures (1 = no retry).
    pub max_attempts: u32,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    /// The app key's call pace shared by every process (the table's schedule), taken
    /// [`IopConfig::SHARED_PACE_BATCH`] starts at a time; `None`: this process's pace only.
    pub shared_pace: Option<Arc<dyn crate::pace::PaceStore>>,
}

impl IopConfig {
    /// The production gateway.
    pub const DEFAULT_BASE_URL: &'static str = "https://api-sg.aliexpress.com";

    /// Call starts reserved from the shared pace per write: five calls cost one conditional
    /// write, and a process going idle leaves at most four starts unused.
    pub const SHARED_PACE_BATCH: u32 = 5;

    /// A configuration with the defaults: production gateway, 10 calls/s, 4 in flight,
    /// 4 attempts, 10 s timeout.
    pub fn new(
        app_key: impl Into<String>,
        app_secret: impl Into<String>,
        initial_tokens: Tokens,
    ) -> Self {
        Self {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            app_key: app_key.into(),
            app_secret: app_secret.into(),
            initial_tokens,
            calls_per_second: 10.0,
            max_concurrency: 4,
            max_attempts: 4,
            timeout: Duration::from_secs(10),
            shared_pace: None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.app_key.trim().is_empty() || self.app_secret.is_empty() {
            return Err("app_key and app_secret are required".into());
        }
        if !(self.calls_per_second.is_finite() && self.calls_per_second > 0.0) {
            return Err("calls_per_second must be a positive number".into());
        }
        if self.max_concurrency == 0 || self.max_attempts == 0 || self.timeout.is_zero() {
            return Err("max_concurrency, max_attempts and timeout must be positive".into());
        }
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| format!("base_url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("base_url must be http(s)".into());
        }
        Ok(())
    }
}

/// The defaults of [`IopConfig::new`] with an empty app key, secret and tokens: for
/// struct-update syntax (`IopConfig { app_key, …, ..IopConfig::default() }`); a client refuses
/// a configuration whose key or secret is still empty.
impl Default for IopConfig {
    fn default() -> Self {
        Self::new(String::new(), String::new(), Tokens::default())
    }
}

impl fmt::Debug for IopConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IopConfig")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("app_secret", &"<redacted>")
            .field("initial_tokens", &self.initial_tokens)
            .field("calls_per_second", &self.calls_per_second)
            .field("max_concurrency", &self.max_concurrency)
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .field("shared_pace", &self.shared_pace.is_some())
            .finish()
    }
}

/// Counters since the client was built, for benchmarks and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IopStats {
    /// HTTP requests sent (every attempt, token refreshes included).
    pub calls: u64,
    /// Rate-limited attempts: `ApiCallLimit` answers, and calls refused without being sent
    /// during a ban too long to wait out.
    pub rate_limited: u64,
    /// Attempts repeated after a ban, a transient error or a refused token.
    pub retries: u64,
    /// Successful token refreshes.
    pub refreshes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    refreshes: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The tokens in use, plus what is known about the store.
struct Current {
    tokens: Tokens,
    /// Whether the store has been consulted (done lazily: construction is synchronous).
    loaded: bool,
    /// The refresh token the store held when last read (`None`: nothing stored), the
    /// compare-and-set value for [`TokenStore::save`].
    stored_refresh: Option<String>,
    /// No early refresh before this (ms epoch): set after an early refresh failed.
    early_refresh_not_before_ms: i64,
    /// A refresh token AliExpress refused: not sent again (every caller would otherwise spend
    /// a call learning the same thing).
    dead_refresh: Option<String>,
}

/// The AliExpress client over the IOP gateway; implements [`AliExpressApi`].
///
/// Build one per invocation and share it (`Arc<IopClient>`) with all concurrent work: it holds
/// the one rate limiter and the one token state of the app key, so every caller honours the same
/// pace and bans, and a token is refreshed once, not once per caller.
///
/// Every attempt is signed afresh (new `timestamp`, new `sign`). `ApiCallLimit` pauses every
/// caller for the ban plus 50–250 ms of jitter, then retries; transient errors back off
/// exponentially; both give up after `max_attempts`. Permanent errors and refused tokens are not
/// retried (a refused access token is refreshed once, and the call repeated once).
pub struct IopClient {
    http: reqwest::Client,
    base_url: String,
    app_key: String,
    app_secret: String,
    max_attempts: u32,
    limiter: Limiter,
    store: Arc<dyn TokenStore>,
    current: std::sync::Mutex<Current>,
    /// Single-flight for loading and refreshing tokens.
    token_gate: tokio::sync::Mutex<()>,
    /// Set while a refresh runs: callers that get their slot meanwhile give it back
    /// and wait for the new token instead of spending a call on one about to be refused (a
    /// refresh kills the old access token).
    refresh_pending: AtomicBool,
    counters: Counters,
}

impl fmt::Debug for IopClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IopClient")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("max_attempts", &self.max_attempts)
            .field("limiter", &self.limiter)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn expires_soon(tokens: &Tokens, now: i64) -> bool {
    tokens
        .expire_time_ms
        .is_some_and(|t| t.saturating_sub(now) <= REFRESH_AHEAD_MS)
}

/// A transport failure as an error: retryable, and described **without the URL** (its query
/// carries the session token and the signature).
fn transport_error(e: reqwest::Error) -> AeError {
    let builder = e.is_builder();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if builder {
        AeError::Permanent(format!("cannot build the request: {text}"))
    } else {
        AeError::Retryable(format!("transport: {text}"))
    }
}

/// Marks a refresh as running for as long as it lives, the gate being held: cleared on drop, so
/// a cancelled refresh cannot leave callers waiting for one that never comes.
struct PendingRefresh<'a>(&'a AtomicBool);

impl<'a> PendingRefresh<'a> {
    fn start(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        Self(flag)
    }
}

impl Drop for PendingRefresh<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The system parameters of a `/sync` call (besides key, time and signature).
fn sync_system(method: &str, session: &str) -> Vec<(String, String)> {
    pairs(&[
        ("method", method),
        ("session", session),
        ("simplify", "true"),
        ("format", "json"),
    ])
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl IopClient {
    /// Builds the client (one HTTP client with `config.timeout`, one limiter). No network call
    /// is made here; the token store is read on the first call.
    pub fn new(config: IopConfig, tokens: Arc<dyn TokenStore>) -> Result<Self, AeError> {
        config
            .validate()
            .map_err(|e| AeError::Permanent(format!("invalid AliExpress configuration: {e}")))?;
        // The gateway never redirects: a 3xx would carry the signed request (app key, session
        // token, signature) to whatever host the answer names. It is an error instead.
        let http = dropsync_http::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| AeError::Permanent(format!("cannot build the HTTP client: {e}")))?;
        let limiter = {
            let limiter = Limiter::new(config.calls_per_second, config.max_concurrency);
            match config.shared_pace {
                Some(store) => {
                    let pacer = crate::pace::SharedPacer::new(
                        store,
                        config.app_key.clone(),
                        IopConfig::SHARED_PACE_BATCH,
                        limiter.interval(),
                        Arc::new(now_ms),
                    );
                    limiter.with_shared(pacer)
                }
                None => limiter,
            }
        };
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            app_key: config.app_key,
            app_secret: config.app_secret,
            max_attempts: config.max_attempts,
            limiter,
            store: tokens,
            current: std::sync::Mutex::new(Current {
                tokens: config.initial_tokens,
                loaded: false,
                stored_refresh: None,
                early_refresh_not_before_ms: 0,
                dead_refresh: None,
            }),
            token_gate: tokio::sync::Mutex::new(()),
            refresh_pending: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> IopStats {
        let c = &self.counters;
        IopStats {
            calls: c.calls.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            refreshes: c.refreshes.load(Ordering::Relaxed),
        }
    }

    /// `aliexpress.ds.order.tracking.get` with everything it says about each package (nodes
    /// oldest first, ETA); `Ok(None)` when not shipped yet (1001).
    pub async fn tracking_details(
        &self,
        ae_order_id: u64,
    ) -> Result<Option<Vec<TrackingDetail>>, AeError> {
        let id = ae_order_id.to_string();
        let business = pairs(&[("ae_order_id", &id), ("language", "en_US")]);
        let result = self
            .sync_call(METHOD_TRACKING_GET, &business, ae_order_id)
            .await?;
        wire::tracking_from_result(result).inspect_err(|e| {
            tracing::warn!(ae_order_id, method = METHOD_TRACKING_GET, error = %e, "unusable AliExpress answer");
        })
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        // Updates replace whole fields, so a poisoned lock still holds consistent data.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn access_token(&self) -> String {
        self.current().tokens.access_token.clone()
    }

    // --------------------------------------------------------------------------------------------
    // Calls
    // --------------------------------------------------------------------------------------------

    /// One `/sync` business call with every retry the policy allows; the `result` on success.
    async fn sync_call(
        &self,
        method: &'static str,
        business: &[(String, String)],
        ae_order_id: u64,
    ) -> Result<Value, AeError> {
        self.sync_call_with(method, business, ae_order_id, |body| {
            wire::sync_result(body, method)
        })
        .await
    }

    /// Like [`IopClient::sync_call`], with the answer read by `parse` (whose errors are
    /// classified and retried like the gateway's). Not for `order.create`: see
    /// [`IopClient::create_once`].
    async fn sync_call_with<T, P>(
        &self,
        method: &'static str,
        business: &[(String, String)],
        ae_order_id: u64,
        parse: P,
    ) -> Result<T, AeError>
    where
        P: Fn(&[u8]) -> Result<T, AeError> + Send + Sync,
        T: Send,
    {
        let mut attempt: u32 = 0;
        let mut token_retried = false;
        loop {
            attempt += 1;
            self.ensure_tokens().await?;
            let (outcome, used_token) = self.send_sync_once(method, business, &parse).await;
            let err = match outcome {
                Ok(result) => return Ok(result),
                Err(err) => err,
            };
            if err == AeError::InvalidToken {
                if token_retried {
                    tracing::error!(
                        ae_order_id,
                        method,
                        "AliExpress refuses the refreshed access token: re-authorization needed"
                    );
                    return Err(err);
                }
                token_retried = true;
                tracing::info!(
                    ae_order_id,
                    method,
                    "AliExpress refused the access token; refreshing"
                );
                self.refresh_after_rejection(&used_token).await?;
                Counters::bump(&self.counters.retries);
                // The token retry is on top of the attempts for bans and transient errors.
                attempt -= 1;
                continue;
            }
            match self.plan_retry(&err, attempt) {
                Some(wait) => {
                    tracing::warn!(ae_order_id, method, attempt, error = %err, "AliExpress call failed; retrying");
                    Counters::bump(&self.counters.retries);
                    tokio::time::sleep(wait).await;
                }
                None => {
                    tracing::warn!(ae_order_id, method, attempt, error = %err, "AliExpress call failed");
                    return Err(err);
                }
            }
        }
    }

    /// What to do after a failed attempt: `Some(wait)` to retry after `wait` (for a ban, the
    /// shared limiter is paused here and the wait happens in it), `None` to give up.
    fn plan_retry(&self, err: &AeError, attempt: u32) -> Option<Duration> {
        match err {
            AeError::RateLimited { ban } => {
                Counters::bump(&self.counters.rate_limited);
                if *ban > MAX_BAN_WAIT {
                    // Too long to wait out here: every caller fails fast until it is over.
                    self.limiter.refuse_for(*ban);
                    return None;
                }
                // Every caller must stop, not just this one (even when this one gives up): the
                // gateway refuses, and does not count, every call during the ban, so calls sent
                // into it only burn attempts.
                let jitter = Duration::from_millis(fastrand::u64(50..=250));
                self.limiter.pause(*ban + jitter);
                (attempt < self.max_attempts).then_some(Duration::ZERO)
            }
            AeError::Retryable(_) => {
                if attempt >= self.max_attempts {
                    return None;
                }
                let exp = BACKOFF_BASE
                    .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
                    .min(BACKOFF_CAP);
                // "Equal jitter": between half and all of the step, so callers that failed
                // together do not come back together.
                Some(exp.mul_f64(0.5 + fastrand::f64() * 0.5))
            }
            AeError::InvalidToken | AeError::Permanent(_) => None,
        }
    }

    /// One signed `/sync` attempt through the limiter. Also returns the access token it used,
    /// so a refusal can tell whether someone refreshed in the meantime.
    async fn send_sync_once<T>(
        &self,
        method: &str,
        business: &[(String, String)],
        parse: &(impl Fn(&[u8]) -> Result<T, AeError> + Sync),
    ) -> (Result<T, AeError>, String) {
        let slot = match self.sync_slot().await {
            Ok(slot) => slot,
            Err(e) => return (Err(e), String::new()),
        };
        // Read after waiting for the slot: a refresh may have happened meanwhile.
        let session = self.access_token();
        let outcome = self
            .post_signed(
                "/sync",
                None,
                sync_system(method, &session),
                business.to_vec(),
            )
            .await
            .and_then(|body| parse(&body));
        drop(slot);
        (outcome, session)
    }

    /// A limiter slot for a `/sync` call, taken when no token refresh is pending.
    async fn sync_slot(&self) -> Result<crate::limiter::Slot<'_>, AeError> {
        loop {
            if self.refresh_pending.load(Ordering::Acquire) {
                // The refresher holds the gate until it is done.
                drop(self.token_gate.lock().await);
            }
            let slot = self.limiter.acquire().await?;
            if !self.refresh_pending.load(Ordering::Acquire) {
                return Ok(slot);
            }
            // A refresh started while we waited: give the slot (and the concurrency permit the
            // refresh may need) back rather than send a token about to die.
            drop(slot);
        }
    }

    /// One `order.create`, never repeated once it may have reached AliExpress: only a gateway
    /// refusal (a rate limit, a refused token) is retried, because then nothing was processed.
    /// A timeout, a 5xx or an unreadable answer is [`CreateOutcome::Unknown`].
    async fn create_once(&self, req: &PlaceOrderRequest) -> Result<CreateOutcome, AeError> {
        let business = place::order_create_params(req);
        let mut attempt: u32 = 0;
        let mut token_retried = false;
        loop {
            attempt += 1;
            self.ensure_tokens().await?;
            let slot = self.sync_slot().await?;
            let session = self.access_token();
            let sent = self
                .post_signed(
                    "/sync",
                    None,
                    sync_system(place::METHOD_ORDER_CREATE, &session),
                    business.clone(),
                )
                .await;
            drop(slot);
            let err = match sent {
                Ok(body) => match place::parse_order_create(&body) {
                    Ok(outcome) => return Ok(outcome),
                    Err(e) => e,
                },
                // Sent, and no readable answer: it may have been created.
                Err(AeError::Retryable(reason)) => {
                    tracing::warn!(out_order_id = %req.out_order_id, reason = %reason, "order.create outcome unknown");
                    return Ok(CreateOutcome::Unknown { reason });
                }
                Err(e) => e,
            };
            if err == AeError::InvalidToken && !token_retried {
                token_retried = true;
                self.refresh_after_rejection(&session).await?;
                attempt -= 1;
                continue;
            }
            match (&err, self.plan_retry(&err, attempt)) {
                (AeError::RateLimited { .. }, Some(wait)) => {
                    Counters::bump(&self.counters.retries);
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(err),
            }
        }
    }

    /// Signs and sends one request: `system` params (plus `app_key`, `timestamp`, `sign_method`,
    /// `sign`) in the query, `business` params as an urlencoded body. Empty values are not sent
    /// (nor signed). Returns the body of a 2xx answer.
    async fn post_signed(
        &self,
        path: &str,
        api_path: Option<&str>,
        system: Vec<(String, String)>,
        business: Vec<(String, String)>,
    ) -> Result<Vec<u8>, AeError> {
        let timestamp = now_ms().to_string();
        let mut query = pairs(&[
            ("app_key", &self.app_key),
            ("timestamp", &timestamp),
            ("sign_method", "sha256"),
        ]);
        query.extend(system);
        query.retain(|(_, v)| !v.is_empty());
        let mut form = business;
        form.retain(|(_, v)| !v.is_empty());
        let all: Vec<(String, String)> = query.iter().chain(form.iter()).cloned().collect();
        let signature = sign(&self.app_secret, api_path, &all);
        query.push(("sign".to_owned(), signature));

        let mut url = reqwest::Url::parse(&format!("{}{}", self.base_url, path))
            .map_err(|e| AeError::Permanent(format!("bad gateway URL: {e}")))?;
        url.query_pairs_mut().extend_pairs(query.iter());

        Counters::bump(&self.counters.calls);
        let response = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if status.is_server_error() {
            return Err(AeError::Retryable(format!("HTTP {status}")));
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(AeError::RateLimited { ban: DEFAULT_BAN });
        }
        if !status.is_success() {
            return Err(AeError::Permanent(format!("HTTP {status}")));
        }
        Ok(body.to_vec())
    }

    // --------------------------------------------------------------------------------------------
    // Tokens
    // --------------------------------------------------------------------------------------------

    /// Reads the store on first use, and refreshes a token that expires within 30 minutes.
    async fn ensure_tokens(&self) -> Result<(), AeError> {
        let needs_work = |c: &Current, now: i64| {
            !c.loaded || (expires_soon(&c.tokens, now) && now >= c.early_refresh_not_before_ms)
        };
        if !needs_work(&self.current(), now_ms()) {
            return Ok(());
        }
        let _gate = self.token_gate.lock().await;
        if !self.current().loaded {
            let stored = self.load_stored().await;
            let mut c = self.current();
            c.loaded = true;
            if let Some(Some(stored)) = stored {
                c.stored_refresh = Some(stored.refresh_token.clone());
                if stored.is_newer_than(&c.tokens) {
                    tracing::debug!(app_key = %self.app_key, "using the stored AliExpress tokens");
                    c.tokens = stored;
                }
            }
        }
        let now = now_ms();
        if !needs_work(&self.current(), now) {
            return Ok(());
        }
        let refreshed = {
            let _pending = PendingRefresh::start(&self.refresh_pending);
            self.refresh_locked().await
        };
        match refreshed {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut c = self.current();
                let still_valid = c.tokens.expire_time_ms.is_some_and(|t| t > now);
                if still_valid && e != AeError::InvalidToken {
                    // The token works for a while yet: use it, try refreshing again later.
                    tracing::warn!(app_key = %self.app_key, error = %e, "early AliExpress token refresh failed; using the current token");
                    c.early_refresh_not_before_ms = now.saturating_add(EARLY_REFRESH_BACKOFF_MS);
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// AliExpress refused `rejected`: refresh, unless someone already replaced it (another
    /// caller of this client, or another invocation through the store).
    async fn refresh_after_rejection(&self, rejected: &str) -> Result<(), AeError> {
        let _gate = self.token_gate.lock().await;
        if self.current().tokens.access_token != rejected {
            return Ok(());
        }
        let _pending = PendingRefresh::start(&self.refresh_pending);
        self.refresh_locked().await
    }

    /// `Some(stored)` / `Some(None)` (nothing stored); `None` if the store failed (logged).
    async fn load_stored(&self) -> Option<Option<Tokens>> {
        match self.store.load(&self.app_key).await {
            Ok(found) => Some(found),
            Err(e) => {
                tracing::warn!(app_key = %self.app_key, error = %e, "cannot read the stored AliExpress tokens");
                None
            }
        }
    }

    /// Adopts tokens another invocation stored, if they are newer than ours (a later expiry:
    /// an old pair left in the store after a re-authorization must not replace the new one
    /// from the credentials). Call with the gate held.
    fn adopt_if_newer(&self, stored: Option<Tokens>) -> bool {
        let mut c = self.current();
        c.stored_refresh = stored.as_ref().map(|t| t.refresh_token.clone());
        match stored {
            Some(stored)
                if stored.refresh_token != c.tokens.refresh_token
                    && stored.is_newer_than(&c.tokens) =>
            {
                c.tokens = stored;
                true
            }
            _ => false,
        }
    }

    /// Refreshes the tokens and stores them. Call with `token_gate` held (single flight).
    async fn refresh_locked(&self) -> Result<(), AeError> {
        // Another invocation may have refreshed already; then its tokens are the live ones and
        // ours are dead (a refresh kills the pair it started from).
        if let Some(stored) = self.load_stored().await
            && self.adopt_if_newer(stored)
        {
            tracing::info!(app_key = %self.app_key, "picked up AliExpress tokens refreshed by another invocation");
            return Ok(());
        }
        let (old, dead) = {
            let c = self.current();
            let dead = c.dead_refresh.as_deref() == Some(c.tokens.refresh_token.as_str());
            (c.tokens.clone(), dead)
        };
        if dead {
            return Err(AeError::InvalidToken);
        }
        let grant = match self.refresh_http(&old.refresh_token).await {
            Ok(grant) => grant,
            Err(AeError::InvalidToken) => {
                // Perhaps another invocation refreshed between our read and our call.
                if let Some(stored) = self.load_stored().await
                    && self.adopt_if_newer(stored)
                {
                    return Ok(());
                }
                self.current().dead_refresh = Some(old.refresh_token);
                tracing::error!(app_key = %self.app_key, "AliExpress refresh token refused: re-authorization needed");
                return Err(AeError::InvalidToken);
            }
            Err(e) => return Err(e),
        };
        Counters::bump(&self.counters.refreshes);
        let expire_time_ms = grant.expire_time_ms.or_else(|| {
            grant
                .expires_in_s
                .map(|s| now_ms().saturating_add(s.saturating_mul(1000)))
        });
        let new = Tokens {
            access_token: grant.access_token,
            // A body without a refresh token leaves the one we have as the best guess.
            refresh_token: grant.refresh_token.unwrap_or(old.refresh_token),
            expire_time_ms,
        };
        let previous = self.current().stored_refresh.clone();
        let mut saved = None;
        for attempt in 1..=SAVE_ATTEMPTS {
            match self
                .store
                .save(&self.app_key, previous.as_deref(), &new)
                .await
            {
                Ok(ok) => {
                    saved = Some(ok);
                    break;
                }
                Err(e) => {
                    tracing::error!(app_key = %self.app_key, attempt, error = %e, "cannot store the refreshed AliExpress tokens");
                    tokio::time::sleep(BACKOFF_BASE.saturating_mul(attempt)).await;
                }
            }
        }
        match saved {
            Some(false) => {
                // Another invocation stored its refresh first: its tokens are the ones to use.
                tracing::info!(app_key = %self.app_key, "another invocation refreshed the AliExpress tokens first; reloading");
                let adopted = match self.load_stored().await {
                    Some(reloaded) => self.adopt_if_newer(reloaded),
                    None => false,
                };
                if !adopted {
                    self.current().tokens = new;
                }
            }
            Some(true) => {
                let mut c = self.current();
                c.stored_refresh = Some(new.refresh_token.clone());
                c.tokens = new;
            }
            None => {
                // Not stored: keep using the new tokens in this invocation at least (the old
                // ones are dead). The next invocation will have to re-authorize if this persists.
                self.current().tokens = new;
            }
        }
        {
            // A lifetime shorter than the 30-minute lead would otherwise mean a refresh before
            // every call: wait for half the remaining life (at least a minute) before the next
            // early refresh; a refusal still refreshes at once.
            let mut c = self.current();
            let now = now_ms();
            if expires_soon(&c.tokens, now) {
                let remaining = c.tokens.expire_time_ms.unwrap_or(now).saturating_sub(now);
                c.early_refresh_not_before_ms =
                    now.saturating_add((remaining / 2).max(EARLY_REFRESH_BACKOFF_MS));
            }
        }
        tracing::info!(app_key = %self.app_key, "AliExpress access token refreshed");
        Ok(())
    }

    /// `POST /rest/auth/token/refresh` with the retry policy for bans and transient errors.
    async fn refresh_http(&self, refresh_token: &str) -> Result<wire::TokenGrant, AeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match self.limiter.acquire().await {
                Ok(slot) => {
                    let body = pairs(&[("refresh_token", refresh_token)]);
                    let sent = self
                        .post_signed(
                            &format!("/rest{REFRESH_PATH}"),
                            Some(REFRESH_PATH),
                            Vec::new(),
                            body,
                        )
                        .await;
                    drop(slot);
                    sent.and_then(|body| wire::parse_token_response(&body))
                }
                Err(e) => Err(e),
            };
            let err = match outcome {
                Ok(grant) => return Ok(grant),
                Err(err) => err,
            };
            match self.plan_retry(&err, attempt) {
                Some(wait) => {
                    tracing::warn!(app_key = %self.app_key, attempt, error = %err, "AliExpress token refresh failed; retrying");
                    Counters::bump(&self.counters.retries);
                    tokio::time::sleep(wait).await;
                }
                None => return Err(err),
            }
        }
    }
}

// `async fn` here still satisfies the trait's `+ Send`: the compiler checks the futures are
// `Send` (and a unit test below pins it).
impl AliExpressApi for IopClient {
    async fn order_get(&self, ae_order_id: u64) -> Result<AeOrder, AeError> {
        // Built by hand, not through a float: ids sit just below 2^53.
        let query = format!("{{\"order_id\":{ae_order_id}}}");
        let business = pairs(&[("single_order_query", &query)]);
        let result = self
            .sync_call(METHOD_ORDER_GET, &business, ae_order_id)
            .await?;
        wire::order_from_result(result).inspect_err(|e| {
            tracing::warn!(ae_order_id, method = METHOD_ORDER_GET, error = %e, "unusable AliExpress answer");
        })
    }

    async fn tracking_get(&self, ae_order_id: u64) -> Result<Option<Vec<AeTrackingLine>>, AeError> {
        Ok(self
            .tracking_details(ae_order_id)
            .await?
            .map(|details| details.into_iter().map(|d| d.line).collect()))
    }

    fn app_key(&self) -> Option<&str> {
        Some(&self.app_key)
    }
}

impl AliExpressPlacing for IopClient {
    fn app_key(&self) -> Option<&str> {
        Some(&self.app_key)
    }

    async fn product_get(
        &self,
        product_id: u64,
        ship_to_country: &str,
    ) -> Result<ProductAnswer, AeError> {
        let business = place::product_get_params(product_id, ship_to_country);
        self.sync_call_with(place::METHOD_PRODUCT_GET, &business, 0, |body| {
            place::parse_product_get(body, product_id)
        })
        .await
    }

    async fn freight_query(
        &self,
        product_id: u64,
        sku_id: &str,
        quantity: u32,
        ship_to_country: &str,
    ) -> Result<Vec<FreightOption>, AeError> {
        let business = place::freight_query_params(product_id, sku_id, quantity, ship_to_country);
        self.sync_call_with(
            place::METHOD_FREIGHT_QUERY,
            &business,
            0,
            place::parse_freight_query,
        )
        .await
    }

    async fn order_create(&self, req: &PlaceOrderRequest) -> Result<CreateOutcome, AeError> {
        self.create_once(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryTokenStore;

    fn tokens() -> Tokens {
        Tokens {
            access_token: "ACCESS_SECRET".into(),
            refresh_token: "REFRESH_SECRET".into(),
            expire_time_ms: None,
        }
    }

    #[test]
    fn debug_output_never_shows_secrets_or_tokens() {
        let config = IopConfig::new("500001", "APP_SECRET", tokens());
        let text = format!("{config:?}");
        assert!(!text.contains("SECRET"), "{text}");
        let client = IopClient::new(config, Arc::new(MemoryTokenStore::new())).unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn a_bad_configuration_is_refused() {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
        let mut config = IopConfig::new("500001", "s", tokens());
        config.calls_per_second = 0.0;
        assert!(matches!(
            IopClient::new(config.clone(), store.clone()),
            Err(AeError::Permanent(_))
        ));
        config.calls_per_second = 10.0;
        config.base_url = "not a url".into();
        assert!(matches!(
            IopClient::new(config, store),
            Err(AeError::Permanent(_))
        ));
    }

    #[test]
    fn early_refresh_starts_30_minutes_before_expiry() {
        let mut t = tokens();
        assert!(!expires_soon(&t, 0));
        t.expire_time_ms = Some(REFRESH_AHEAD_MS + 1);
        assert!(!expires_soon(&t, 0));
        t.expire_time_ms = Some(REFRESH_AHEAD_MS);
        assert!(expires_soon(&t, 0));
    }

    #[test]
    fn the_trait_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let client = IopClient::new(
            IopConfig::new("500001", "s", tokens()),
            Arc::new(MemoryTokenStore::new()),
        )
        .unwrap();
        assert_send(&client.order_get(1));
        assert_send(&client.tracking_get(1));
    }
}
