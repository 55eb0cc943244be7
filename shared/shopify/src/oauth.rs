//! Shopify OAuth for a merchant's own Dev Dashboard app: the checks on the authorization callback
//! (query HMAC, shop domain, timestamp window) and the token endpoint
//! (`POST {admin base}/admin/oauth/access_token`) for the three grants dropsync uses: the
//! authorization code with expiring offline tokens, the refresh with rotation, and the client
//! credentials grant.
//!
//! Tokens pass through here and nowhere are they logged; [`TokenGrant`]'s `Debug` hides them and
//! error texts never carry them.

use dropsync_http::encode_component as encode;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How far a callback's `timestamp` may be from now, either way.
pub const TIMESTAMP_WINDOW_SECS: i64 = 90;

/// Whether `shop` is a plain `*.myshopify.com` domain (Shopify's own pattern:
/// `^[a-zA-Z0-9][a-zA-Z0-9\-]*\.myshopify\.com$`). Nothing else is accepted: no admin URLs, no
/// ports, no paths, no userinfo.
pub fn is_valid_shop_domain(shop: &str) -> bool {
    let Some(handle) = shop.strip_suffix(".myshopify.com") else {
        return false;
    };
    let mut chars = handle.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    handle.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The message Shopify signs on an OAuth redirect: every query parameter except `hmac` and
/// `signature`, sorted by key, as `k=v` joined with `&` (a repeated key's values joined by `,`).
/// `params` are the decoded pairs in any order.
pub fn query_message(params: &[(String, String)]) -> String {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in params {
        if k == "hmac" || k == "signature" {
            continue;
        }
        grouped.entry(k.as_str()).or_default().push(v.as_str());
    }
    grouped
        .iter()
        .map(|(k, vs)| format!("{k}={}", vs.join(",")))
        .collect::<Vec<_>>()
        .join("&")
}

/// The lowercase hex HMAC-SHA256 of [`query_message`] under `secret`.
pub fn query_hmac(secret: &str, params: &[(String, String)]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(query_message(params).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks the `hmac` parameter of an OAuth redirect against each secret (the current client
/// secret, then the previous one during a rotation), in constant time.
pub fn verify_query_hmac(secrets: &[String], params: &[(String, String)]) -> bool {
    let given: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "hmac")
        .map(|(_, v)| v.as_str())
        .collect();
    let [given] = given.as_slice() else {
        return false;
    };
    let Ok(given) = hex::decode(given.to_ascii_lowercase()) else {
        return false;
    };
    let mut ok = false;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            continue;
        };
        mac.update(query_message(params).as_bytes());
        // `verify_slice` compares in constant time.
        ok |= mac.verify_slice(&given).is_ok();
    }
    ok
}

/// Whether a callback's `timestamp` (seconds) is within [`TIMESTAMP_WINDOW_SECS`] of `now_secs`.
pub fn timestamp_is_fresh(timestamp: &str, now_secs: i64) -> bool {
    timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|t| (now_secs - t).abs() <= TIMESTAMP_WINDOW_SECS)
}

/// A token endpoint answer. `Debug` shows lifetimes and scopes, never the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: String,
    /// The granted scopes, comma-separated as Shopify answers them.
    pub scope: String,
    /// Seconds the access token lives; `None` for a non-expiring token.
    pub expires_in: Option<u64>,
    /// Present for expiring offline tokens (authorization code with `expiring=1`, and refreshes).
    pub refresh_token: Option<String>,
    pub refresh_token_expires_in: Option<u64>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.is_some())
            .field("refresh_token_expires_in", &self.refresh_token_expires_in)
            .finish_non_exhaustive()
    }
}

/// Why Shopify refused for good: the merchant must connect again (or use another grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400 `invalid_grant`: the code or refresh token is expired, used or revoked.
    InvalidGrant,
    /// 401 on a refresh: expired, revoked, replayed, or the app was uninstalled.
    Unauthorized,
    /// The client credentials grant across organizations: use OAuth instead.
    ShopNotPermitted,
    /// The app is not installed on the shop.
    AppNotInstalled,
    /// Wrong client id or secret.
    InvalidClient,
}

