//! The mappings page: which AliExpress product and SKU each Shopify variant is bought as. The
//! merchant looks a product up (`ds.product.get`, a plain GET form), picks one of its SKUs and
//! saves; saving is checked with AliExpress by the same placement service as the JSON route.

use super::session::FlashKind;
use super::views::{self, Flash, LookupView, MappingRowView, MappingView, SkuView};
use super::{Outcome, PageError, Session, done, field, query_get, render};
use crate::Api;
use dropsync_aliexpress::{AeProduct, AeSku, AliExpressApi, ProductAnswer};
use dropsync_app::place::MappingCheckError;
use dropsync_app::queue::TrackingQueue;
use dropsync_domain::ShopDomain;
use dropsync_domain::mapping::{MappingRow, VariantMapping, is_country_code};
use tracing::{info, warn};

const PAGE_SIZE: i32 = 50;

/// A product as the merchant may paste it: its number, or its AliExpress address
/// (`…/item/1005001234567890.html`).
pub fn parse_product_ref(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let digits = if raw.bytes().all(|b| b.is_ascii_digit()) {
        raw
    } else {
        let (_, after) = raw.split_once("/item/")?;
        let end = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        after.get(..end)?
    };
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// A Shopify id or AliExpress SKU id: digits only, at most 20 (ids) or 40 (SKU ids).
fn digits(raw: &str, max: usize) -> Option<&str> {
    let raw = raw.trim();
    (!raw.is_empty() && raw.len() <= max && raw.bytes().all(|b| b.is_ascii_digit())).then_some(raw)
}

fn country_of(raw: Option<&str>) -> String {
    let c = raw.unwrap_or_default().trim().to_ascii_uppercase();
    if is_country_code(&c) { c } else { "US".into() }
}

/// A SKU's options in words: `Color: Silver · Size: S`, from its properties or, without them,
/// the names in its `sku_attr` (`14:175#Silver`).
pub fn sku_words(properties: &[(String, String)], sku_attr: &str) -> String {
    if !properties.is_empty() {
        return properties
            .iter()
            .map(|(n, v)| {
                if n.is_empty() {
                    v.clone()
                } else {
                    format!("{n}: {v}")
                }
            })
            .collect::<Vec<_>>()
            .join(" · ");
    }
    let names: Vec<&str> = sku_attr
        .split(';')
        .filter_map(|part| part.split_once('#').map(|(_, name)| name.trim()))
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        "One variant".into()
    } else {
        names.join(" · ")
    }
}

fn sku_view(s: &AeSku, selected: Option<&str>) -> SkuView {
    let props: Vec<(String, String)> = s
        .properties
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    SkuView {
        id: s.sku_id.clone(),
        options: sku_words(&props, &s.sku_attr),
        price: match (&s.price, &s.currency) {
            (Some(p), Some(c)) => format!("{p} {c}"),
            (Some(p), None) => p.clone(),
            _ => "—".into(),
        },
        stock: s.stock.map_or_else(|| "—".into(), |n| n.to_string()),
        sold_out: s.stock == Some(0),
        checked: selected == Some(s.sku_id.as_str()),
    }
}

fn lookup_view(p: &AeProduct, selected: Option<&str>) -> LookupView {
    let skus: Vec<SkuView> = p.skus.iter().map(|s| sku_view(s, selected)).collect();
    // One SKU to choose from: it is the choice.
    let only = skus.len() == 1;
    LookupView {
        product_id: p.product_id.to_string(),
        url: product_url(p.product_id),
        title: p.title.clone().unwrap_or_else(|| "Untitled product".into()),
        seller: match (&p.store_name, p.store_id) {
            (Some(n), Some(id)) => format!("{n} (seller {id})"),
            (None, Some(id)) => format!("seller {id}"),
            (Some(n), None) => n.clone(),
            (None, None) => "unknown seller".into(),
        },
        on_sale: p.on_sale(),
        status: p.status.clone().unwrap_or_default(),
        skus: skus
            .into_iter()
            .map(|s| SkuView {
                checked: s.checked || only,
                ..s
            })
            .collect(),
    }
}

fn product_url(product_id: u64) -> String {
    format!("https://www.aliexpress.com/item/{product_id}.html")
}

fn mapping_view(m: &VariantMapping) -> MappingView {
    MappingView {
        variant_id: m.variant_id.to_string(),
        rows: m
            .rows
            .iter()
            .map(|r: &MappingRow| MappingRowView {
                product_id: r.product_id.to_string(),
                url: product_url(r.product_id),
                title: if r.title.is_empty() {
                    format!("Product {}", r.product_id)
                } else {
                    r.title.clone()
                },
                sku_id: r.sku_id.clone(),
                options: sku_words(&[], &r.sku_attr),
                seller: r.seller_id.to_string(),
                price: r.price.clone().unwrap_or_default(),
                quantity: r.quantity,
                countries: if r.ship_to.is_empty() {
                    "every country".into()
                } else {
                    r.ship_to.join(", ")
                },
                shipping: r
                    .shipping_method
                    .clone()
                    .unwrap_or_else(|| "cheapest".into()),
            })
            .collect(),
    }
}

