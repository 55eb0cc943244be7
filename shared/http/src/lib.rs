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

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters (letters, digits, `-`, `_`, `.`, `~`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `raw` (as UTF-8) for one URL query value or path segment: only RFC 3986's
/// unreserved characters pass, so `&`, `=`, `/`, `?`, `#`, `+` and spaces cannot change the URL's
/// structure.
pub fn encode_component(raw: &str) -> String {
    utf8_percent_encode(raw, COMPONENT).to_string()
}

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

#[cfg(test)]
mod tests {
    use super::encode_component;

    #[test]
    fn only_unreserved_characters_pass_unencoded() {
        assert_eq!(encode_component("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(
            encode_component("LP 1&x=/é+?#%"),
            "LP%201%26x%3D%2F%C3%A9%2B%3F%23%25"
        );
        assert_eq!(encode_component(""), "");
    }
}
