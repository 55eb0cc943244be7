//! The credentials document: loaded once at cold start, never logged.
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

/// A shop's secrets. Either a legacy pasted token (`access_token` plus `webhook_secrets`), or
/// `client_credentials: true`: the token is minted with the app's id and secret and webhooks are
/// signed with the app's client secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopCredentials {
    /// A legacy admin-created app's non-expiring `shpat_` token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// The current webhook secret first; during a rotation, the previous one after it. Empty for
    /// shops whose webhooks are signed with the app's client secret.
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
    /// The token comes from the client credentials grant (`shopify_app` is then required).
    #[serde(default)]
    pub client_credentials: bool,
    /// Optional merchant-API token that sees this shop only (the `admin_token` sees every shop).
    #[serde(default)]
    pub api_token: Option<String>,
}

/// The AliExpress app and, optionally, tokens that seed the table (`GET /connect/aliexpress`
/// obtains them otherwise).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliexpressCredentials {
    pub app_key: String,
    pub app_secret: String,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expire_time: Option<i64>,
}

/// The merchant's Shopify Dev Dashboard app: OAuth and the client credentials grant use its id and
/// secret, and Shopify signs the webhooks of shops connected through it with the secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyApp {
    pub client_id: String,
    pub client_secret: String,
    /// The secret before a rotation, still accepted on webhooks and OAuth callbacks meanwhile.
    #[serde(default)]
    pub previous_client_secret: Option<String>,
    /// Comma-separated access scopes requested on connect.
    pub scopes: String,
}