/// Where a lookup goes back to: the form's own query, so a failed save keeps what was typed.
fn lookup_url(
    shop: &ShopDomain,
    product: &str,
    country: &str,
    variant: &str,
    order: &str,
) -> String {
    let mut q = vec![format!("product={product}"), format!("country={country}")];
    if !variant.is_empty() {
        q.push(format!("variant={variant}"));
    }
    if !order.is_empty() {
        q.push(format!("order={order}"));
    }
    format!("/app/shops/{shop}/mappings?{}#lookup", q.join("&"))
}

impl<A: AliExpressApi + 'static, Q: TrackingQueue + 'static> Api<A, Q> {
    pub(super) async fn mappings_page(
        &self,
        s: &Session,
        shop: &ShopDomain,
        query: Option<&str>,
        flash: Option<Flash>,
    ) -> Result<Outcome, PageError> {
        let cursor = query_get(query, "cursor").filter(|c| dropsync_store::cursor_is_valid(c));
        let list = self
            .store
            .list_mappings(shop, cursor.as_deref(), PAGE_SIZE)
            .await?;
        let raw_product = query_get(query, "product").unwrap_or_default();
        let country = country_of(query_get(query, "country").as_deref());
        let variant = query_get(query, "variant")
            .and_then(|v| digits(&v, 20).map(str::to_owned))
            .unwrap_or_default();
        let order = query_get(query, "order")
            .and_then(|v| digits(&v, 20).map(str::to_owned))
            .unwrap_or_default();
        let current = variant
            .parse::<u64>()
            .ok()
            .and_then(|v| list.items.iter().find(|m| m.variant_id == v));
        let (lookup, lookup_error) = if raw_product.trim().is_empty() {
            (None, None)
        } else {
            match parse_product_ref(&raw_product) {
                None => (
                    None,
                    Some("Enter an AliExpress product number, or paste the product's AliExpress address.".to_owned()),
                ),
                Some(pid) => match self.place.as_deref() {
                    None => (
                        None,
                        Some("Looking up products needs AliExpress to be connected (Shops and connections).".to_owned()),
                    ),
                    Some(placer) => match placer.lookup_product(pid, &country).await {
                        Ok(ProductAnswer::Found(p)) => {
                            let selected = current
                                .and_then(|m| m.rows.first())
                                .filter(|r| r.product_id == pid)
                                .map(|r| r.sku_id.as_str());
                            (Some(lookup_view(&p, selected)), None)
                        }
                        Ok(ProductAnswer::Refused { code, message }) => (
                            None,
                            Some(format!(
                                "AliExpress has no product {pid} for sale to {country} ({code}{}{message}).",
                                if message.is_empty() { "" } else { ": " }
                            )),
                        ),
                        Err(e) => {
                            warn!(shop = %shop, product_id = pid, error = %e, "product lookup failed");
                            (
                                None,
                                Some("AliExpress did not answer the lookup. Try again in a moment.".to_owned()),
                            )
                        }
                    },
                },
            }
        };
        let page = views::MappingsPage {
            chrome: self
                .chrome_for(s, "Mappings", Some(shop), "mappings", flash)
                .await?,
            shop: shop.to_string(),
            mappings: list.items.iter().map(mapping_view).collect(),
            next: list.next,
            paged: cursor.is_some(),
            product: raw_product.trim().to_owned(),
            country,
            variant,
            order,
            lookup,
            lookup_error,
        };
        Ok(Outcome::Page(render(&page)?))
    }

