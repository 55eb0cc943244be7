//! The connect tests' shared fixture: an API with the connect service over moto and the sandbox
//! Shopify's OAuth, and helpers to walk the install (consent, callback) through the real routes.

#![allow(dead_code)] // each test module uses its own subset

pub(crate) use dropsync_aliexpress::IopClient;
pub(crate) use dropsync_api::Api;
pub(crate) use dropsync_app::connect::ConnectService;
pub(crate) use dropsync_app::queue::SqsQueue;
pub(crate) use dropsync_domain::ShopDomain;
pub(crate) use dropsync_shopify::admin::subscriptions::WebhookSubscriptions;
pub(crate) use dropsync_shopify::admin::{AdminClient, AdminConfig, AdminError};
pub(crate) use dropsync_shopify::oauth::TokenClient;
pub(crate) use dropsync_store::Store;
pub(crate) use dropsync_tests::*;
pub(crate) use serde_json::json;
pub(crate) use std::sync::Arc;

pub(crate) const ADMIN: &str = "admin-token-connect-0123456789";
pub(crate) const SECRET: &str = "app-secret-connect";
pub(crate) const PUBLIC: &str = "http://127.0.0.1:9";

pub(crate) struct Fx {
    pub(crate) api: Api<IopClient, SqsQueue>,
    pub(crate) connect: Arc<ConnectService>,
    pub(crate) store: Store,
    pub(crate) base: String,
    pub(crate) shop: ShopDomain,
    pub(crate) cc_shop: ShopDomain,
}

pub(crate) async fn fixture() -> Fx {
    fixture_with_queue(None).await
}

/// The fixture whose connect service queues the pushes that waited for a reconnect on `queue`.
pub(crate) async fn fixture_with_queue(queue: Option<SqsQueue>) -> Fx {
    let store = fresh_store().await;
    let base = shopify_sandbox();
    let client_id = unique("cid");
    sandbox_post(
        &base,
        "/_admin/oauth/app",
        json!({"client_id": client_id, "client_secret": SECRET}),
    )
    .await;
    let shop = shop(&unique("oauth").to_lowercase());
    let cc_shop = self::shop(&unique("cc").to_lowercase());
    for s in [&shop, &cc_shop] {
        sandbox_post(
            &base,
            "/_admin/shops",
            json!({"shop": s.as_str(), "access_token": format!("shpat_placeholder_{s}"), "webhook_secret": SECRET,
                   "bucket_size": 20000, "restore_rate": 10000}),
        )
        .await;
    }
    let creds = credentials(json!({
        "admin_token": ADMIN,
        "shopify_app": {"client_id": client_id, "client_secret": SECRET, "scopes": "read_orders,write_orders"},
        "shops": { cc_shop.as_str(): {"client_credentials": true} },
    }));
    let tokens = dropsync_app::tokens::shared(&store, &creds, Some(base.clone())).unwrap();
    let admin = AdminClient::new(AdminConfig {
        base_override: Some(base.clone()),
        ..AdminConfig::default()
    })
    .unwrap();
    let connect = Arc::new(ConnectService {
        store: store.clone(),
        credentials: creds.clone(),
        tokens,
        token_client: TokenClient::new(Some(base.clone())).unwrap(),
        admin: Arc::new(admin),
        public_url: PUBLIC.into(),
        aliexpress_api_url: aliexpress_sandbox(),
        http: reqwest::Client::new(),
        tracking_queue: queue,
    });
    Fx {
        api: Api {
            store: store.clone(),
            credentials: creds,
            sync: None,
            place: None,
            connect: Some(connect.clone()),
            reconcile: None,
        },
        connect,
        store,
        base,
        shop,
        cc_shop,
    }
}

/// Status, `Location` and body text of one request to the API.
pub(crate) async fn raw(
    fx: &Fx,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let res = fx
        .api
        .handle(apigw_request(method, path, &headers, b""))
        .await;
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = match res.into_body() {
        lambda_http::Body::Text(t) => t,
        lambda_http::Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    (status, location, body)
}

/// Follows an authorize redirect to the sandbox, which consents at once: where it sends the
/// merchant back (the callback URL with its query).
pub(crate) async fn sandbox_consents(authorize_url: &str) -> String {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(authorize_url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 302);
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Starts a connect and lets the sandbox "consent": the callback's query pairs.
pub(crate) async fn consent(fx: &Fx, shop: &ShopDomain) -> Vec<(String, String)> {
    let (status, location, _) = raw(
        fx,
        "GET",
        &format!("/connect/shopify?shop={shop}"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 302);
    assert!(
        location.starts_with(&format!("{}/admin/oauth/authorize?", fx.base)),
        "{location}"
    );
    assert!(
        location.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fconnect%2Fshopify%2Fcallback")
    );
    let back = sandbox_consents(&location).await;
    let (path, query) = back.split_once('?').unwrap();
    assert_eq!(path, format!("{PUBLIC}/connect/shopify/callback"));
    query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

pub(crate) fn to_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) async fn callback(fx: &Fx, pairs: &[(String, String)]) -> (u16, String, String) {
    raw(
        fx,
        "GET",
        &format!("/connect/shopify/callback?{}", to_query(pairs)),
        None,
    )
    .await
}
