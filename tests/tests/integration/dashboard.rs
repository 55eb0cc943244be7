//! The dashboard's sessions and forms against the emulator: sign-in, the cookie's flags, CSRF,
//! sign-out that ends the session, shop tokens that see one shop, the pages' headers, and mappings
//! made from a product lookup.
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

/// AliExpress as the mappings page sees it: product 7 of seller 3301 with SKUs 12 and 13.
#[derive(Debug)]
struct Catalog;

impl Catalog {
    fn product(id: u64) -> dropsync_aliexpress::ProductAnswer {
        use dropsync_aliexpress::{AeProduct, AeSku, ProductAnswer};
        if id != 7 {
            return ProductAnswer::Refused {
                code: "605".into(),
                message: "product not found".into(),
            };
        }
        let sku = |id: &str, attr: &str| AeSku {
            sku_id: id.into(),
            sku_attr: attr.into(),
            price: Some("6.10".into()),
            stock: Some(40),
            ..AeSku::default()
        };
        ProductAnswer::Found(AeProduct {
            product_id: 7,
            title: Some("Camping lamp".into()),
            store_id: Some(3301),
            store_name: Some("Outdoor Supply".into()),
            skus: vec![
                sku("12", "14:175#Warm white"),
                sku("13", "14:193#Cold white"),
            ],
            status: Some("onSelling".into()),
        })
    }
}

impl dropsync_app::place::Placer for Catalog {
    fn place<'a>(
        &'a self,
        _shop: &'a ShopDomain,
        _order_id: u64,
    ) -> dropsync_app::place::BoxFuture<
        'a,
        Result<dropsync_store::StoredOrder, dropsync_app::place::PlaceError>,
    > {
        Box::pin(async { Err(dropsync_app::place::PlaceError::NotFound) })
    }

    fn check_mapping<'a>(
        &'a self,
        mut mapping: dropsync_domain::mapping::VariantMapping,
    ) -> dropsync_app::place::BoxFuture<
        'a,
        Result<dropsync_domain::mapping::VariantMapping, dropsync_app::place::MappingCheckError>,
    > {
        Box::pin(async move {
            use dropsync_app::place::MappingCheckError;
            for row in &mut mapping.rows {
                let dropsync_aliexpress::ProductAnswer::Found(p) = Self::product(row.product_id)
                else {
                    return Err(MappingCheckError::Unknown(format!(
                        "AliExpress product {} is unknown",
                        row.product_id
                    )));
                };
                let sku = p.sku(&row.sku_id).ok_or_else(|| {
                    MappingCheckError::Unknown(format!("SKU {} is not a SKU of it", row.sku_id))
                })?;
                row.sku_attr = sku.sku_attr.clone();
                row.seller_id = p.store_id.unwrap_or_default();
                row.title = p.title.clone().unwrap_or_default();
            }
            Ok(mapping)
        })
    }

    fn lookup_product<'a>(
        &'a self,
        product_id: u64,
        _ship_to_country: &'a str,
    ) -> dropsync_app::place::BoxFuture<
        'a,
        Result<dropsync_aliexpress::ProductAnswer, dropsync_aliexpress::AeError>,
    > {
        Box::pin(async move { Ok(Self::product(product_id)) })
    }
}

#[tokio::test]
async fn a_looked_up_sku_is_mapped_only_with_a_csrf_token_and_after_aliexpress_knows_it() {
    let mut f = fixture().await;
    f.api.place = Some(std::sync::Arc::new(Catalog));
    let cookie = f.sign_in(ADMIN).await;
    let page_path = format!("/app/shops/{}/mappings", f.a);
    let stored = |f: &Fixture| {
        let (store, a) = (f.store.clone(), f.a.clone());
        async move { store.mappings_for(&a, &[55]).await.unwrap() }
    };

    // The lookup is a plain GET: the product's seller and SKUs in words, the variant filled in.
    let page = f
        .call(
            "GET",
            &format!("{page_path}?product=https%3A%2F%2Fwww.aliexpress.com%2Fitem%2F7.html&country=us&variant=55"),
            Some(&cookie),
            "",
        )
        .await;
    assert_eq!(page.status, 200);
    for shown in [
        "Camping lamp",
        "Outdoor Supply (seller 3301)",
        "Warm white",
        "Cold white",
        "value=\"55\"",
        "value=\"US\"",
    ] {
        assert!(page.body.contains(shown), "{shown}");
    }
    let unknown = f
        .call("GET", &format!("{page_path}?product=8"), Some(&cookie), "")
        .await;
    assert!(
        unknown
            .body
            .contains("AliExpress has no product 8 for sale to US")
    );

    // Without the token: 403 and nothing stored.
    let res = f
        .call(
            "POST",
            &page_path,
            Some(&cookie),
            "product_id=7&sku_id=12&variant_id=55",
        )
        .await;
    assert_eq!(res.status, 403);
    assert!(stored(&f).await.is_empty());

    // A SKU AliExpress does not know is refused in words; nothing stored.
    let csrf = csrf_of(&page.body);
    let res = f
        .call(
            "POST",
            &page_path,
            Some(&cookie),
            &format!("csrf={csrf}&product_id=7&sku_id=99&variant_id=55&country=US"),
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(stored(&f).await.is_empty());

    // The picked SKU is stored with what AliExpress says about it, and the merchant goes back to
    // the order they came from.
    let res = f
        .call(
            "POST",
            &page_path,
            Some(&cookie),
            &format!("csrf={csrf}&product_id=7&sku_id=13&variant_id=55&country=US&order=1001"),
        )
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(
        res.headers.get("location").unwrap(),
        &format!("/app/shops/{}/orders/1001", f.a)
    );
    let m = stored(&f).await;
    let row = &m[&55].rows[0];
    assert_eq!(
        (row.product_id, row.sku_id.as_str(), row.seller_id),
        (7, "13", 3301)
    );
    assert_eq!(row.sku_attr, "14:193#Cold white");
    let list = f.call("GET", &page_path, Some(&cookie), "").await;
    assert!(list.body.contains("Cold white") && list.body.contains("/mappings/55/delete"));

    // Removing needs the token too.
    let delete = format!("{page_path}/55/delete");
    assert_eq!(f.call("POST", &delete, Some(&cookie), "").await.status, 403);
    assert_eq!(stored(&f).await.len(), 1);
    let res = f
        .call("POST", &delete, Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(res.status, 303);
    assert!(stored(&f).await.is_empty());
}
