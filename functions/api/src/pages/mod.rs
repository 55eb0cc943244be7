//! The merchant dashboard: DSers' order screens as server-rendered HTML under `/app`, over the
//! same store and services as the JSON routes. Every action is a plain form POST answered with a
//! redirect and a one-shot flash message (post/redirect/get), so nothing needs JavaScript.
//!
//! Security: a session is a random id in a signed, HttpOnly, SameSite=Lax cookie, looked up in
//! the table on every request (sign-out deletes it); every POST carries the session's CSRF token
//! or is refused with 403 before anything is read or written; every answer carries a strict CSP
//! and pages with order data are never cached.

mod handlers;
mod mappings;
pub mod session;
pub mod views;

use crate::{Api, ApiError, MAX_BODY};
use askama::Template;
use dropsync_aliexpress::AliExpressApi;
use dropsync_app::credentials::secrets_equal;
use dropsync_app::now_ms;
use dropsync_app::queue::TrackingQueue;
use dropsync_domain::ShopDomain;
use dropsync_store::SessionRecord;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use session::{FLASH_COOKIE, FlashKind, Keys, SESSION_COOKIE, SESSION_SECS};
use std::sync::OnceLock;
use tracing::{info, warn};
use views::{Chrome, Flash};

/// The security policy of every dashboard answer: no inline script or style, no framing, forms
/// only to this origin.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Whether cookies get `Secure`: when the public URL is https (read once).
fn secure_cookies() -> bool {
    static SECURE: OnceLock<bool> = OnceLock::new();
    *SECURE.get_or_init(|| {
        std::env::var("PUBLIC_URL")
            .is_ok_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"))
    })
}

/// A signed-in session, as the request named it.
#[derive(Debug)]
struct Session {
    key: String,
    rec: SessionRecord,
}

/// What a dashboard request ends in.
enum Outcome {
    Page(String),
    /// Where to go next, the flash to show there, and cookies to set on the way.
    Redirect(String, Option<(FlashKind, String)>, Vec<String>),
}

/// A redirect with a flash message.
fn done(to: String, kind: FlashKind, text: impl Into<String>) -> Outcome {
    Outcome::Redirect(to, Some((kind, text.into())), Vec::new())
}

/// Dashboard-level failures, each a page in plain words.
#[derive(Debug)]
enum PageError {
    /// Not signed in: back to the sign-in form.
    SignIn,
    /// A POST without a valid CSRF token.
    Csrf,
    NotFound,
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::Api(e)
    }
}

impl From<dropsync_store::StoreError> for PageError {
    fn from(e: dropsync_store::StoreError) -> Self {
        PageError::Api(e.into())
    }
}

