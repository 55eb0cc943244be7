//! Cold-start wiring shared by the functions and the local stack: every client is built once
//! here, from the typed configuration and the credentials document.

use crate::config::Config;
use crate::connect::ConnectService;
use crate::credentials::Credentials;
use crate::place::{PlaceService, Placer};
use crate::push::PushService;
use crate::queue::{SqsContinuation, SqsPlaceQueue, SqsQueue};
use crate::reconcile::{DEFAULT_LOOKBACK_MS, ReconcileService};
use crate::sync::SyncService;
use crate::webhook::WebhookService;
use dropsync_aliexpress::{IopClient, IopConfig, StoreFailure, TokenStore, Tokens};
use dropsync_shopify::admin::{AdminClient, AdminConfig};
use dropsync_store::{AeTokenRecord, Store};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("the credentials document has no \"aliexpress\" section")]
    NoAliexpress,
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("building the {what} failed: {source}")]
    Client {
        what: &'static str,
        #[source]
        source: BoxError,
    },
}

/// Maps a client constructor's error into [`WiringError::Client`].
fn building<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> WiringError {
    move |e| WiringError::Client {
        what,
        source: Box::new(e),
    }
}

/// The AWS SDK configuration (honours `AWS_ENDPOINT_URL` for the local emulator), on the shared
/// HTTP/TLS stack so that the root certificates are loaded once, by the first TLS handshake.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(dropsync_http::aws_http_client())
        .load()
        .await
}

fn store(aws: &aws_config::SdkConfig, config: &Config) -> Store {
    Store::new(
        aws_sdk_dynamodb::Client::new(aws),
        config.table_name.clone(),
    )
}

fn tracking_queue(aws: &aws_config::SdkConfig, url: &str) -> SqsQueue {
    SqsQueue::new(aws_sdk_sqs::Client::new(aws), url)
}

/// The poller's continuation queue (`None`: not configured, see [`SqsContinuation`]).
fn continuation_queue(aws: &aws_config::SdkConfig, url: Option<String>) -> SqsContinuation {
    SqsContinuation::new(aws_sdk_sqs::Client::new(aws), url)
}

fn admin_client(config: &Config) -> Result<AdminClient, WiringError> {
    AdminClient::new(AdminConfig {
        base_override: config.shopify_admin_url.clone(),
        api_version: config.shopify_api_version.clone(),
        ..AdminConfig::default()
    })
    .map_err(building("Shopify Admin client"))
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

fn iop_client(
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
    .map_err(building("AliExpress client"))
}

/// How long the pusher keeps a shop's settings: one read per shop and instance per this long
/// instead of one per message; a settings change or an uninstall reaches a warm pusher this late.
pub const SHOP_CACHE_TTL: Duration = Duration::from_secs(30);

/// Time the functions keep back at the end of an invocation.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(2);

/// A boxed error for the functions' `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service graph: what every service is built from (configuration, credentials, the AWS SDK
/// configuration, the table) and the clients the services of one process share. Each client is
/// built on first use and then shared, so the services built from one graph pace their calls
/// together (one Shopify limiter, one AliExpress limiter and token cache per process).
///
/// Every function's `main` and the local stack build their services here and nowhere else.
pub struct Graph {
    pub config: Arc<Config>,
    pub aws: aws_config::SdkConfig,
    pub credentials: Arc<Credentials>,
    pub store: Store,
    admin: OnceLock<Arc<AdminClient>>,
    aliexpress: OnceLock<Arc<IopClient>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("table", &self.config.table_name)
            .finish_non_exhaustive()
    }
}

/// Returns the cell's value, building it with `build` the first time.
fn shared_once<T>(
    cell: &OnceLock<Arc<T>>,
    build: impl FnOnce() -> Result<T, WiringError>,
) -> Result<Arc<T>, WiringError> {
    if let Some(v) = cell.get() {
        return Ok(v.clone());
    }
    let built = Arc::new(build()?);
    Ok(cell.get_or_init(|| built).clone())
}

impl Graph {
    /// Loads the credentials document and the AWS configuration.
    pub async fn load(config: Arc<Config>) -> Result<Self, BoxError> {
        let credentials = Arc::new(Credentials::load(&config.credentials).await?);
        Ok(Self::new(config, aws().await, credentials))
    }

    /// A graph over parts already loaded (the local stack creates its table and queues first).
    pub fn new(
        config: Arc<Config>,
        aws: aws_config::SdkConfig,
        credentials: Arc<Credentials>,
    ) -> Self {
        let store = store(&aws, &config);
        Self {
            config,
            aws,
            credentials,
            store,
            admin: OnceLock::new(),
            aliexpress: OnceLock::new(),
        }
    }

