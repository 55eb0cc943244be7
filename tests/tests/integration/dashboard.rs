//! The dashboard's sessions and forms against the emulator: sign-in, the cookie's flags, CSRF,
//! sign-out that ends the session, shop tokens that see one shop, and the pages' headers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_aliexpress::IopClient;
use dropsync_api::Api;
use dropsync_app::queue::SqsQueue;
use dropsync_domain::ShopDomain;
use dropsync_store::Store;
use dropsync_tests::*;
use serde_json::json;

const ADMIN: &str = "admin-token-dashboard-0123";
const TOKEN_A: &str = "shop-a-token-dashboard-0123";

struct Fixture {
    api: Api<IopClient, SqsQueue>,
    store: Store,
    a: ShopDomain,
    b: ShopDomain,
}

struct Answer {
    status: u16,
    headers: lambda_http::http::HeaderMap,
    body: String,
}

async fn fixture() -> Fixture {
    let store = fresh_store().await;
    let a = shop(&unique("dash-a").to_lowercase());
    let b = shop(&unique("dash-b").to_lowercase());
    let creds = credentials(json!({
        "admin_token": ADMIN,
        "shops": {
            a.as_str(): {"access_token": "shpat_dash_a", "webhook_secrets": ["whsec_dash_a"], "api_token": TOKEN_A},
            b.as_str(): {"access_token": "shpat_dash_b", "webhook_secrets": ["whsec_dash_b"]},
        },
    }));
    Fixture {
        api: Api {
            store: store.clone(),
            credentials: creds,
            sync: None,
            place: None,
            connect: None,
            reconcile: None,
        },
        store,
        a,
        b,
    }
}

impl Fixture {
    async fn call(&self, method: &str, path: &str, cookie: Option<&str>, form: &str) -> Answer {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        let res = self
            .api
            .handle(apigw_request(method, path, &headers, form.as_bytes()))
            .await;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = match res.into_body() {
            lambda_http::Body::Text(t) => t,
            lambda_http::Body::Binary(b) => String::from_utf8(b).unwrap(),
            _ => String::new(),
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Signs in and returns the `name=value` of the session cookie.
    async fn sign_in(&self, token: &str) -> String {
        let res = self
            .call("POST", "/app/login", None, &format!("token={token}"))
            .await;
        assert_eq!(res.status, 303, "{}", res.body);
        let set = res
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("ds_session="))
            .expect("a session cookie");
        set.split(';').next().unwrap().to_owned()
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

#[tokio::test]
async fn signing_in_sets_a_hardened_expiring_cookie_and_signing_out_ends_the_session() {
    let f = fixture().await;
    let login = f.call("GET", "/app", None, "").await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains(r#"name="token" type="password""#));
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(login.headers["x-content-type-options"], "nosniff");

    let res = f
        .call("POST", "/app/login", None, &format!("token={ADMIN}"))
        .await;
    let set = res.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Max-Age="));
    assert!(!set.contains(ADMIN));
    let cookie = set.split(';').next().unwrap().to_owned();

    let shops = f.call("GET", "/app", Some(&cookie), "").await;
    assert_eq!(shops.status, 200);
    assert!(shops.body.contains(f.a.as_str()) && shops.body.contains(f.b.as_str()));
    assert_eq!(shops.headers["cache-control"], "no-store");
    for secret in [ADMIN, TOKEN_A, "shpat_dash_a", "whsec_dash_b"] {
        assert!(!shops.body.contains(secret), "a secret in the page");
    }

    let orders = format!("/app/shops/{}/orders", f.a);
    assert_eq!(f.call("GET", &orders, Some(&cookie), "").await.status, 200);
    let out = f
        .call(
            "POST",
            "/app/logout",
            Some(&cookie),
            &format!("csrf={}", csrf_of(&shops.body)),
        )
        .await;
    assert_eq!(out.status, 303);
    // The old cookie no longer opens anything: back to the sign-in form.
    let after = f.call("GET", &orders, Some(&cookie), "").await;
    assert_eq!(after.status, 303);
    assert_eq!(after.headers["location"], "/app");
}

#[tokio::test]
async fn a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let cookie = f.sign_in(ADMIN).await;
    let path = format!("/app/shops/{}/settings", f.a);
    let page = f.call("GET", &path, Some(&cookie), "").await;
    let before = f.store.get_shop(&f.a).await.unwrap().settings;
    assert!(before.notify_customer);
    for form in ["", "csrf=", &format!("csrf={}", "0".repeat(64))] {
        let res = f.call("POST", &path, Some(&cookie), form).await;
        assert_eq!(res.status, 403, "{form}");
    }
    assert_eq!(f.store.get_shop(&f.a).await.unwrap().settings, before);

    let res = f
        .call(
            "POST",
            &path,
            Some(&cookie),
            &format!(
                "csrf={}&tracking_url_template=https%3A%2F%2Ft.example%2F%7Bnumber%7D&carrier_mapping=",
                csrf_of(&page.body)
            ),
        )
        .await;
    assert_eq!(res.status, 303);
    let now = f.store.get_shop(&f.a).await.unwrap().settings;
    assert!(!now.notify_customer, "an unticked box turns the email off");
    assert_eq!(now.tracking_url_template, "https://t.example/{number}");
    // The flash rides on a signed cookie and shows once.
    let flash = res
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("ds_flash="))
        .unwrap();
    let both = format!("{cookie}; {flash}");
    let shown = f.call("GET", &path, Some(&both), "").await;
    assert!(shown.body.contains("Settings saved."));
}

#[tokio::test]
async fn a_shop_token_sees_its_own_shop_and_no_other() {
    let f = fixture().await;
    let cookie = f.sign_in(TOKEN_A).await;
    let own = f
        .call(
            "GET",
            &format!("/app/shops/{}/orders", f.a),
            Some(&cookie),
            "",
        )
        .await;
    assert_eq!(own.status, 200);
    let other = f
        .call(
            "GET",
            &format!("/app/shops/{}/orders", f.b),
            Some(&cookie),
            "",
        )
        .await;
    assert_eq!(other.status, 404);
    let shops = f.call("GET", "/app", Some(&cookie), "").await;
    assert!(!shops.body.contains(f.b.as_str()));
}

#[tokio::test]
async fn a_wrong_token_or_a_forged_cookie_signs_nobody_in() {
    let f = fixture().await;
    let res = f
        .call("POST", "/app/login", None, "token=not-a-real-token-at-all")
        .await;
    assert_eq!(res.status, 200);
    assert!(res.headers.get("set-cookie").is_none());
    assert!(res.body.contains("not valid"));
    let forged = format!("ds_session={}.{}", "a".repeat(64), "b".repeat(64));
    let page = f
        .call(
            "GET",
            &format!("/app/shops/{}/orders", f.a),
            Some(&forged),
            "",
        )
        .await;
    assert_eq!(page.status, 303);
}

#[tokio::test]
async fn the_stylesheet_is_cached_for_a_year_and_never_touches_cookies() {
    let f = fixture().await;
    let page = f.call("GET", "/app", None, "").await;
    let at = page.body.find("/app/static/app.").unwrap();
    let href = &page.body[at..at + page.body[at..].find('"').unwrap()];
    assert!(href.ends_with(".css"));
    let flash = "ds_flash=whatever.0000";
    let css = f.call("GET", href, Some(flash), "").await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(
        css.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(css.headers.get("set-cookie").is_none());
    assert!(css.body.contains(":focus-visible"));
}