impl Refusal {
    /// What the merchant should do, in words for the attention list.
    pub fn advice(self) -> &'static str {
        match self {
            Refusal::InvalidGrant | Refusal::Unauthorized => {
                "Shopify no longer accepts this shop's authorization: connect the shop again"
            }
            Refusal::ShopNotPermitted => {
                "the client credentials grant only works for stores in the app's own organization: connect this shop with OAuth (Connect) instead"
            }
            Refusal::AppNotInstalled => "install the app on the shop, then connect it again",
            Refusal::InvalidClient => {
                "Shopify does not recognise the app's client id or secret: check shopify_app in the credentials secret"
            }
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Refusal::InvalidGrant => "invalid_grant",
            Refusal::Unauthorized => "unauthorized",
            Refusal::ShopNotPermitted => "shop_not_permitted",
            Refusal::AppNotInstalled => "app_not_installed",
            Refusal::InvalidClient => "invalid_client",
        }
    }
}

/// Why a token request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Terminal: retrying with the same grant cannot help.
    #[error("Shopify refused the grant: {}", .0.code())]
    Refused(Refusal),
    /// 5xx, 429, timeouts, connection failures: try again later with the same grant.
    #[error("Shopify's token endpoint is unavailable: {0}")]
    Transient(String),
    /// Any other answer we cannot use (bad request, malformed body).
    #[error("unexpected answer from Shopify's token endpoint: {0}")]
    Unexpected(String),
}

impl TokenError {
    pub fn is_transient(&self) -> bool {
        matches!(self, TokenError::Transient(_))
    }
}

/// The grant a token request asks for.
#[derive(Clone, Copy)]
enum Grant<'a> {
    Code(&'a str),
    Refresh(&'a str),
    ClientCredentials,
}

/// The token endpoint client. `base_override` is `SHOPIFY_ADMIN_URL` (sandbox, local stack).
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    base_override: Option<String>,
}

