//! The dashboard's pages and actions.

use super::session::FlashKind;
use super::views::Flash;
use super::views::{self, AttentionRow, AttentionView, OrderRow, TabView};
use super::{Outcome, PageError, Session, done, field, query_get, render};
use crate::{Api, ApiError, validate_settings};
use dropsync_aliexpress::AliExpressApi;
use dropsync_app::now_ms;
use dropsync_app::place::PlaceError;
use dropsync_app::queue::TrackingQueue;
use dropsync_app::sync::SyncError;
use dropsync_domain::ops::{LinkError, link_supplier_order};
use dropsync_domain::{OrderStatus, ShopDomain};
use tracing::{info, warn};

const PAGE_SIZE: i32 = 50;

/// Automatic placing (the `auto_place` setting): paid, fully mapped orders are queued by the
/// webhook and placed by the order placer. The form shows and saves the setting.
pub const AUTO_PLACING_AVAILABLE: bool = true;

impl<A: AliExpressApi + 'static, Q: TrackingQueue + 'static> Api<A, Q> {
    pub(super) async fn shops_page(
        &self,
        s: &Session,
        flash: Option<Flash>,
    ) -> Result<Outcome, PageError> {
        let mut shops = Vec::new();
        for shop in self.visible_shops(s).await? {
            let rec = self.store.get_shop(&shop).await?;
            let attention = self
                .store
                .list_attention(&shop, None, 25)
                .await?
                .items
                .len();
            shops.push(views::ShopCard {
                domain: shop.to_string(),
                active: rec.active,
                attention,
                aliexpress_reauth_needed: rec.aliexpress_reauth_needed,
            });
        }
        let aliexpress = self.aliexpress_connection().await;
        let page = views::ShopsPage {
            chrome: self
                .chrome_for(s, "Shops and connections", None, "shops", flash)
                .await?,
            shops,
            aliexpress,
            admin: s.rec.admin,
        };
        Ok(Outcome::Page(render(&page)?))
    }