fn html(status: StatusCode, body: String, no_store: bool) -> Response<Body> {
    let mut res = Response::new(Body::Text(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if no_store {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

fn security_headers(res: &mut Response<Body>) {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn redirect(to: &str) -> Response<Body> {
    let mut res = Response::new(Body::Empty);
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn add_cookie(res: &mut Response<Body>, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn form(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge);
    }
    std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("bad form".into()))?;
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The first value of a query parameter, decoded leniently (a page link, not a signed callback).
fn query_get(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn render<T: Template>(t: &T) -> Result<String, PageError> {
    t.render().map_err(|e| {
        warn!(error = %e, "template failed");
        PageError::Api(ApiError::Internal)
    })
}

impl<A: AliExpressApi + 'static, Q: TrackingQueue + 'static> Api<A, Q> {
    fn keys(&self) -> Keys {
        Keys::derive(&self.credentials.admin_token)
    }

    /// Answers one request under `/app`.
    pub async fn handle_app(&self, req: &Request) -> Response<Body> {
        let keys = self.keys();
        let flash = session::cookie(req.headers(), FLASH_COOKIE)
            .and_then(|v| keys.verify_flash(v))
            .map(|(kind, text)| Flash {
                ok: kind == FlashKind::Ok,
                text,
            });
        let had_flash = session::cookie(req.headers(), FLASH_COOKIE).is_some();
        let path = req.uri().path().to_owned();
        // Assets are shared and cached: they never read or set a cookie.
        if let Some(asset) = path.strip_prefix("/app/static/") {
            let mut res = static_asset(req.method(), asset);
            security_headers(&mut res);
            return res;
        }
        let mut res = {
            match self.app_dispatch(req, &keys, flash.clone()).await {
                Ok(Outcome::Page(body)) => html(StatusCode::OK, body, true),
                Ok(Outcome::Redirect(to, msg, cookies)) => {
                    let mut r = redirect(&to);
                    for c in cookies {
                        add_cookie(&mut r, c);
                    }
                    if let Some((kind, text)) = msg {
                        add_cookie(
                            &mut r,
                            session::set_cookie(
                                FLASH_COOKIE,
                                &keys.flash_value(kind, &text),
                                60,
                                secure_cookies(),
                            ),
                        );
                    }
                    r
                }
                Err(PageError::SignIn) => {
                    if req.method() == Method::GET {
                        redirect("/app")
                    } else {
                        self.error_page(StatusCode::FORBIDDEN, "Signed out", "Your session ended. Sign in again and repeat the action.")
                    }
                }
                Err(PageError::Csrf) => self.error_page(
                    StatusCode::FORBIDDEN,
                    "Refused",
                    "This form is out of date or did not come from dropsync, so nothing was changed. Reload the page and try again.",
                ),
                Err(PageError::NotFound) | Err(PageError::Api(ApiError::NotFound)) => self.error_page(
                    StatusCode::NOT_FOUND,
                    "Not found",
                    "There is no such page, or this sign-in may not see that shop.",
                ),
                Err(PageError::Api(e)) => {
                    let status = e.status();
                    let text = if status.is_server_error() {
                        "dropsync could not answer just now. Try again in a moment.".to_owned()
                    } else {
                        e.to_string()
                    };
                    self.error_page(status, "Something went wrong", &text)
                }
            }
        };
        // The flash was shown (or was stale): it goes now, unless this answer set a new one.
        let sets_flash = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(FLASH_COOKIE.as_bytes()));
        if had_flash && !sets_flash {
            add_cookie(
                &mut res,
                session::set_cookie(FLASH_COOKIE, "", 0, secure_cookies()),
            );
        }
        security_headers(&mut res);
        res
    }

    fn error_page(&self, status: StatusCode, heading: &str, text: &str) -> Response<Body> {
        let page = views::ErrorPage {
            chrome: chrome(heading, None, "", None, String::new(), 0),
            heading: heading.to_owned(),
            text: text.to_owned(),
        };
        let body = page
            .render()
            .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".into());
        html(status, body, true)
    }

    async fn session(&self, req: &Request, keys: &Keys) -> Result<Option<Session>, PageError> {
        let Some(id) =
            session::cookie(req.headers(), SESSION_COOKIE).and_then(|v| keys.verify_session(v))
        else {
            return Ok(None);
        };
        let key = session::storage_key(&id);
        let now = now_ms() / 1000;
        Ok(self
            .store
            .get_session(&key, now)
            .await?
            .map(|rec| Session { key, rec }))
    }

    /// The shops a session sees, in name order: those of the credentials document and, for the
    /// admin, every shop connected by OAuth or client credentials (they live in the table).
    async fn visible_shops(&self, s: &Session) -> Result<Vec<ShopDomain>, PageError> {
        use dropsync_store::ConnectionStore;
        let mut shops: Vec<ShopDomain> = self
            .credentials
            .shops
            .keys()
            .filter(|shop| s.rec.admin || s.rec.shops.contains(shop))
            .cloned()
            .collect();
        if s.rec.admin {
            shops.extend(
                self.store
                    .list_connections()
                    .await?
                    .into_iter()
                    .map(|c| c.shop),
            );
        }
        shops.sort();
        shops.dedup();
        Ok(shops)
    }

    async fn shop_for(&self, s: &Session, raw: &str) -> Result<ShopDomain, PageError> {
        let shop = ShopDomain::parse(raw).map_err(|_| PageError::NotFound)?;
        let known = self.credentials.shops.contains_key(&shop)
            || (s.rec.admin && crate::routes::connect::is_connected(&self.store, &shop).await?);
        if known && (s.rec.admin || s.rec.shops.contains(&shop)) {
            Ok(shop)
        } else {
            Err(PageError::NotFound)
        }
    }

    async fn chrome_for(
        &self,
        s: &Session,
        title: &str,
        shop: Option<&ShopDomain>,
        nav: &'static str,
        flash: Option<Flash>,
    ) -> Result<Chrome, PageError> {
        Ok(chrome(
            title,
            shop,
            nav,
            flash,
            s.rec.csrf.clone(),
            self.visible_shops(s).await?.len(),
        ))
    }

    async fn app_dispatch(
        &self,
        req: &Request,
        keys: &Keys,
        flash: Option<Flash>,
    ) -> Result<Outcome, PageError> {
        let path = req.uri().path();
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let segs: Vec<&str> = path.split('/').skip(2).collect();
        let method = req.method().clone();
        let query = req.uri().query();
        let session = self.session(req, keys).await?;

        // Signing in and out come before the session checks.
        match (method.as_str(), segs.as_slice()) {
            ("GET", []) if session.is_none() => {
                let page = views::LoginPage {
                    chrome: chrome("Sign in", None, "", flash, String::new(), 0),
                    error: None,
                };
                return Ok(Outcome::Page(render(&page)?));
            }
            ("POST", ["login"]) => return self.login(req, keys).await,
            _ => {}
        }
        let s = session.ok_or(PageError::SignIn)?;
        let fields = if method == Method::POST {
            let f = form(req.body().as_ref())?;
            let given = field(&f, "csrf").unwrap_or_default();
            if !secrets_equal(given.as_bytes(), s.rec.csrf.as_bytes()) {
                warn!("dashboard POST without a valid CSRF token refused");
                return Err(PageError::Csrf);
            }
            f
        } else if method == Method::GET {
            Vec::new()
        } else {
            return Err(PageError::Api(ApiError::MethodNotAllowed("GET, POST")));
        };

        match (method.as_str(), segs.as_slice()) {
            ("GET", []) => self.shops_page(&s, flash).await,
            ("POST", ["logout"]) => {
                self.store.delete_session(&s.key).await?;
                info!("dashboard session ended");
                Ok(Outcome::Redirect(
                    "/app".into(),
                    Some((FlashKind::Ok, "You are signed out.".into())),
                    vec![session::set_cookie(SESSION_COOKIE, "", 0, secure_cookies())],
                ))
            }
            ("GET", ["shops", shop]) => {
                let shop = self.shop_for(&s, shop).await?;
                Ok(Outcome::Redirect(
                    format!("/app/shops/{shop}/orders"),
                    None,
                    Vec::new(),
                ))
            }
            ("GET", ["shops", shop, "orders"]) => {
                let shop = self.shop_for(&s, shop).await?;
                self.orders_page(&s, &shop, query, flash).await
            }
            ("GET", ["shops", shop, "orders", id]) => {
                let shop = self.shop_for(&s, shop).await?;
                let id = parse_id(id)?;
                self.order_page(&s, &shop, id, flash).await
            }
            ("POST", ["shops", shop, "orders", id, "sync"]) => {
                let shop = self.shop_for(&s, shop).await?;
                let id = parse_id(id)?;
                self.sync_order_pressed(&shop, id).await
            }
            ("POST", ["shops", shop, "orders", id, "link"]) => {
                let shop = self.shop_for(&s, shop).await?;
                let id = parse_id(id)?;
                self.link_order(&shop, id, &fields).await
            }
            ("POST", ["shops", shop, "orders", id, "place"]) => {
                let shop = self.shop_for(&s, shop).await?;
                let id = parse_id(id)?;
                Ok(self
                    .place(&shop, &[id], &format!("/app/shops/{shop}/orders/{id}"))
                    .await)
            }
            ("POST", ["shops", shop, "orders", "place"]) => {
                let shop = self.shop_for(&s, shop).await?;
                let ids: Vec<u64> = fields
                    .iter()
                    .filter(|(k, _)| k == "order_id")
                    .filter_map(|(_, v)| v.parse().ok())
                    .collect();
                Ok(self
                    .place(
                        &shop,
                        &ids,
                        &format!("/app/shops/{shop}/orders?tab=awaiting_order"),
                    )
                    .await)
            }
            ("POST", ["shops", shop, "sync"]) => {
                let shop = self.shop_for(&s, shop).await?;
                self.sync_shop_pressed(&shop).await
            }
            // Connecting starts from the dashboard: the session cookie is scoped to /app, so the
            // signed-in admin is checked here and then sent on to Shopify's or AliExpress's
            // authorize page (the state nonce binds the flow; the callbacks check everything).
            ("GET", ["connect", "shopify"]) => {
                if !s.rec.admin {
                    return Err(PageError::NotFound);
                }
                let connect = self.connect.as_deref().ok_or_else(|| {
                    ApiError::BadRequest(
                        "connecting stores needs PUBLIC_URL to be configured".into(),
                    )
                })?;
                let shop = query_get(query, "shop").unwrap_or_default();
                match connect.start_shopify(shop.trim()).await {
                    Ok(url) => Ok(Outcome::Redirect(url, None, Vec::new())),
                    Err(e) => Ok(done(
                        "/app".to_owned(),
                        FlashKind::Error,
                        format!("Could not start connecting {shop}: {e}"),
                    )),
                }
            }
            ("GET", ["connect", "aliexpress"]) => {
                if !s.rec.admin {
                    return Err(PageError::NotFound);
                }
                let connect = self.connect.as_deref().ok_or_else(|| {
                    ApiError::BadRequest(
                        "connecting stores needs PUBLIC_URL to be configured".into(),
                    )
                })?;
                match connect.start_aliexpress().await {
                    Ok(url) => Ok(Outcome::Redirect(url, None, Vec::new())),
                    Err(e) => Ok(done(
                        "/app".to_owned(),
                        FlashKind::Error,
                        format!("Could not start authorizing AliExpress: {e}"),
                    )),
                }
            }
            ("GET", ["shops", shop, "attention"]) => {
                let shop = self.shop_for(&s, shop).await?;
                self.attention_page(&s, &shop, query, flash).await
            }
            ("GET", ["shops", shop, "mappings"]) => {
                let shop = self.shop_for(&s, shop).await?;
                self.mappings_page(&s, &shop, query, flash).await
            }
            ("POST", ["shops", shop, "mappings"]) => {
                let shop = self.shop_for(&s, shop).await?;
                self.save_mapping(&shop, &fields).await
            }
            ("POST", ["shops", shop, "mappings", variant, "delete"]) => {
                let shop = self.shop_for(&s, shop).await?;
                let variant = parse_id(variant)?;
                self.delete_mapping_pressed(&shop, variant).await
            }
            ("GET", ["shops", shop, "settings"]) => {
                let shop = self.shop_for(&s, shop).await?;
                self.settings_page(&s, &shop, flash).await
            }
            ("POST", ["shops", shop, "settings"]) => {
                let shop = self.shop_for(&s, shop).await?;
                self.save_settings(&shop, &fields).await
            }
            _ => Err(PageError::NotFound),
        }
    }

    async fn login(&self, req: &Request, keys: &Keys) -> Result<Outcome, PageError> {
        let f = form(req.body().as_ref())?;
        let token = field(&f, "token").unwrap_or_default().trim().to_owned();
        let admin = secrets_equal(token.as_bytes(), self.credentials.admin_token.as_bytes());
        // Every shop's token is compared (in constant time), not just until the first match.
        let shops: Vec<ShopDomain> = self
            .credentials
            .shops
            .iter()
            .filter(|(_, c)| {
                c.api_token
                    .as_deref()
                    .is_some_and(|t| secrets_equal(token.as_bytes(), t.as_bytes()))
            })
            .map(|(s, _)| s.clone())
            .collect();
        if token.is_empty() || (!admin && shops.is_empty()) {
            warn!("dashboard sign-in refused");
            let page = views::LoginPage {
                chrome: chrome("Sign in", None, "", None, String::new(), 0),
                error: Some(
                    "That token is not valid. Use the admin token or a shop's API token.".into(),
                ),
            };
            return Ok(Outcome::Page(render(&page)?));
        }
        let (Some(id), Some(csrf)) = (session::random_hex(), session::random_hex()) else {
            return Err(PageError::Api(ApiError::Unavailable));
        };
        let rec = SessionRecord {
            admin,
            shops: if admin { Vec::new() } else { shops.clone() },
            csrf,
            expires_at: now_ms() / 1000 + SESSION_SECS,
        };
        self.store
            .put_session(&session::storage_key(&id), &rec)
            .await?;
        info!(admin, shops = shops.len(), "dashboard session started");
        // The admin goes straight to the one shop only when there is no other: shops connected by
        // OAuth or client credentials live in the table, not the credentials document.
        let one_shop = admin
            && self.credentials.shops.len() == 1
            && dropsync_store::ConnectionStore::list_connections(&self.store)
                .await?
                .iter()
                .all(|c| self.credentials.shops.contains_key(&c.shop));
        let to = match (admin, shops.as_slice()) {
            (false, [only]) => format!("/app/shops/{only}/orders"),
            _ if one_shop => self
                .credentials
                .shops
                .keys()
                .next()
                .map_or("/app".to_owned(), |s| format!("/app/shops/{s}/orders")),
            _ => "/app".to_owned(),
        };
        Ok(Outcome::Redirect(
            to,
            None,
            vec![session::set_cookie(
                SESSION_COOKIE,
                &keys.session_cookie_value(&id),
                SESSION_SECS,
                secure_cookies(),
            )],
        ))
    }
}

fn parse_id(raw: &str) -> Result<u64, PageError> {
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PageError::NotFound);
    }
    raw.parse().map_err(|_| PageError::NotFound)
}

fn chrome(
    title: &str,
    shop: Option<&ShopDomain>,
    nav: &'static str,
    flash: Option<Flash>,
    csrf: String,
    shop_count: usize,
) -> Chrome {
    Chrome {
        title: title.to_owned(),
        shop: shop.map(|s| s.as_str().to_owned()),
        nav,
        flash,
        csrf,
        asset_version: format!("{:016x}", views::ASSET_VERSION),
        shop_count,
    }
}

fn static_asset(method: &Method, name: &str) -> Response<Body> {
    if method != Method::GET {
        return ApiError::MethodNotAllowed("GET").response();
    }
    let (body, ctype) = if name.starts_with("app.") && name.ends_with(".css") {
        (views::CSS, "text/css; charset=utf-8")
    } else if name.starts_with("app.") && name.ends_with(".js") {
        (views::JS, "text/javascript; charset=utf-8")
    } else {
        return ApiError::NotFound.response();
    };
    let mut res = Response::new(Body::Text(body.to_owned()));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode_plus_and_escapes_and_keep_bad_escapes_literally() {
        let f = form(b"token=a+b%26c&&empty=&bad=100%25%zz").unwrap();
        assert_eq!(field(&f, "token"), Some("a b&c"));
        assert_eq!(field(&f, "empty"), Some(""));
        assert_eq!(field(&f, "bad"), Some("100%%zz"));
        assert!(form(&[b'a', b'=', 0xFF]).is_err());
    }

    #[test]
    fn a_query_parameter_is_its_first_decoded_value() {
        let q = Some("tab=shipped&q=LP+1%2F2&q=second");
        assert_eq!(query_get(q, "q").as_deref(), Some("LP 1/2"));
        assert_eq!(query_get(q, "tab").as_deref(), Some("shipped"));
        assert_eq!(query_get(q, "cursor"), None);
        assert_eq!(query_get(None, "q"), None);
    }
}