impl ShopifyApp {
    /// The secrets Shopify may sign with: the current one first.
    pub fn secrets(&self) -> Vec<String> {
        std::iter::once(self.client_secret.clone())
            .chain(self.previous_client_secret.clone())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl fmt::Debug for ShopifyApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopifyApp")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    admin_token: String,
    #[serde(default)]
    shopify_app: Option<ShopifyApp>,
    #[serde(default)]
    shops: BTreeMap<String, ShopCredentials>,
    #[serde(default)]
    aliexpress: Option<AliexpressCredentials>,
}

/// The parsed credentials. `Debug` shows shop names only.
#[derive(Clone)]
pub struct Credentials {
    pub admin_token: String,
    pub shopify_app: Option<ShopifyApp>,
    pub shops: BTreeMap<ShopDomain, ShopCredentials>,
    pub aliexpress: Option<AliexpressCredentials>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("shopify_app", &self.shopify_app)
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
        // serde_json's messages quote the input ("invalid type: string \"…\""), and the input
        // is secrets: only the kind of error and its position are kept.
        let doc: Document = serde_json::from_slice(raw).map_err(|e| {
            CredentialsError::Malformed(format!(
                "{:?} error at line {}, column {} (the content is not quoted)",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if doc.admin_token.trim().len() < 16 {
            return Err(CredentialsError::Malformed(
                "admin_token must be at least 16 characters".into(),
            ));
        }
        let mut shops = BTreeMap::new();
        for (name, creds) in doc.shops {
            let shop = ShopDomain::parse(&name).map_err(|_| {
                CredentialsError::Malformed(
                    "a key of shops is not a *.myshopify.com domain".to_owned(),
                )
            })?;
            if creds.webhook_secrets.iter().any(|s| s.is_empty()) {
                return Err(CredentialsError::Malformed(format!(
                    "{shop}: webhook_secrets must not hold an empty secret"
                )));
            }
            match (&creds.access_token, creds.client_credentials) {
                (Some(_), true) => {
                    return Err(CredentialsError::Malformed(format!(
                        "{shop}: either access_token or client_credentials, not both"
                    )));
                }
                (Some(token), false) => {
                    if token.is_empty() || creds.webhook_secrets.is_empty() {
                        return Err(CredentialsError::Malformed(format!(
                            "{shop}: a legacy access_token needs webhook_secrets with at least one secret"
                        )));
                    }
                }
                (None, true) => {
                    if doc.shopify_app.is_none() {
                        return Err(CredentialsError::Malformed(format!(
                            "{shop}: client_credentials needs the shopify_app section"
                        )));
                    }
                }
                (None, false) => {
                    return Err(CredentialsError::Malformed(format!(
                        "{shop}: needs an access_token or \"client_credentials\": true"
                    )));
                }
            }
            if creds.api_token.as_deref().is_some_and(|t| t.len() < 16) {
                return Err(CredentialsError::Malformed(format!(
                    "{shop}: api_token must be at least 16 characters"
                )));
            }
            // A shop token equal to the admin token would hand every shop to that shop's
            // holder; one shared by two shops would hand each the other.
            if let Some(token) = creds.api_token.as_deref() {
                if secrets_equal(token.as_bytes(), doc.admin_token.as_bytes()) {
                    return Err(CredentialsError::Malformed(format!(
                        "{shop}: api_token must differ from admin_token"
                    )));
                }
                if shops.values().any(|c: &ShopCredentials| {
                    c.api_token
                        .as_deref()
                        .is_some_and(|t| secrets_equal(t.as_bytes(), token.as_bytes()))
                }) {
                    return Err(CredentialsError::Malformed(format!(
                        "{shop}: api_token is another shop's too"
                    )));
                }
            }
            shops.insert(shop, creds);
        }
        if let Some(app) = &doc.shopify_app
            && (app.client_id.trim().is_empty()
                || app.client_secret.trim().is_empty()
                || app.scopes.trim().is_empty())
        {
            return Err(CredentialsError::Malformed(
                "shopify_app needs client_id, client_secret and scopes".into(),
            ));
        }
        Ok(Self {
            admin_token: doc.admin_token,
            shopify_app: doc.shopify_app,
            shops,
            aliexpress: doc.aliexpress,
        })
    }

    pub fn shop(&self, shop: &ShopDomain) -> Option<&ShopCredentials> {
        self.shops.get(shop)
    }

    /// The secrets a shop's webhooks may be signed with: its own `webhook_secrets` when it has
    /// them (legacy apps), else the app's client secret and, during a rotation, the previous one.
    pub fn webhook_secrets_for(&self, shop: &ShopDomain) -> Vec<String> {
        match self.shops.get(shop) {
            Some(c) if !c.webhook_secrets.is_empty() => c.webhook_secrets.clone(),
            _ => self
                .shopify_app
                .as_ref()
                .map(ShopifyApp::secrets)
                .unwrap_or_default(),
        }
    }

    /// Whether `token` is the admin token (compared in constant time).
    pub fn is_admin(&self, token: &str) -> bool {
        secrets_equal(token.as_bytes(), self.admin_token.as_bytes())
    }

    /// Whether a bearer token may act on a shop: the admin token on every configured shop, a
    /// shop's own API token on that shop only. Compared in constant time.
    pub fn token_sees(&self, token: &str, shop: &ShopDomain) -> Access {
        let admin = secrets_equal(token.as_bytes(), self.admin_token.as_bytes());
        let own = self.shops.get(shop).and_then(|c| c.api_token.as_deref());
        let any_shop = self
            .shops
            .values()
            .filter_map(|c| c.api_token.as_deref())
            .any(|t| secrets_equal(token.as_bytes(), t.as_bytes()));
        if !admin && !any_shop {
            return Access::Unknown;
        }
        let sees = self.shops.contains_key(shop)
            && (admin || own.is_some_and(|t| secrets_equal(token.as_bytes(), t.as_bytes())));
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

/// Whether two secrets (tokens, signatures, CSRF values) are equal, leaking neither content nor
/// length through timing: both sides are hashed to SHA-256's fixed 32 bytes and the digests
/// compared in constant time.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest as _, Sha256};
    use subtle::ConstantTimeEq as _;
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
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
    fn a_document_with_an_app_and_a_client_credentials_shop_parses_and_debug_hides_the_secret() {
        let raw = br#"{"admin_token":"0123456789abcdef-admin","shopify_app":{"client_id":"cid","client_secret":"app_secret_now","previous_client_secret":"app_secret_old","scopes":"read_orders,write_orders"},"shops":{"legacy.myshopify.com":{"access_token":"shpat_legacy","webhook_secrets":["whsec"]},"same-org.myshopify.com":{"client_credentials":true}},"aliexpress":{"app_key":"123","app_secret":"ae_secret"}}"#;
        let c = Credentials::parse(raw).unwrap();
        let cc = ShopDomain::parse("same-org.myshopify.com").unwrap();
        let legacy = ShopDomain::parse("legacy.myshopify.com").unwrap();
        let oauth = ShopDomain::parse("oauth-only.myshopify.com").unwrap();
        assert!(c.shop(&cc).unwrap().client_credentials);
        assert!(c.shop(&cc).unwrap().access_token.is_none());
        assert_eq!(c.webhook_secrets_for(&legacy), vec!["whsec".to_owned()]);
        assert_eq!(
            c.webhook_secrets_for(&cc),
            vec!["app_secret_now".to_owned(), "app_secret_old".to_owned()]
        );
        assert_eq!(c.webhook_secrets_for(&oauth).len(), 2);
        assert!(c.aliexpress.as_ref().unwrap().access_token.is_none());
        let dbg = format!("{c:?}");
        assert!(dbg.contains("cid"), "{dbg}");
        for secret in [
            "app_secret_now",
            "app_secret_old",
            "shpat_legacy",
            "ae_secret",
        ] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }

    #[test]
    fn a_shop_without_an_app_gets_no_webhook_secrets() {
        let raw = br#"{"admin_token":"0123456789abcdef-admin","shops":{}}"#;
        let c = Credentials::parse(raw).unwrap();
        let shop = ShopDomain::parse("x.myshopify.com").unwrap();
        assert!(c.webhook_secrets_for(&shop).is_empty());
    }

    #[test]
    fn malformed_documents_fail_with_a_clear_message() {
        for raw in [
            &b"not json"[..],
            br#"{"admin_token":"short","shops":{}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shops":{"evil.com":{"access_token":"x","webhook_secrets":["s"]}}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shops":{"a.myshopify.com":{"access_token":"x","webhook_secrets":[]}}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shops":{},"surprise":1}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shops":{"a.myshopify.com":{"client_credentials":true}}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shops":{"a.myshopify.com":{}}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shopify_app":{"client_id":"c","client_secret":"s","scopes":"read_orders"},"shops":{"a.myshopify.com":{"client_credentials":true,"access_token":"shpat_x","webhook_secrets":["s"]}}}"#,
            br#"{"admin_token":"0123456789abcdef-admin","shopify_app":{"client_id":"c","client_secret":"","scopes":"read_orders"},"shops":{}}"#,
        ] {
            assert!(matches!(Credentials::parse(raw), Err(CredentialsError::Malformed(_))));
        }
    }

    #[test]
    fn a_parse_error_never_quotes_the_document() {
        let secret = "s3cr3t-VALUE-never-in-errors";
        for raw in [
            format!(
                r#"{{"admin_token":"0123456789abcdef-admin","shops":{{}},"aliexpress":{{"app_key":"1","app_secret":"x","expire_time":"{secret}"}}}}"#
            ),
            format!(r#"{{"admin_token":"0123456789abcdef-admin","shops":{{}},"{secret}":1}}"#),
            format!(
                r#"{{"admin_token":"0123456789abcdef-admin","shops":{{"{secret}":{{"access_token":"x","webhook_secrets":["s"]}}}}}}"#
            ),
            format!(r#"{{"admin_token":["{secret}"],"shops":{{}}}}"#),
            format!(r#"{{"admin_token":"{secret}", "#),
        ] {
            let err = Credentials::parse(raw.as_bytes()).unwrap_err().to_string();
            assert!(!err.contains(secret), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn a_shop_api_token_equal_to_the_admin_token_or_to_another_shops_is_refused() {
        let doc = |a: &str, b: &str| {
            format!(
                r#"{{"admin_token":"0123456789abcdef-admin","shops":{{
                "a.myshopify.com":{{"access_token":"x","webhook_secrets":["s"],"api_token":"{a}"}},
                "b.myshopify.com":{{"access_token":"y","webhook_secrets":["t"],"api_token":"{b}"}}}}}}"#
            )
        };
        assert!(
            Credentials::parse(doc("a-token-0123456789", "b-token-0123456789").as_bytes()).is_ok()
        );
        for (a, b) in [
            ("0123456789abcdef-admin", "b-token-0123456789"),
            ("a-token-0123456789", "0123456789abcdef-admin"),
            ("same-token-0123456789", "same-token-0123456789"),
        ] {
            let err = Credentials::parse(doc(a, b).as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains("api_token"), "{err}");
            assert!(!err.contains(a) && !err.contains(b), "{err}");
        }
    }

    #[test]
    fn tokens_are_compared_whatever_their_lengths() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
        assert!(
            !secrets_equal(b"abcd", b"abc"),
            "a longer guess is not a match"
        );
        assert!(secrets_equal(b"", b""));
        let long = vec![b'x'; 4096];
        assert!(secrets_equal(&long, &long.clone()));
        assert!(!secrets_equal(&long, &long[..4095]));
    }
}
