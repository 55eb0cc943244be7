//! Cold-start wiring shared by the functions and the local stack: every client is built once
//! here, from the typed configuration and the credentials document.

use crate::config::Config;
use crate::credentials::Credentials;
use crate::queue::{SqsContinuation, SqsQueue};
use dropsync_aliexpress::{IopClient, IopConfig, StoreFailure, TokenStore, Tokens};
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_store::{AeTokenRecord, Store};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("the credentials document has no \"aliexpress\" section")]
    NoAliexpress,
    #[error("{0}")]
    Client(String),
}

/// The AWS SDK configuration (honours `AWS_ENDPOINT_URL` for the local emulator), on the shared
/// HTTP/TLS stack so that the root certificates are loaded once, by the first TLS handshake.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(dropsync_http::aws_http_client())
        .load()
        .await
}

pub fn store(aws: &aws_config::SdkConfig, config: &Config) -> Store {
    Store::new(
        aws_sdk_dynamodb::Client::new(aws),
        config.table_name.clone(),
    )
}

pub fn tracking_queue(aws: &aws_config::SdkConfig, url: &str) -> SqsQueue {
    SqsQueue::new(aws_sdk_sqs::Client::new(aws), url)
}

/// The poller's continuation queue (`None`: not configured, see [`SqsContinuation`]).
pub fn continuation_queue(aws: &aws_config::SdkConfig, url: Option<String>) -> SqsContinuation {
    SqsContinuation::new(aws_sdk_sqs::Client::new(aws), url)
}

pub fn admin_client(config: &Config) -> Result<AdminClient, WiringError> {
    AdminClient::new(AdminConfig {
        base_override: config.shopify_admin_url.clone(),
        api_version: config.shopify_api_version.clone(),
        ..AdminConfig::default()
    })
    .map_err(|e| WiringError::Client(e.to_string()))
}

/// AliExpress tokens refreshed by dropsync live in the table, not in the secret.
#[derive(Debug, Clone)]
pub struct StoreTokens(pub Store);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl TokenStore for StoreTokens {
    fn load(&self, app_key: &str) -> BoxFuture<'_, Result<Option<Tokens>, StoreFailure>> {
        let app_key = app_key.to_owned();
        Box::pin(async move {
            let rec = self
                .0
                .get_ae_tokens(&app_key)
                .await
                .map_err(StoreFailure::new)?;
            Ok(rec.map(|r| Tokens {
                access_token: r.access_token,
                refresh_token: r.refresh_token,
                expire_time_ms: Some(r.expire_time_ms),
            }))
        })
    }

    fn save(
        &self,
        app_key: &str,
        previous_refresh_token: Option<&str>,
        tokens: &Tokens,
    ) -> BoxFuture<'_, Result<bool, StoreFailure>> {
        let app_key = app_key.to_owned();
        let prev = previous_refresh_token.map(str::to_owned);
        let rec = AeTokenRecord {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expire_time_ms: tokens.expire_time_ms.unwrap_or(0),
            refresh_expire_time_ms: None,
        };
        Box::pin(async move {
            self.0
                .put_ae_tokens(&app_key, prev.as_deref(), &rec)
                .await
                .map_err(StoreFailure::new)
        })
    }
}

pub fn iop_client(
    config: &Config,
    credentials: &Credentials,
    store: &Store,
) -> Result<IopClient, WiringError> {
    let ae = credentials
        .aliexpress
        .as_ref()
        .ok_or(WiringError::NoAliexpress)?;
    IopClient::new(
        IopConfig {
            base_url: config.aliexpress_api_url.clone(),
            app_key: ae.app_key.clone(),
            app_secret: ae.app_secret.clone(),
            initial_tokens: Tokens {
                access_token: ae.access_token.clone().unwrap_or_default(),
                refresh_token: ae.refresh_token.clone().unwrap_or_default(),
                expire_time_ms: ae.expire_time,
            },
            calls_per_second: config.aliexpress_calls_per_second,
            max_concurrency: config.aliexpress_concurrency,
            // Every Lambda of the deployment shares the app key's pace through the table.
            shared_pace: Some(Arc::new(crate::ae_pace::StorePace(store.clone()))),
            ..IopConfig::default()
        },
        Arc::new(StoreTokens(store.clone())),
    )
    .map_err(|e| WiringError::Client(e.to_string()))
}

/// How long the pusher keeps a shop's settings: one read per shop and instance per this long
/// instead of one per message; a settings change or an uninstall reaches a warm pusher this late.
pub const SHOP_CACHE_TTL: Duration = Duration::from_secs(30);

/// Time the functions keep back at the end of an invocation.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(2);

/// A boxed error for the functions' `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Init<T> = dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>> + Send + Sync;

/// Services built once, on first use. The AWS Parameters and Secrets extension answers only
/// during INVOKE, not INIT, so with `CREDENTIALS_SECRET_ID` the credentials (and everything built
/// from them) are loaded by the first invocation and then cached for the life of the sandbox;
/// with `CREDENTIALS_FILE` the functions build them at cold start and fail fast.
pub struct Deferred<T> {
    cell: Arc<tokio::sync::OnceCell<Arc<T>>>,
    init: Arc<Init<T>>,
}

impl<T> Clone for Deferred<T> {
    fn clone(&self) -> Self {
        Self {
            cell: self.cell.clone(),
            init: self.init.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("ready", &self.cell.initialized())
            .finish()
    }
}

impl<T: Send + Sync + 'static> Deferred<T> {
    pub fn new<F, Fut>(init: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
    {
        Self {
            cell: Arc::new(tokio::sync::OnceCell::new()),
            init: Arc::new(move || Box::pin(init())),
        }
    }

    /// The services, building them on the first call; a failed build is retried next time.
    pub async fn get(&self) -> Result<Arc<T>, BoxError> {
        self.cell
            .get_or_try_init(|| async { (self.init)().await.map(Arc::new) })
            .await
            .cloned()
    }

    /// Builds now when the credentials come from a file (cold start fails fast on a bad one).
    pub async fn eager_unless_secret(&self, config: &Config) -> Result<(), BoxError> {
        match config.credentials {
            crate::config::CredentialsSource::File(_) => self.get().await.map(|_| ()),
            crate::config::CredentialsSource::Secret(_) => Ok(()),
        }
    }
}

/// The connect service, when `PUBLIC_URL` is configured (redirect URLs and webhook
/// subscriptions are built from it).
pub fn connect_service(
    config: &Config,
    credentials: &Arc<Credentials>,
    store: &Store,
) -> Result<Option<crate::connect::ConnectService>, WiringError> {
    let Some(public_url) = config.public_url.clone() else {
        return Ok(None);
    };
    let tokens = crate::tokens::shared(store, credentials, config.shopify_admin_url.clone())
        .map_err(|e| WiringError::Client(e.to_string()))?;
    let token_client = dropsync_shopify::oauth::TokenClient::new(config.shopify_admin_url.clone())
        .map_err(|e| WiringError::Client(e.to_string()))?;
    let http = dropsync_http::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| WiringError::Client(e.to_string()))?;
    Ok(Some(crate::connect::ConnectService {
        store: store.clone(),
        credentials: credentials.clone(),
        tokens,
        token_client,
        admin: Arc::new(admin_client(config)?),
        public_url,
        aliexpress_api_url: config.aliexpress_api_url.clone(),
        http,
        tracking_queue: None,
    }))
}