    /// The Shopify Admin client (one per process: its limiter paces every push of the process).
    pub fn admin(&self) -> Result<Arc<AdminClient>, WiringError> {
        shared_once(&self.admin, || admin_client(&self.config))
    }

    /// The AliExpress client (one per process); `WiringError::NoAliexpress` when the credentials
    /// document has no AliExpress section.
    pub fn aliexpress(&self) -> Result<Arc<IopClient>, WiringError> {
        shared_once(&self.aliexpress, || {
            iop_client(&self.config, &self.credentials, &self.store)
        })
    }

    /// The tracking queue, when `TRACKING_QUEUE_URL` is configured.
    pub fn tracking_queue(&self) -> Option<SqsQueue> {
        self.config
            .tracking_queue_url
            .as_deref()
            .map(|url| tracking_queue(&self.aws, url))
    }

    /// The poller's continuation queue (`CONTINUATION_QUEUE_URL`, optional).
    pub fn continuation_queue(&self) -> SqsContinuation {
        continuation_queue(&self.aws, self.config.continuation_queue_url.clone())
    }

    /// The automatic-placement queue, when `PLACE_QUEUE_URL` is configured.
    pub fn place_queue(&self) -> Option<SqsPlaceQueue> {
        self.config
            .place_queue_url
            .as_deref()
            .map(|url| SqsPlaceQueue::new(aws_sdk_sqs::Client::new(&self.aws), url))
    }

    pub fn webhook(&self) -> Result<WebhookService<AdminClient>, WiringError> {
        Ok(WebhookService {
            store: self.store.clone(),
            credentials: self.credentials.clone(),
            admin: Some(self.admin()?),
        })
    }

    /// The pusher reads each shop's settings once per [`SHOP_CACHE_TTL`], not once per message.
    pub fn push(&self) -> Result<PushService<AdminClient>, WiringError> {
        Ok(PushService {
            store: self.store.clone().caching_shops(SHOP_CACHE_TTL),
            admin: self.admin()?,
            credentials: self.credentials.clone(),
        })
    }

    /// The sync; its tracking queue is `TRACKING_QUEUE_URL` (required by the functions that sync).
    pub fn sync(&self) -> Result<SyncService<IopClient, SqsQueue>, WiringError> {
        Ok(SyncService {
            store: self.store.clone(),
            ae: self.aliexpress()?,
            queue: Arc::new(
                self.tracking_queue()
                    .ok_or(WiringError::Missing("TRACKING_QUEUE_URL"))?,
            ),
            concurrency: self.config.poll_concurrency,
        })
    }

    pub fn placer(&self) -> Result<Arc<dyn Placer>, WiringError> {
        Ok(Arc::new(PlaceService {
            store: self.store.clone(),
            ae: self.aliexpress()?,
            shopify: self.admin()?,
            credentials: self.credentials.clone(),
        }))
    }

    pub fn reconcile(&self) -> Result<ReconcileService<AdminClient>, WiringError> {
        Ok(ReconcileService {
            store: self.store.clone(),
            credentials: self.credentials.clone(),
            admin: self.admin()?,
            lookback_ms: DEFAULT_LOOKBACK_MS,
        })
    }

    /// The connect service, when `PUBLIC_URL` is configured; a reconnect queues the pushes that
    /// waited for it on the tracking queue.
    pub fn connect(&self) -> Result<Option<ConnectService>, WiringError> {
        Ok(
            connect_service(&self.config, &self.credentials, &self.store)?.map(|mut c| {
                c.tracking_queue = self.tracking_queue();
                c
            }),
        )
    }
}

type Init<T> = dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>> + Send + Sync;

/// A function's services, built from the [`Graph`] by the first invocation and then kept for the
/// life of the sandbox. Nothing is built at cold start: the init phase only reads the
/// configuration (failing fast on a bad value), so it costs what a hello-world function costs.
/// It also has to be this way with `CREDENTIALS_SECRET_ID`: the AWS Parameters and Secrets
/// extension answers only during INVOKE, not INIT. A failed build fails that invocation and is
/// tried again by the next one.
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
    /// The services `build` makes from the graph of `config`, on first use.
    pub fn from_graph(config: Config, build: fn(&Graph) -> Result<T, WiringError>) -> Self {
        let config = Arc::new(config);
        Self::new(move || {
            let config = config.clone();
            async move {
                let graph = Graph::load(config).await?;
                Ok(build(&graph)?)
            }
        })
    }

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
}

