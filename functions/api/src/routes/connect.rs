//! `/connect/*`, `GET /connections` and `POST /shops/{shop}/webhooks/reconcile`.
//!
//! Callbacks come from the merchant's browser, redirected by Shopify or AliExpress: they carry no
//! bearer token and are authenticated by their HMAC and single-use state instead.

use crate::{ApiError, json_response};
use dropsync_app::connect::{ConnectError, ConnectService};
use dropsync_app::credentials::Credentials;
use dropsync_domain::ShopDomain;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::json;

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::BadRequest(m)
            | ConnectError::NotConfigured(m)
            | ConnectError::Refused(m) => ApiError::BadRequest(m),
            ConnectError::Forbidden(_) => ApiError::Unauthorized,
            ConnectError::Unavailable => ApiError::Unavailable,
        }
    }
}

/// Who may start a connection or read connections: today the admin bearer token. The dashboard
/// extends this with its signed-in session.
pub fn may_manage_connections(req: &Request, credentials: &Credentials) -> Result<(), ApiError> {
    let token = crate::the_bearer_token(req)?;
    if credentials.is_admin(token) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Whether the shop has a connection in the table (OAuth or client credentials).
pub async fn is_connected(
    store: &dropsync_store::Store,
    shop: &ShopDomain,
) -> Result<bool, ApiError> {
    use dropsync_store::ConnectionStore;
    Ok(store.get_connection(shop).await?.is_some())
}

/// Decoded query pairs (`+` is a space, `%XX` a byte); a malformed escape is a 400.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(q) = query else {
        return Ok(Vec::new());
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// One strictly decoded query component: every `%` must start a two-digit escape and the result
/// must be UTF-8, so the pairs a callback's signature is checked over are exactly the ones sent.
fn decode(raw: &str) -> Result<String, ApiError> {
    let bad = || ApiError::BadRequest("malformed query".into());
    let escapes_well_formed = raw.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_well_formed {
        return Err(bad());
    }
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| bad())
}

fn redirect(location: &str) -> Result<Response<Body>, ApiError> {
    let mut res = Response::new(Body::Empty);
    *res.status_mut() = StatusCode::FOUND;
    res.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location).map_err(|_| ApiError::Internal)?,
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn service(connect: Option<&ConnectService>) -> Result<&ConnectService, ApiError> {
    connect.ok_or_else(|| {
        ApiError::BadRequest("connecting stores needs PUBLIC_URL to be configured".into())
    })
}

/// `GET /connect/shopify?shop=`, signed in; or, carrying Shopify's `hmac`, the Dev Dashboard
/// app's App URL opened by Shopify on install (authenticated by its hmac, like a callback).
pub async fn start_shopify(
    connect: Option<&ConnectService>,
    req: &Request,
    credentials: &Credentials,
) -> Result<Response<Body>, ApiError> {
    let params = query_pairs(req.uri().query())?;
    if params.iter().any(|(k, _)| k == "hmac") {
        let url = service(connect)?.install_shopify(&params).await?;
        return redirect(&url);
    }
    may_manage_connections(req, credentials)?;
    let shop = params
        .iter()
        .find(|(k, _)| k == "shop")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::BadRequest("missing shop".into()))?;
    let url = service(connect)?.start_shopify(shop).await?;
    redirect(&url)
}

/// `GET /connect/shopify/callback`.
pub async fn shopify_callback(
    connect: Option<&ConnectService>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let connect = service(connect)?;
    let params = query_pairs(req.uri().query())?;
    let shop = connect.finish_shopify(&params).await?;
    redirect(&format!(
        "{}/app?connected={}",
        connect.public_url,
        shop.as_str()
    ))
}

/// `GET /connect/aliexpress`.
pub async fn start_aliexpress(
    connect: Option<&ConnectService>,
    req: &Request,
    credentials: &Credentials,
) -> Result<Response<Body>, ApiError> {
    may_manage_connections(req, credentials)?;
    let url = service(connect)?.start_aliexpress().await?;
    redirect(&url)
}

/// `GET /connect/aliexpress/callback`.
pub async fn aliexpress_callback(
    connect: Option<&ConnectService>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let connect = service(connect)?;
    let params = query_pairs(req.uri().query())?;
    connect.finish_aliexpress(&params).await?;
    redirect(&format!("{}/app?connected=aliexpress", connect.public_url))
}

/// `GET /connections`.
pub async fn connections(
    connect: Option<&ConnectService>,
    req: &Request,
    credentials: &Credentials,
) -> Result<Response<Body>, ApiError> {
    may_manage_connections(req, credentials)?;
    let report = service(connect)?.connections().await?;
    Ok(json_response(StatusCode::OK, &report))
}

/// `POST /shops/{shop}/webhooks/reconcile`.
pub async fn reconcile(
    connect: Option<&ConnectService>,
    req: &Request,
    credentials: &Credentials,
    shop: &ShopDomain,
) -> Result<Response<Body>, ApiError> {
    may_manage_connections(req, credentials)?;
    let webhooks = service(connect)?.reconcile_webhooks(shop).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"shop": shop.as_str(), "webhooks": webhooks}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_and_bad_escapes_refused() {
        let p = query_pairs(Some("shop=a.myshopify.com&state=a%2Bb+c&hmac=")).unwrap();
        assert_eq!(p[1], ("state".to_owned(), "a+b c".to_owned()));
        assert_eq!(p[2].1, "");
        assert!(query_pairs(Some("x=%zz")).is_err());
        assert!(query_pairs(Some("x=%4")).is_err());
        assert!(query_pairs(Some("x=%")).is_err());
        assert!(query_pairs(Some("x=%FF")).is_err(), "not UTF-8");
        let p = query_pairs(Some("x=%C3%A9&&y")).unwrap();
        assert_eq!(
            p,
            vec![
                ("x".to_owned(), "é".to_owned()),
                ("y".to_owned(), String::new())
            ]
        );
    }
}
