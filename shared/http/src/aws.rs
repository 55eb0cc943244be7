//! The AWS SDK's HTTP client, over reqwest and the shared TLS configuration.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::time::Duration;

/// What the SDK's own client uses when the configuration sets no connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// An HTTP client for `aws_config::ConfigLoader::http_client`: one reqwest connection pool per
/// timeout setting, all on the shared TLS configuration. DynamoDB and SQS requests and answers
/// are small buffered bodies; a streaming request body is refused (none of dropsync's calls
/// send one).
pub fn aws_http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// Connect and read timeouts: what distinguishes one connector from another.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug, Default)]
struct ReqwestHttpClient {
    /// Connectors by timeouts: the SDK asks once per client configuration, so this holds one or
    /// two entries.
    connectors: std::sync::Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key: Timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = match self.connectors.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, c)) = connectors.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let connector = SharedHttpConnector::new(ReqwestConnector::new(key.0, key.1));
        connectors.push((key, connector.clone()));
        connector
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    http: Result<reqwest::Client, String>,
    read_timeout: Option<Duration>,
}

impl ReqwestConnector {
    fn new(connect_timeout: Option<Duration>, read_timeout: Option<Duration>) -> Self {
        let mut builder = crate::client_builder()
            .connect_timeout(connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            // The SDK signs every request for its exact host: a redirect could only fail.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(t) = read_timeout {
            builder = builder.read_timeout(t);
        }
        Self {
            http: builder.build().map_err(|e| e.to_string()),
            read_timeout,
        }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let http = match &self.http {
            Ok(http) => http.clone(),
            Err(e) => {
                let e = format!("cannot build the HTTP client: {e}");
                return HttpConnectorFuture::ready(Err(ConnectorError::other(e.into(), None)));
            }
        };
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(Box::new(e)))?;
            let (parts, body) = request.into_parts();
            let Some(bytes) = body.bytes().map(<[u8]>::to_vec) else {
                return Err(ConnectorError::user(
                    "a streaming request body is not supported".into(),
                ));
            };
            let mut builder = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(bytes);
            if let Some(t) = read_timeout {
                builder = builder.timeout(t);
            }
            let response = builder.send().await.map_err(classify)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(classify)?;
            let mut out = http::Response::new(SdkBody::from(body));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            HttpResponse::try_from(out).map_err(|e| ConnectorError::other(Box::new(e), None))
        })
    }
}

/// Timeouts and connection failures are transient for the SDK's retry strategy.
fn classify(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(Box::new(e))
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(Box::new(e))
    } else {
        ConnectorError::other(Box::new(e), None)
    }
}