/// The connect service, when `PUBLIC_URL` is configured (redirect URLs and webhook
/// subscriptions are built from it).
fn connect_service(
    config: &Config,
    credentials: &Arc<Credentials>,
    store: &Store,
) -> Result<Option<ConnectService>, WiringError> {
    let Some(public_url) = config.public_url.clone() else {
        return Ok(None);
    };
    let tokens = crate::tokens::shared(store, credentials, config.shopify_admin_url.clone())
        .map_err(building("Shopify token provider"))?;
    let token_client = dropsync_shopify::oauth::TokenClient::new(config.shopify_admin_url.clone())
        .map_err(building("Shopify OAuth client"))?;
    let http = dropsync_http::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(building("HTTP client"))?;
    Ok(Some(ConnectService {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CredentialsSource;

    fn config(tracking_queue: Option<&str>, public_url: Option<&str>) -> Config {
        Config {
            table_name: "orders".into(),
            tracking_queue_url: tracking_queue.map(str::to_owned),
            continuation_queue_url: None,
            place_queue_url: Some("http://127.0.0.1:1/queue/place".into()),
            shopify_api_version: "2026-10".into(),
            shopify_admin_url: Some("http://127.0.0.1:1".into()),
            aliexpress_api_url: "http://127.0.0.1:1".into(),
            credentials: CredentialsSource::File("unused".into()),
            aliexpress_calls_per_second: 10.0,
            aliexpress_concurrency: 4,
            poll_concurrency: 16,
            poll_reserve: Duration::from_secs(30),
            tracking_max_receives: 8,
            public_url: public_url.map(str::to_owned),
        }
    }

    fn graph(config: Config, aliexpress: bool) -> Graph {
        let ae = if aliexpress {
            r#","aliexpress":{"app_key":"12345678","app_secret":"s","access_token":"t","refresh_token":"r"}"#
        } else {
            ""
        };
        let doc = format!(r#"{{"admin_token":"an-admin-token-0123456789"{ae}}}"#);
        let credentials = Credentials::parse(doc.as_bytes()).unwrap();
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Graph::new(Arc::new(config), aws, Arc::new(credentials))
    }

    #[tokio::test]
    async fn every_functions_services_build_from_one_graph_without_touching_the_network() {
        let g = graph(
            config(
                Some("http://127.0.0.1:1/queue/t"),
                Some("https://d.example"),
            ),
            true,
        );
        assert!(g.webhook().unwrap().admin.is_some());
        g.push().unwrap();
        g.sync().unwrap();
        g.placer().unwrap();
        g.reconcile().unwrap();
        let connect = g.connect().unwrap().unwrap();
        assert!(
            connect.tracking_queue.is_some(),
            "a reconnect must be able to queue the pushes that waited for it"
        );
        assert!(g.place_queue().is_some());
    }

    #[tokio::test]
    async fn the_services_of_one_graph_share_one_shopify_and_one_aliexpress_client() {
        let g = graph(config(Some("http://127.0.0.1:1/queue/t"), None), true);
        let push = g.push().unwrap();
        let webhook = g.webhook().unwrap();
        assert!(Arc::ptr_eq(&push.admin, &webhook.admin.unwrap()));
        assert!(Arc::ptr_eq(&push.admin, &g.reconcile().unwrap().admin));
        assert!(Arc::ptr_eq(&g.sync().unwrap().ae, &g.aliexpress().unwrap()));
    }

    #[tokio::test]
    async fn what_a_deployment_lacks_is_named_instead_of_half_built() {
        let g = graph(config(None, None), false);
        assert!(matches!(g.aliexpress(), Err(WiringError::NoAliexpress)));
        assert!(matches!(g.placer(), Err(WiringError::NoAliexpress)));
        assert!(
            g.connect().unwrap().is_none(),
            "no PUBLIC_URL, no connecting"
        );
        let g = graph(config(None, None), true);
        assert!(matches!(
            g.sync(),
            Err(WiringError::Missing("TRACKING_QUEUE_URL"))
        ));
    }

    #[tokio::test]
    async fn deferred_services_are_built_by_the_first_call_and_a_failed_build_is_tried_again() {
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = calls.clone();
        let deferred = Deferred::new(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err::<u32, BoxError>("the secret is not there yet".into())
                } else {
                    Ok(n)
                }
            }
        });
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing at cold start"
        );
        assert!(deferred.get().await.is_err());
        assert_eq!(*deferred.get().await.unwrap(), 1);
        assert_eq!(*deferred.get().await.unwrap(), 1);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