    /// The AliExpress re-authorize countdown, from the tokens dropsync refreshed last (or the
    /// credentials document when it has not refreshed them yet).
    async fn aliexpress_connection(&self) -> views::AliexpressConnection {
        let Some(ae) = &self.credentials.aliexpress else {
            return views::AliexpressConnection {
                configured: false,
                countdown: None,
                urgent: false,
            };
        };
        let stored = match self.store.get_ae_tokens(&ae.app_key).await {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "AliExpress token record unreadable");
                None
            }
        };
        let expires_ms = stored
            .map(|t| t.refresh_expire_time_ms.unwrap_or(t.expire_time_ms))
            .or(ae.expire_time);
        let (countdown, urgent) = views::reauth_countdown(expires_ms, now_ms());
        views::AliexpressConnection {
            configured: true,
            countdown,
            urgent,
        }
    }

    pub(super) async fn orders_page(
        &self,
        s: &Session,
        shop: &ShopDomain,
        query: Option<&str>,
        flash: Option<Flash>,
    ) -> Result<Outcome, PageError> {
        let tab: OrderStatus = query_get(query, "tab")
            .and_then(|t| t.parse().ok())
            .unwrap_or(OrderStatus::AwaitingOrder);
        let q = query_get(query, "q").unwrap_or_default().trim().to_owned();
        let cursor = query_get(query, "cursor").filter(|c| dropsync_store::cursor_is_valid(c));
        let counts = self.store.count_by_status(shop).await?;
        let tabs = counts
            .iter()
            .map(|(st, n)| TabView {
                key: st.as_str(),
                label: views::tab_label(*st),
                count: *n,
                current: *st == tab && q.is_empty(),
            })
            .collect();
        let (rows, next) = if q.is_empty() {
            let page = self
                .store
                .list_by_status(shop, tab, cursor.as_deref(), PAGE_SIZE)
                .await?;
            (
                page.items
                    .iter()
                    .map(|o| OrderRow::from_order(&o.order))
                    .collect(),
                page.next,
            )
        } else {
            let name = if q.starts_with('#') {
                q.clone()
            } else {
                format!("#{q}")
            };
            let found = self.store.find_order_by_name(shop, &name).await?;
            (
                found
                    .iter()
                    .map(|o| OrderRow::from_order(&o.order))
                    .collect(),
                None,
            )
        };
        let page = views::OrdersPage {
            chrome: self
                .chrome_for(
                    s,
                    &format!("Orders · {}", views::tab_label(tab)),
                    Some(shop),
                    "orders",
                    flash,
                )
                .await?,
            shop: shop.to_string(),
            tabs,
            tab: tab.as_str(),
            tab_label: views::tab_label(tab),
            rows,
            next,
            paged: cursor.is_some(),
            searched: !q.is_empty(),
            q,
            bulk: tab == OrderStatus::AwaitingOrder,
        };
        Ok(Outcome::Page(render(&page)?))
    }

    pub(super) async fn order_page(
        &self,
        s: &Session,
        shop: &ShopDomain,
        id: u64,
        flash: Option<Flash>,
    ) -> Result<Outcome, PageError> {
        let stored = self
            .store
            .get_order(shop, id)
            .await?
            .ok_or(PageError::NotFound)?;
        let rec = self.store.get_shop(shop).await?;
        let name = stored.order.shopify.name.clone();
        let chrome = self
            .chrome_for(s, &format!("Order {name}"), Some(shop), "orders", flash)
            .await?;
        let page = views::order_page(chrome, &stored.order, &rec.settings.tracking_url_template);
        Ok(Outcome::Page(render(&page)?))
    }

    pub(super) async fn sync_order_pressed(
        &self,
        shop: &ShopDomain,
        id: u64,
    ) -> Result<Outcome, PageError> {
        let back = format!("/app/shops/{shop}/orders/{id}");
        let Some(sync) = self.sync.as_ref() else {
            return Ok(done(
                back,
                FlashKind::Error,
                "AliExpress is not connected, so there is nothing to sync yet.",
            ));
        };
        let before = self
            .store
            .get_order(shop, id)
            .await?
            .ok_or(PageError::NotFound)?;
        let tracking_before: usize = before
            .order
            .supplier_orders
            .iter()
            .map(|so| so.packages.len())
            .sum();
        match sync.sync_order(shop, id).await {
            Ok((after, report)) => {
                info!(shop = %shop, order_id = id, ?report, "dashboard order sync");
                let tracking_after: usize = after
                    .order
                    .supplier_orders
                    .iter()
                    .map(|so| so.packages.len())
                    .sum();
                let new = tracking_after.saturating_sub(tracking_before);
                let mut text = if after.order.supplier_orders.is_empty() {
                    "Synced. There is no AliExpress order to check yet: place or link one."
                        .to_owned()
                } else if new > 0 {
                    format!(
                        "Synced with AliExpress: {new} new tracking number{} found.",
                        if new == 1 { "" } else { "s" }
                    )
                } else if report.changed > 0 {
                    "Synced with AliExpress: the order was updated.".to_owned()
                } else {
                    "Synced with AliExpress: nothing has changed.".to_owned()
                };
                if after.order.status != before.order.status {
                    text.push_str(&format!(
                        " It moved to {}.",
                        views::tab_label(after.order.status)
                    ));
                }
                if report.errors > 0 {
                    return Ok(done(
                        back,
                        FlashKind::Error,
                        "AliExpress did not answer for every supplier order; the rest was synced. Try again in a moment.",
                    ));
                }
                Ok(done(back, FlashKind::Ok, text))
            }
            Err(SyncError::AuthorizationEnded(_)) => Ok(done(
                back,
                FlashKind::Error,
                "AliExpress's authorization has ended, so nothing can be synced. Re-authorize AliExpress on the Shops page; syncing resumes after that.",
            )),
            Err(e) => {
                warn!(shop = %shop, order_id = id, error = %e, "dashboard order sync failed");
                Ok(done(
                    back,
                    FlashKind::Error,
                    "AliExpress could not be reached (or its authorization expired). Nothing changed; try again, or re-authorize AliExpress on the Shops page.",
                ))
            }
        }
    }

    pub(super) async fn sync_shop_pressed(&self, shop: &ShopDomain) -> Result<Outcome, PageError> {
        let back = format!("/app/shops/{shop}/orders");
        let Some(sync) = self.sync.as_ref() else {
            return Ok(done(
                back,
                FlashKind::Error,
                "AliExpress is not connected, so there is nothing to sync yet.",
            ));
        };
        let deadline = std::time::Instant::now() + crate::SHOP_SYNC_BUDGET;
        match sync.sync_shop(shop, None, deadline).await {
            Ok(report) => {
                info!(shop = %shop, ?report, "dashboard shop sync");
                let more = if report.continue_from.is_some() {
                    " There is more: press Sync all again to continue."
                } else {
                    ""
                };
                Ok(done(
                    back,
                    FlashKind::Ok,
                    format!(
                        "Synced {} open order{} with AliExpress; {} changed.{more}",
                        report.orders,
                        if report.orders == 1 { "" } else { "s" },
                        report.changed
                    ),
                ))
            }
            Err(SyncError::AuthorizationEnded(_)) => Ok(done(
                back,
                FlashKind::Error,
                "AliExpress's authorization has ended, so nothing can be synced. Re-authorize AliExpress on the Shops page; syncing resumes after that.",
            )),
            Err(e) => {
                warn!(shop = %shop, error = %e, "dashboard shop sync failed");
                Ok(done(
                    back,
                    FlashKind::Error,
                    "AliExpress could not be reached. Nothing changed; try again in a moment.",
                ))
            }
        }
    }

    pub(super) async fn link_order(
        &self,
        shop: &ShopDomain,
        id: u64,
        fields: &[(String, String)],
    ) -> Result<Outcome, PageError> {
        let back = format!("/app/shops/{shop}/orders/{id}");
        let raw = field(fields, "aliexpress_order_id")
            .unwrap_or_default()
            .trim();
        let Some(ae) = raw
            .parse::<u64>()
            .ok()
            .filter(|_| !raw.is_empty() && raw.len() <= 20)
        else {
            return Ok(done(
                back,
                FlashKind::Error,
                "Enter the AliExpress order number (digits only). Nothing was linked.",
            ));
        };
        let lines: Vec<u64> = fields
            .iter()
            .filter(|(k, _)| k == "line_item_id")
            .filter_map(|(_, v)| v.parse().ok())
            .collect();
        if lines.is_empty() || lines.len() > 250 {
            return Ok(done(
                back,
                FlashKind::Error,
                "Tick the items this AliExpress order is for. Nothing was linked.",
            ));
        }
        let mut result: Result<bool, LinkError> = Ok(false);
        let now = now_ms();
        self.store
            .update_order(shop, id, |o| {
                result = link_supplier_order(o, ae, &lines, Vec::new(), now);
                matches!(result, Ok(true))
            })
            .await?
            .ok_or(PageError::NotFound)?;
        match result {
            Ok(true) => {
                info!(shop = %shop, order_id = id, ae_order_id = ae, "supplier order linked from the dashboard");
                Ok(done(
                    back,
                    FlashKind::Ok,
                    format!("Linked AliExpress order {ae}. Press Sync now to fetch its status."),
                ))
            }
            Ok(false) => Ok(done(
                back,
                FlashKind::Ok,
                format!("AliExpress order {ae} was already linked to these items."),
            )),
            Err(e) => Ok(done(back, FlashKind::Error, format!("Not linked: {e}."))),
        }
    }

    /// Placing on AliExpress from the dashboard: the same placement service as the JSON routes,
    /// so a double click, two tabs or a bulk and a single press make one order per seller.
    pub(super) async fn place(&self, shop: &ShopDomain, ids: &[u64], back: &str) -> Outcome {
        if ids.is_empty() {
            return done(
                back.to_owned(),
                FlashKind::Error,
                "Tick the orders to place first.",
            );
        }
        let Some(placer) = self.place.as_deref() else {
            return done(
                back.to_owned(),
                FlashKind::Error,
                "Placing needs AliExpress to be connected (Shops and connections).",
            );
        };
        let ids = ids.get(..dropsync_app::place::MAX_BULK).unwrap_or(ids);
        let results = dropsync_app::place::place_many(placer, shop, ids).await;
        let (mut placed, mut failed, mut other) = (0usize, 0usize, Vec::new());
        for (id, r) in &results {
            match r {
                Ok(stored)
                    if stored.order.status == dropsync_domain::OrderStatus::Failed
                        || stored.order.placement_failure.is_some() =>
                {
                    failed += 1
                }
                Ok(_) => placed += 1,
                Err(e) => {
                    info!(shop = %shop, order_id = id, error = %e, "dashboard placement did not run");
                    other.push(match e {
                        PlaceError::NotPlaceable(why) => format!("#{id}: {why}"),
                        PlaceError::NotFound => format!("#{id}: not found"),
                        PlaceError::AuthorizationEnded(_) => {
                            "AliExpress's authorization has ended: re-authorize AliExpress (Shops and connections), then place again".to_owned()
                        }
                        PlaceError::ReconnectRequired(_) => {
                            "reconnect the shop to Shopify first (Shops and connections)".to_owned()
                        }
                        _ => "AliExpress or Shopify did not answer; place it again in a minute"
                            .to_owned(),
                    });
                }
            }
        }
        let mut text = Vec::new();
        if placed > 0 {
            text.push(format!(
                "Placed {placed} order{} on AliExpress: pay for {} on AliExpress within 20 days.",
                if placed == 1 { "" } else { "s" },
                if placed == 1 { "it" } else { "them" }
            ));
        }
        if failed > 0 {
            text.push(format!(
                "{failed} could not be placed: the order page says why and what to do."
            ));
        }
        other.sort();
        other.dedup();
        text.extend(other);
        let kind = if failed == 0 && placed == results.len() {
            FlashKind::Ok
        } else {
            FlashKind::Error
        };
        done(back.to_owned(), kind, text.join(" "))
    }

    pub(super) async fn attention_page(
        &self,
        s: &Session,
        shop: &ShopDomain,
        query: Option<&str>,
        flash: Option<Flash>,
    ) -> Result<Outcome, PageError> {
        let cursor = query_get(query, "cursor").filter(|c| dropsync_store::cursor_is_valid(c));
        let page = self
            .store
            .list_attention(shop, cursor.as_deref(), PAGE_SIZE)
            .await?;
        let rows = page
            .items
            .iter()
            .map(|so| {
                let o = &so.order;
                AttentionRow {
                    id: o.id.to_string(),
                    name: o.shopify.name.clone(),
                    status: views::tab_label(o.status),
                    tone: views::tone(o.status),
                    reasons: o
                        .attention()
                        .iter()
                        .map(|a| {
                            let (what, advice) = views::attention_words(a);
                            AttentionView { what, advice }
                        })
                        .collect(),
                }
            })
            .collect();
        let page = views::AttentionPage {
            chrome: self
                .chrome_for(s, "Needs attention", Some(shop), "attention", flash)
                .await?,
            shop: shop.to_string(),
            rows,
            next: page.next,
        };
        Ok(Outcome::Page(render(&page)?))
    }

    pub(super) async fn settings_page(
        &self,
        s: &Session,
        shop: &ShopDomain,
        flash: Option<Flash>,
    ) -> Result<Outcome, PageError> {
        let rec = self.store.get_shop(shop).await?;
        let page = views::SettingsPage {
            chrome: self
                .chrome_for(s, "Settings", Some(shop), "settings", flash)
                .await?,
            shop: shop.to_string(),
            notify_customer: rec.settings.notify_customer,
            tracking_url_template: rec.settings.tracking_url_template.clone(),
            carrier_mapping: rec
                .settings
                .carrier_mapping
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            auto_place_available: AUTO_PLACING_AVAILABLE,
            auto_place: rec.settings.auto_place,
        };
        Ok(Outcome::Page(render(&page)?))
    }

    pub(super) async fn save_settings(
        &self,
        shop: &ShopDomain,
        fields: &[(String, String)],
    ) -> Result<Outcome, PageError> {
        let back = format!("/app/shops/{shop}/settings");
        let mut settings = self.store.get_shop(shop).await?.settings;
        settings.notify_customer = field(fields, "notify_customer").is_some();
        if AUTO_PLACING_AVAILABLE {
            settings.auto_place = field(fields, "auto_place").is_some();
        }
        if let Some(t) = field(fields, "tracking_url_template") {
            settings.tracking_url_template = t.trim().to_owned();
        }
        if let Some(m) = field(fields, "carrier_mapping") {
            let mut map = std::collections::BTreeMap::new();
            for line in m.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let Some((k, v)) = line.split_once('=') else {
                    return Ok(done(
                        back,
                        FlashKind::Error,
                        format!(
                            "Not saved: carrier line “{line}” needs the form “AliExpress name = Shopify name”."
                        ),
                    ));
                };
                map.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            settings.carrier_mapping = map;
        }
        if let Err(ApiError::BadRequest(why)) = validate_settings(&settings) {
            return Ok(done(back, FlashKind::Error, format!("Not saved: {why}.")));
        }
        self.store.put_settings(shop, &settings).await?;
        info!(shop = %shop, notify_customer = settings.notify_customer, "settings saved from the dashboard");
        Ok(done(back, FlashKind::Ok, "Settings saved."))
    }
}
