//! The credentials document (DESIGN.md §4): loaded once at cold start, never logged.
//!
//! On AWS it comes from Secrets Manager through the AWS Parameters and Secrets Lambda Extension
//! (a local HTTP call) rather than the Secrets Manager SDK: the extension caches the secret across
//! invocations, and skipping another SDK crate keeps the build and the binary smaller and the cold
//! start shorter (the SDK client would add its own init work).

use crate::config::CredentialsSource;
use dropsync_domain::ShopDomain;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the credentials file: {0}")]
    File(String),
    #[error("cannot fetch the credentials secret: {0}")]
    Secret(String),
    #[error("the credentials document is malformed: {0}")]
    Malformed(String),
}

/// A shop's secrets.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopCredentials {
    pub access_token: String,
    /// The current webhook secret first; during a rotation, the previous one after it.
    pub webhook_secrets: Vec<String>,
    /// Optional merchant-API token that sees this shop only (the `admin_token` sees every shop).
    #[serde(default)]
    pub api_token: Option<String>,
}

/// The AliExpress app and its tokens.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliexpressCredentials {
    pub app_key: String,
    pub app_secret: String,
    pub access_token: String,
    pub refresh_token: String,
    #[serde(default)]
    pub expire_time: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    admin_token: String,
    shops: BTreeMap<String, ShopCredentials>,
    #[serde(default)]
    aliexpress: Option<AliexpressCredentials>,
}

/// The parsed credentials. `Debug` shows shop names only.
#[derive(Clone)]
pub struct Credentials {
    pub admin_token: String,
    pub shops: BTreeMap<ShopDomain, ShopCredentials>,
    pub aliexpress: Option<AliexpressCredentials>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("shops", &self.shops.keys().collect::<Vec<_>>())
            .field("aliexpress", &self.aliexpress.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ShopCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShopCredentials { .. }")
    }
}

impl fmt::Debug for AliexpressCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliexpressCredentials")
            .field("app_key", &self.app_key)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn parse(raw: &[u8]) -> Result<Self, CredentialsError> {
        let doc: Document =
            serde_json::from_slice(raw).map_err(|e| CredentialsError::Malformed(e.to_string()))?;
        if doc.admin_token.trim().len() < 16 {
            return Err(CredentialsError::Malformed(
                "admin_token must be at least 16 characters".into(),
            ));
        }
        let mut shops = BTreeMap::new();
        for (name, creds) in doc.shops {
            let shop = ShopDomain::parse(&name).map_err(|_| {
                CredentialsError::Malformed(format!("{name:?} is not a *.myshopify.com domain"))
            })?;
            if creds.webhook_secrets.is_empty()
                || creds.webhook_secrets.iter().any(|s| s.is_empty())
            {
                return Err(CredentialsError::Malformed(format!(
                    "{shop}: webhook_secrets must hold at least one non-empty secret"
                )));
            }
            if creds.api_token.as_deref().is_some_and(|t| t.len() < 16) {
                return Err(CredentialsError::Malformed(format!(
                    "{shop}: api_token must be at least 16 characters"
                )));
            }
            shops.insert(shop, creds);
        }
        Ok(Self {
            admin_token: doc.admin_token,
            shops,
            aliexpress: doc.aliexpress,
        })
    }

    pub fn shop(&self, shop: &ShopDomain) -> Option<&ShopCredentials> {
        self.shops.get(shop)
    }

    /// Whether a bearer token may act on a shop: the admin token on every configured shop, a
    /// shop's own API token on that shop only. Compared in constant time.
    pub fn token_sees(&self, token: &str, shop: &ShopDomain) -> Access {
        let admin = constant_eq(token.as_bytes(), self.admin_token.as_bytes());
        let own = self.shops.get(shop).and_then(|c| c.api_token.as_deref());
        let any_shop = self
            .shops
            .values()
            .filter_map(|c| c.api_token.as_deref())
            .any(|t| constant_eq(token.as_bytes(), t.as_bytes()));
        if !admin && !any_shop {
            return Access::Unknown;
        }
        let sees = self.shops.contains_key(shop)
            && (admin || own.is_some_and(|t| constant_eq(token.as_bytes(), t.as_bytes())));
        if sees {
            Access::Granted
        } else {
            Access::Forbidden
        }
    }
}