    /// Saves the picked SKU as the variant's mapping (replacing any it had), checked with
    /// AliExpress first: nothing is stored when AliExpress does not know it.
    pub(super) async fn save_mapping(
        &self,
        shop: &ShopDomain,
        fields: &[(String, String)],
    ) -> Result<Outcome, PageError> {
        let product_raw = field(fields, "product_id").unwrap_or_default().trim();
        let country = country_of(field(fields, "country"));
        let variant_raw = field(fields, "variant_id").unwrap_or_default().trim();
        let order = field(fields, "order")
            .and_then(|o| digits(o, 20))
            .unwrap_or_default();
        let back = lookup_url(
            shop,
            digits(product_raw, 20).unwrap_or_default(),
            &country,
            digits(variant_raw, 20).unwrap_or_default(),
            order,
        );
        let Some(product_id) = parse_product_ref(product_raw) else {
            return Ok(done(
                back,
                FlashKind::Error,
                "Look up an AliExpress product first. Nothing was saved.",
            ));
        };
        let Some(variant_id) = digits(variant_raw, 20).and_then(|v| v.parse::<u64>().ok()) else {
            return Ok(done(
                back,
                FlashKind::Error,
                "Enter the Shopify variant ID (digits only). Nothing was saved.",
            ));
        };
        let Some(sku_id) = field(fields, "sku_id").and_then(|v| digits(v, 40)) else {
            return Ok(done(
                back,
                FlashKind::Error,
                "Pick the AliExpress variant (SKU) to buy. Nothing was saved.",
            ));
        };
        let Some(placer) = self.place.as_deref() else {
            return Ok(done(
                back,
                FlashKind::Error,
                "Mapping needs AliExpress to be connected (Shops and connections).",
            ));
        };
        let mapping = VariantMapping {
            variant_id,
            rows: vec![MappingRow {
                product_id,
                sku_id: sku_id.to_owned(),
                sku_attr: String::new(),
                seller_id: 0,
                title: String::new(),
                price: None,
                quantity: 1,
                ship_to: Vec::new(),
                shipping_method: None,
            }],
        };
        let checked = match placer.check_mapping(mapping).await {
            Ok(m) => m,
            Err(MappingCheckError::Unknown(what) | MappingCheckError::Invalid(what)) => {
                return Ok(done(back, FlashKind::Error, format!("Not saved: {what}.")));
            }
            Err(MappingCheckError::Ae(e)) => {
                warn!(shop = %shop, variant_id, error = %e, "AliExpress unavailable for a mapping check");
                return Ok(done(
                    back,
                    FlashKind::Error,
                    "AliExpress did not answer, so the mapping could not be checked. Nothing was saved; try again in a moment.",
                ));
            }
        };
        self.store.put_mapping(shop, &checked).await?;
        info!(shop = %shop, variant_id, "mapping stored from the dashboard");
        let what = checked.rows.first().map_or_else(String::new, |r| {
            format!(
                " to “{}” ({}, seller {})",
                r.title,
                sku_words(&[], &r.sku_attr),
                r.seller_id
            )
        });
        if order.is_empty() {
            Ok(done(
                format!("/app/shops/{shop}/mappings"),
                FlashKind::Ok,
                format!(
                    "Mapped variant {variant_id}{what}. Orders for it are placed with this SKU."
                ),
            ))
        } else {
            Ok(done(
                format!("/app/shops/{shop}/orders/{order}"),
                FlashKind::Ok,
                format!(
                    "Mapped variant {variant_id}{what}. Press Re-place order to place it with this SKU."
                ),
            ))
        }
    }

    pub(super) async fn delete_mapping_pressed(
        &self,
        shop: &ShopDomain,
        variant_id: u64,
    ) -> Result<Outcome, PageError> {
        let existed = self.store.delete_mapping(shop, variant_id).await?;
        info!(shop = %shop, variant_id, existed, "mapping deleted from the dashboard");
        let back = format!("/app/shops/{shop}/mappings");
        Ok(if existed {
            done(
                back,
                FlashKind::Ok,
                format!(
                    "Removed the mapping of variant {variant_id}. Its orders wait for a new mapping (or a link) before they can be placed."
                ),
            )
        } else {
            done(
                back,
                FlashKind::Ok,
                format!("Variant {variant_id} had no mapping; nothing changed."),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_is_found_by_its_number_or_its_aliexpress_address() {
        assert_eq!(
            parse_product_ref(" 1005006123456789 "),
            Some(1005006123456789)
        );
        assert_eq!(
            parse_product_ref("https://www.aliexpress.com/item/1005006123456789.html?spm=a2g0o"),
            Some(1005006123456789)
        );
        assert_eq!(
            parse_product_ref("https://www.aliexpress.com/store/123"),
            None
        );
        assert_eq!(parse_product_ref("lamp"), None);
        assert_eq!(parse_product_ref(""), None);
        assert_eq!(parse_product_ref("0"), None);
        assert_eq!(parse_product_ref("123456789012345678901234"), None);
    }

    #[test]
    fn sku_options_read_as_words() {
        let props = vec![
            ("Color".to_owned(), "Red".to_owned()),
            ("Size".to_owned(), "S".to_owned()),
        ];
        assert_eq!(
            sku_words(&props, "14:29#Red;5:361386#S"),
            "Color: Red · Size: S"
        );
        assert_eq!(sku_words(&[], "14:29#Red;5:361386#S"), "Red · S");
        assert_eq!(sku_words(&[], ""), "One variant");
        assert_eq!(sku_words(&[], "14:29"), "One variant");
    }

    #[test]
    fn a_lookup_with_one_sku_preselects_it() {
        let p = AeProduct {
            product_id: 7,
            title: Some("Lamp".into()),
            store_id: Some(3301),
            store_name: Some("Outdoor Supply".into()),
            skus: vec![AeSku {
                sku_id: "12".into(),
                stock: Some(0),
                ..AeSku::default()
            }],
            status: Some("offline".into()),
        };
        let v = lookup_view(&p, None);
        assert!(v.skus.first().is_some_and(|s| s.checked && s.sold_out));
        assert!(!v.on_sale);
        assert_eq!(v.seller, "Outdoor Supply (seller 3301)");
    }
}