impl TokenClient {
    pub fn new(base_override: Option<String>) -> Result<Self, TokenError> {
        let http = dropsync_http::client_builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| TokenError::Unexpected(e.to_string()))?;
        Ok(Self {
            http,
            base_override: base_override
                .map(|b| b.trim().trim_end_matches('/').to_owned())
                .filter(|b| !b.is_empty()),
        })
    }

    /// `{admin base}`: the override, else `https://{shop}`.
    pub fn admin_base(&self, shop: &str) -> String {
        self.base_override
            .clone()
            .unwrap_or_else(|| format!("https://{shop}"))
    }

    /// The authorize URL the merchant's browser is sent to.
    pub fn authorize_url(
        &self,
        shop: &str,
        client_id: &str,
        scopes: &str,
        redirect_uri: &str,
        state: &str,
    ) -> String {
        let url = format!(
            "{}/admin/oauth/authorize?client_id={}&scope={}&redirect_uri={}&state={}",
            self.admin_base(shop),
            encode(client_id),
            encode(scopes),
            encode(redirect_uri),
            encode(state),
        );
        // A shared base (sandbox, local stack) cannot tell shops apart by host.
        match self.base_override {
            Some(_) => format!("{url}&shop={}", encode(shop)),
            None => url,
        }
    }

    /// Exchanges an authorization code for an expiring offline token pair (`expiring=1`).
    pub async fn exchange_code(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
        code: &str,
    ) -> Result<TokenGrant, TokenError> {
        self.request(shop, client_id, client_secret, Grant::Code(code))
            .await
    }

    /// Trades a refresh token for a new pair; the old refresh token is retired by the new one.
    pub async fn refresh(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> Result<TokenGrant, TokenError> {
        self.request(
            shop,
            client_id,
            client_secret,
            Grant::Refresh(refresh_token),
        )
        .await
    }

    /// Mints a token with the client credentials grant (same-organization stores only).
    pub async fn client_credentials(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<TokenGrant, TokenError> {
        self.request(shop, client_id, client_secret, Grant::ClientCredentials)
            .await
    }

    async fn request(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
        grant: Grant<'_>,
    ) -> Result<TokenGrant, TokenError> {
        let mut form: Vec<(&str, &str)> =
            vec![("client_id", client_id), ("client_secret", client_secret)];
        match grant {
            Grant::Code(code) => {
                form.push(("code", code));
                form.push(("expiring", "1"));
            }
            Grant::Refresh(token) => {
                form.push(("grant_type", "refresh_token"));
                form.push(("refresh_token", token));
            }
            Grant::ClientCredentials => form.push(("grant_type", "client_credentials")),
        }
        let url = format!("{}/admin/oauth/access_token", self.admin_base(shop));
        let resp = self
            .http
            .post(&url)
            .header("X-Shopify-Shop-Domain", shop)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            // reqwest's error text may include the URL, never the form body.
            .map_err(|e| TokenError::Transient(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| TokenError::Transient(e.without_url().to_string()))?;
        classify(status, &body, matches!(grant, Grant::Refresh(_)))
    }
}

/// Turns a token endpoint answer into a grant or a typed error.
pub fn classify(status: u16, body: &str, refreshing: bool) -> Result<TokenGrant, TokenError> {
    if status == 429 || status >= 500 {
        return Err(TokenError::Transient(format!("HTTP {status}")));
    }
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let error_code = json
        .get("error")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let text = format!(
        "{} {}",
        error_code,
        json.get("error_description")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    );
    if !(200..300).contains(&status) || !error_code.is_empty() {
        let lower = format!("{text} {}", body.chars().take(300).collect::<String>()).to_lowercase();
        let refusal = if lower.contains("shop_not_permitted") {
            Some(Refusal::ShopNotPermitted)
        } else if lower.contains("app_not_installed") {
            Some(Refusal::AppNotInstalled)
        } else if lower.contains("invalid_grant") {
            Some(Refusal::InvalidGrant)
        } else if lower.contains("invalid_client") {
            Some(Refusal::InvalidClient)
        } else if status == 401 && refreshing {
            Some(Refusal::Unauthorized)
        } else if status == 401 {
            Some(Refusal::InvalidClient)
        } else {
            None
        };
        return Err(match refusal {
            Some(r) => TokenError::Refused(r),
            None => TokenError::Unexpected(format!("HTTP {status} {}", error_code)),
        });
    }
    let access_token = json
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::Unexpected("no access_token in the answer".into()))?
        .to_owned();
    let num = |k: &str| {
        json.get(k).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    Ok(TokenGrant {
        access_token,
        scope: json
            .get("scope")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        expires_in: num("expires_in"),
        refresh_token: json
            .get("refresh_token")
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        refresh_token_expires_in: num("refresh_token_expires_in"),
    })
}

/// The granted scopes as a list; a granted `write_x` implies `read_x`.
pub fn granted_scopes(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = scope
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let implied: Vec<String> = out
        .iter()
        .filter_map(|s| s.strip_prefix("write_").map(|r| format!("read_{r}")))
        .collect();
    for s in implied {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const VECTOR_HMAC: &str = "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf";

    #[test]
    fn the_published_vector_signs_and_verifies_with_the_secret_hush() {
        let q = pairs(&[
            ("shop", "some-shop.myshopify.com"),
            ("timestamp", "1337178173"),
            ("hmac", VECTOR_HMAC),
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            ("state", "0.6784241404160823"),
        ]);
        assert_eq!(
            query_message(&q),
            "code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173"
        );
        assert_eq!(query_hmac("hush", &q), VECTOR_HMAC);
        assert!(verify_query_hmac(&["hush".to_owned()], &q));
        assert!(verify_query_hmac(
            &["new".to_owned(), "hush".to_owned()],
            &q
        ));
        assert!(!verify_query_hmac(&["hus".to_owned()], &q));
    }

    #[test]
    fn a_tampered_query_a_missing_or_doubled_hmac_is_refused() {
        let base = [
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            ("shop", "some-shop.myshopify.com"),
            ("state", "0.6784241404160823"),
            ("timestamp", "1337178173"),
        ];
        let mut tampered = pairs(&base);
        tampered[1].1 = "other-shop.myshopify.com".into();
        tampered.push(("hmac".into(), VECTOR_HMAC.into()));
        assert!(!verify_query_hmac(&["hush".to_owned()], &tampered));
        assert!(!verify_query_hmac(&["hush".to_owned()], &pairs(&base)));
        let mut doubled = pairs(&base);
        doubled.push(("hmac".into(), VECTOR_HMAC.into()));
        doubled.push(("hmac".into(), VECTOR_HMAC.into()));
        assert!(!verify_query_hmac(&["hush".to_owned()], &doubled));
        let mut not_hex = pairs(&base);
        not_hex.push(("hmac".into(), "zz".into()));
        assert!(!verify_query_hmac(&["hush".to_owned()], &not_hex));
        assert!(!verify_query_hmac(&[], &pairs(&base)));
    }

    #[test]
    fn only_plain_myshopify_domains_are_shops() {
        for ok in [
            "a.myshopify.com",
            "my-shop-1.myshopify.com",
            "A1.myshopify.com",
        ] {
            assert!(is_valid_shop_domain(ok), "{ok}");
        }
        for bad in [
            "",
            ".myshopify.com",
            "-a.myshopify.com",
            "a.b.myshopify.com",
            "evil.com",
            "a.myshopify.com.evil.com",
            "a.myshopify.com:443",
            "a.myshopify.com/x",
            "user@a.myshopify.com",
            "admin.shopify.com/store/a",
            "a_b.myshopify.com",
        ] {
            assert!(!is_valid_shop_domain(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps_outside_ninety_seconds_either_way_are_stale() {
        assert!(timestamp_is_fresh("1000", 1000));
        assert!(timestamp_is_fresh("910", 1000));
        assert!(timestamp_is_fresh("1090", 1000));
        assert!(!timestamp_is_fresh("909", 1000));
        assert!(!timestamp_is_fresh("1091", 1000));
        assert!(!timestamp_is_fresh("soon", 1000));
    }

    #[test]
    fn terminal_refusals_are_told_from_transient_failures() {
        let refused = |s, b, r| classify(s, b, r).err();
        assert_eq!(
            refused(
                400,
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
                true
            ),
            Some(TokenError::Refused(Refusal::InvalidGrant))
        );
        assert_eq!(
            refused(401, "", true),
            Some(TokenError::Refused(Refusal::Unauthorized))
        );
        assert_eq!(
            refused(
                400,
                r#"{"error":"shop_not_permitted","error_description":"Client credentials cannot be performed on this shop."}"#,
                false
            ),
            Some(TokenError::Refused(Refusal::ShopNotPermitted))
        );
        assert_eq!(
            refused(400, r#"{"error":"app_not_installed"}"#, false),
            Some(TokenError::Refused(Refusal::AppNotInstalled))
        );
        for status in [500, 502, 503, 429] {
            assert!(classify(status, "", true).unwrap_err().is_transient());
        }
        assert!(matches!(
            classify(400, "{}", false),
            Err(TokenError::Unexpected(_))
        ));
    }

    #[test]
    fn a_grant_parses_and_its_debug_hides_the_tokens() {
        let g = classify(
            200,
            r#"{"access_token":"shpat_secret_a","scope":"write_orders","expires_in":3600,"refresh_token":"shprt_secret_r","refresh_token_expires_in":7776000}"#,
            false,
        )
        .unwrap();
        assert_eq!(g.expires_in, Some(3600));
        assert_eq!(g.refresh_token_expires_in, Some(7_776_000));
        let dbg = format!("{g:?}");
        assert!(
            !dbg.contains("shpat_secret_a") && !dbg.contains("shprt_secret_r"),
            "{dbg}"
        );
        assert_eq!(
            granted_scopes(&g.scope),
            vec!["read_orders", "write_orders"]
        );
    }

    #[test]
    fn the_authorize_url_carries_the_encoded_redirect_and_state() {
        let c = TokenClient::new(None).unwrap();
        let url = c.authorize_url(
            "a.myshopify.com",
            "cid",
            "read_orders,write_orders",
            "https://x.example/connect/shopify/callback",
            "n1",
        );
        assert_eq!(
            url,
            "https://a.myshopify.com/admin/oauth/authorize?client_id=cid&scope=read_orders%2Cwrite_orders&redirect_uri=https%3A%2F%2Fx.example%2Fconnect%2Fshopify%2Fcallback&state=n1"
        );
    }
}