/// What a bearer token may do with a shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not a token we issued: 401.
    Unknown,
    /// A valid token for other shops: 403.
    Forbidden,
    Granted,
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credentials {
    /// Loads the document from where the configuration says.
    pub async fn load(source: &CredentialsSource) -> Result<Self, CredentialsError> {
        match source {
            CredentialsSource::File(path) => {
                let raw = tokio::fs::read(path)
                    .await
                    .map_err(|e| CredentialsError::File(format!("{path}: {e}")))?;
                Self::parse(&raw)
            }
            CredentialsSource::Secret(id) => Self::parse(&fetch_secret(id).await?),
        }
    }
}

/// Reads a secret through the Parameters and Secrets Lambda Extension.
async fn fetch_secret(id: &str) -> Result<Vec<u8>, CredentialsError> {
    let port =
        std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT").unwrap_or_else(|_| "2773".into());
    let token = std::env::var("AWS_SESSION_TOKEN")
        .map_err(|_| CredentialsError::Secret("AWS_SESSION_TOKEN is not set".into()))?;
    let client = dropsync_http::client_builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| CredentialsError::Secret(e.to_string()))?;
    // Secret ids are names or ARNs: letters, digits and /_+=.@-: (plus ':' in ARNs) — encode the
    // few that are not URL-safe by hand rather than pull in a URL crate.
    let encoded: String = id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url = format!("http://localhost:{port}/secretsmanager/get?secretId={encoded}");
    // The extension may still be starting during our init: retry briefly.
    let mut last = String::new();
    for attempt in 0..5u64 {
        let res = client
            .get(&url)
            .header("X-Aws-Parameters-Secrets-Token", &token)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                #[derive(Deserialize)]
                struct SecretValue {
                    #[serde(rename = "SecretString")]
                    secret_string: Option<String>,
                }
                let v: SecretValue = r
                    .json()
                    .await
                    .map_err(|e| CredentialsError::Secret(e.to_string()))?;
                return v.secret_string.map(String::into_bytes).ok_or_else(|| {
                    CredentialsError::Secret("the secret has no SecretString".into())
                });
            }
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50 * (attempt + 1))).await;
    }
    Err(CredentialsError::Secret(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_document_parses_and_debug_never_shows_secrets() {
        let raw = br#"{"admin_token":"0123456789abcdef-admin","shops":{"Example.myshopify.com":{"access_token":"shpat_secret","webhook_secrets":["whsec_now","whsec_old"]}},"aliexpress":{"app_key":"123","app_secret":"ae_secret","access_token":"ae_token","refresh_token":"ae_refresh","expire_time":1767225600000}}"#;
        let c = Credentials::parse(raw).unwrap();
        let shop = ShopDomain::parse("example.myshopify.com").unwrap();
        assert_eq!(c.shop(&shop).unwrap().webhook_secrets.len(), 2);
        let dbg = format!("{c:?} {:?}", c.aliexpress);
        for secret in [
            "shpat_secret",
            "whsec_now",
            "ae_secret",
            "ae_token",
            "ae_refresh",
            "0123456789abcdef",
        ] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn malformed_documents_fail_with_a_clear_message() {
        for raw in [
            &b"not json"[..],
            br#"{"admin_token":"short","shops":{}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shops":{"evil.com":{"access_token":"x","webhook_secrets":["s"]}}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shops":{"a.myshopify.com":{"access_token":"x","webhook_secrets":[]}}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shops":{},"surprise":1}"#,
        ] {
            assert!(matches!(Credentials::parse(raw), Err(CredentialsError::Malformed(_))));
        }
    }
}
