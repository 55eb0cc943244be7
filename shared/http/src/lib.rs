//! dropsync's one HTTP/TLS stack.
//!
//! Every outbound connection (Shopify, AliExpress, DynamoDB, SQS) goes through reqwest with the
//! same rustls configuration, whose server-certificate verifier loads the system's root
//! certificates once per process, on the first TLS handshake. Nothing certificate-related
//! happens at cold start, and the roots are never loaded twice (the AWS SDK's own HTTPS client
//! and reqwest's platform verifier would each load and parse a full root store at init).

mod aws;
mod tls;

pub use aws::aws_http_client;
pub use tls::tls_config;

/// A reqwest builder preconfigured with the shared TLS configuration; callers add their
/// timeouts and policies.
pub fn client_builder() -> reqwest::ClientBuilder {
    match tls_config() {
        Ok(config) => reqwest::Client::builder().tls_backend_preconfigured(config),
        // Not expected with the built-in provider; reqwest's own TLS still verifies properly.
        Err(e) => {
            tracing::warn!(error = %e, "shared TLS configuration unavailable, using reqwest's");
            reqwest::Client::builder()
        }
    }
}
