//! Placing supplier orders on AliExpress, and validating product mappings.
//!
//! One `order.create` per (Shopify order, seller). The sequence for each seller is:
//! 1. read the shipping address from Shopify (never stored, never logged) and pre-flight it;
//! 2. pick the shipping method (the mapping's, else the cheapest `freight.query` option);
//! 3. **claim** the (order, seller, attempt) with a conditional write of the order, storing the
//!    `out_order_id` before anything is sent: of any number of concurrent placers exactly one
//!    wins, the others see the claim and send nothing;
//! 4. send `order.create` once, and record its outcome with another conditional write.
//!
//! A crash between 4 and the write leaves the claim in `sending`; it then reads as an unknown
//! outcome, which may only ever re-send the same `out_order_id` (AliExpress answers
//! `REPEATED_ORDER_ERROR` if the first one got through) and is flagged for the merchant.

use crate::Credentials;
use crate::now_ms;
use crate::tokens::ProviderError;
use dropsync_aliexpress::{
    AeError, AliExpressPlacing, CreateOutcome, FreightOption, LogisticsAddress, PlaceItem,
    PlaceOrderRequest, ProductAnswer,
};
use dropsync_domain::ShopDomain;
use dropsync_domain::mapping::{MappingRow, VariantMapping};
use dropsync_domain::placement::{
    CheckedAddress, Claim, Failure, LineSkus, Outcome, SellerGroup, ShippingAddress, apply_claim,
    decide_claim, fail_before_sending, group_by_seller, is_placeable, latest, lines_to_place,
    preflight, record_outcome,
};
use dropsync_shopify::admin::{AdminClient, AdminError};
use dropsync_store::{Ownership, Store, StoreError, StoredOrder};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tracing::{info, warn};

/// Most orders one bulk placement takes.
pub const MAX_BULK: usize = 50;

/// Where the shipping address comes from: Shopify's Admin API in production.
pub trait AddressSource: Send + Sync {
    /// `Ok(None)`: no such order; `Ok(Some(None))`: the order has no shipping address.
    fn shipping_address(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> impl Future<Output = Result<Option<Option<ShippingAddress>>, AdminError>> + Send;

    /// `SHOPIFY_ADMIN_URL` when set: the token endpoint lives there too.
    fn admin_base_override(&self) -> Option<String> {
        None
    }
}

impl AddressSource for AdminClient {
    fn shipping_address(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> impl Future<Output = Result<Option<Option<ShippingAddress>>, AdminError>> + Send {
        self.order_shipping_address(shop, token, order_id)
    }

    fn admin_base_override(&self) -> Option<String> {
        dropsync_shopify::admin::ShopifyAdmin::admin_base_override(self)
    }
}

impl<T: AddressSource> AddressSource for Arc<T> {
    fn shipping_address(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> impl Future<Output = Result<Option<Option<ShippingAddress>>, AdminError>> + Send {
        T::shipping_address(self, shop, token, order_id)
    }

    fn admin_base_override(&self) -> Option<String> {
        T::admin_base_override(self)
    }
}

/// Why a placement could not run. Definitive failures are not errors: they are recorded on the
/// order (`failed` with a failure and advice) and the order is answered.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("order not found")]
    NotFound,
    /// Not paid, or canceled: there is nothing to place.
    #[error("{0}")]
    NotPlaceable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Shopify did not answer the address (retry later).
    #[error("Shopify unavailable: {0}")]
    Shopify(AdminError),
    /// AliExpress refused or did not answer before anything was created (retry later).
    #[error("AliExpress unavailable: {0}")]
    Ae(AeError),
    /// dropsync has no Shopify token for the shop.
    #[error("no Shopify access for this shop")]
    NoToken,
    /// Shopify refused the shop's renewal: the merchant must reconnect before placing.
    #[error("the shop must be reconnected to Shopify: {0}")]
    ReconnectRequired(String),
    /// The AliExpress authorization has ended: nothing can be placed until the merchant
    /// re-authorizes. Checked before anything is read or claimed, so the order is unchanged.
    #[error("{0}")]
    AuthorizationEnded(String),
}

/// Why a mapping was not stored.
#[derive(Debug, thiserror::Error)]
pub enum MappingCheckError {
    /// The product or SKU does not exist on AliExpress (or is not sold there): a 422 naming it.
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
    #[error("AliExpress unavailable: {0}")]
    Ae(AeError),
}

/// A future the API can hold behind a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The placement service as the API sees it (object-safe, so the router needs no more type
/// parameters).
pub trait Placer: Send + Sync + std::fmt::Debug {
    /// Places the order's paid, mapped line items that have no supplier order yet.
    fn place<'a>(
        &'a self,
        shop: &'a ShopDomain,
        order_id: u64,
    ) -> BoxFuture<'a, Result<StoredOrder, PlaceError>>;

    /// Completes and checks mapping rows with `ds.product.get` (seller, `sku_attr`, title,
    /// price).
    fn check_mapping<'a>(
        &'a self,
        mapping: VariantMapping,
    ) -> BoxFuture<'a, Result<VariantMapping, MappingCheckError>>;
}

/// The placement service.
#[derive(Debug)]
pub struct PlaceService<P, S> {
    pub store: Store,
    pub ae: Arc<P>,
    pub shopify: Arc<S>,
    pub credentials: Arc<Credentials>,
}

impl<P, S> Placer for PlaceService<P, S>
where
    P: AliExpressPlacing + std::fmt::Debug + 'static,
    S: AddressSource + std::fmt::Debug + 'static,
{
    fn place<'a>(
        &'a self,
        shop: &'a ShopDomain,
        order_id: u64,
    ) -> BoxFuture<'a, Result<StoredOrder, PlaceError>> {
        Box::pin(self.place_order(shop, order_id))
    }

    fn check_mapping<'a>(
        &'a self,
        mapping: VariantMapping,
    ) -> BoxFuture<'a, Result<VariantMapping, MappingCheckError>> {
        Box::pin(self.check_mapping_impl(mapping))
    }
}

/// The address as `order.create` wants it.
fn logistics_address(a: &CheckedAddress) -> LogisticsAddress {
    LogisticsAddress {
        address: a.address.clone(),
        address2: a.address2.clone(),
        city: a.city.clone(),
        province: a.province.clone(),
        country: a.country.clone(),
        zip: a.zip.clone(),
        contact_person: a.contact_person.clone(),
        full_name: a.full_name.clone(),
        mobile_no: a.mobile_no.clone(),
        phone_country: a.phone_country.clone(),
        cpf: a.cpf.clone(),
        tax_number: None,
    }
}

/// The cheapest option (ties: the first listed), by the fee for this item's value.
fn cheapest(options: &[FreightOption], value_cents: u64) -> Option<&FreightOption> {
    options
        .iter()
        .filter_map(|o| o.fee_cents(value_cents).map(|fee| (fee, o)))
        .min_by_key(|(fee, _)| *fee)
        .map(|(_, o)| o)
}

impl<P: AliExpressPlacing, S: AddressSource> PlaceService<P, S> {
    /// The shop's Shopify token. The one place placement reads it, so a token provider can
    /// replace this without touching the rest.
    async fn shop_token(&self, shop: &ShopDomain) -> Result<String, PlaceError> {
        let tokens = crate::tokens::shared(
            &self.store,
            &self.credentials,
            self.shopify.admin_base_override(),
        )
        .map_err(|e| PlaceError::Shopify(AdminError::Retryable(e.to_string())))?;
        tokens.token(shop).await.map_err(|e| match e {
            ProviderError::NotConnected => PlaceError::NoToken,
            ProviderError::ReconnectRequired(why) => PlaceError::ReconnectRequired(why),
            ProviderError::Unavailable(why) => PlaceError::Shopify(AdminError::Retryable(why)),
        })
    }

    async fn record_failure(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        failure: Failure,
    ) -> Result<StoredOrder, PlaceError> {
        info!(shop = %shop, order_id, code = %failure.code, "placement failed before sending");
        let now = now_ms();
        self.store
            .update_order(shop, order_id, |o| {
                fail_before_sending(o, failure.clone(), now)
            })
            .await?
            .ok_or(PlaceError::NotFound)
    }

    /// Places the order (see the module documentation) and answers it as stored afterwards.
    pub async fn place_order(
        &self,
        shop: &ShopDomain,
        order_id: u64,
    ) -> Result<StoredOrder, PlaceError> {
        let stored = self
            .store
            .get_order(shop, order_id)
            .await?
            .ok_or(PlaceError::NotFound)?;
        let order = &stored.order;
        if !is_placeable(order) {
            return Err(PlaceError::NotPlaceable(format!(
                "the order is {} in Shopify: only paid, open orders are placed",
                if order.shopify.cancelled || order.shopify.financial_status.is_void() {
                    "canceled"
                } else {
                    "not paid"
                }
            )));
        }
        let now = now_ms();
        let mut lines = lines_to_place(order);
        // Unknown outcomes still inside AliExpress' 24 h memory are re-sent with their own key.
        let sellers: Vec<u64> = order.placements.iter().map(|p| p.seller_id).collect();
        for seller in sellers {
            if let Claim::Send { resend: true, .. } = decide_claim(order, seller, now)
                && let Some(p) = latest(order, seller)
            {
                lines.extend(p.line_item_ids.iter().copied());
            }
        }
        lines.sort_unstable();
        lines.dedup();
        if lines.is_empty() {
            return Ok(stored);
        }

        if let Some(app_key) = self.ae.app_key()
            && let Some(why) =
                crate::connect::aliexpress_authorization_ended(&self.store, app_key).await
        {
            info!(shop = %shop, order_id, "placement refused: AliExpress must be re-authorized");
            return Err(PlaceError::AuthorizationEnded(why));
        }
        let token = self.shop_token(shop).await?;
        let address = match self.shopify.shipping_address(shop, &token, order_id).await {
            Ok(Some(Some(a))) => a,
            Ok(Some(None)) => {
                return self
                    .record_failure(
                        shop,
                        order_id,
                        Failure::new("ADDRESS_MISSING", "The order has no shipping address"),
                    )
                    .await;
            }
            Ok(None) => return Err(PlaceError::NotFound),
            Err(e) => {
                warn!(shop = %shop, order_id, error = %e, "cannot read the shipping address");
                return Err(PlaceError::Shopify(e));
            }
        };
        let checked = match preflight(&address) {
            Ok(a) => a,
            Err(f) => return self.record_failure(shop, order_id, f).await,
        };
        drop(address);

        let variants: Vec<u64> = order
            .shopify
            .line_items
            .iter()
            .filter(|li| lines.contains(&li.id))
            .filter_map(|li| li.variant_id)
            .collect();
        let mappings = self.store.mappings_for(shop, &variants).await?;
        let groups = match group_by_seller(order, &lines, &mappings, &checked.country) {
            Ok(g) => g,
            Err(unmapped) => {
                let ids: Vec<String> = unmapped.iter().map(u64::to_string).collect();
                let f = Failure::new(
                    "NO_MAPPING",
                    &format!(
                        "Line items {} have no mapping for shipping to {}",
                        ids.join(", "),
                        checked.country
                    ),
                );
                return self.record_failure(shop, order_id, f).await;
            }
        };
        let mut first_error = None;
        for group in groups {
            if let Err(e) = self
                .place_seller(shop, order_id, &group, &checked, &mappings)
                .await
            {
                warn!(shop = %shop, order_id, seller_id = group.seller_id, error = %e, "placement not completed");
                first_error.get_or_insert(e);
            }
        }
        let after = self
            .store
            .get_order(shop, order_id)
            .await?
            .ok_or(PlaceError::NotFound)?;
        match first_error {
            Some(e) if after.order.placements.is_empty() => Err(e),
            _ => Ok(after),
        }
    }

    /// Asks `ds.product.get` again for every item of the group: the `sku_attr` of each item as
    /// AliExpress describes it now, or a definitive failure when a product was taken offline,
    /// is no longer sold to the country, or no longer has the mapped SKU.
    async fn current_sku_attrs(
        &self,
        group: &SellerGroup,
        country: &str,
    ) -> Result<Result<Vec<String>, Failure>, PlaceError> {
        let mut products: BTreeMap<u64, dropsync_aliexpress::AeProduct> = BTreeMap::new();
        let mut out = Vec::with_capacity(group.items.len());
        for item in &group.items {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                products.entry(item.product_id)
            {
                match self
                    .ae
                    .product_get(item.product_id, country)
                    .await
                    .map_err(PlaceError::Ae)?
                {
                    ProductAnswer::Found(p) if p.on_sale() => {
                        slot.insert(p);
                    }
                    ProductAnswer::Found(p) => {
                        return Ok(Err(Failure::new(
                            "PRODUCT_UNAVAILABLE",
                            &format!(
                                "AliExpress product {} is not on sale any more (status {})",
                                item.product_id,
                                p.status.as_deref().unwrap_or("unknown")
                            ),
                        )));
                    }
                    ProductAnswer::Refused { code, message } => {
                        return Ok(Err(Failure::new(
                            "PRODUCT_UNAVAILABLE",
                            &format!(
                                "AliExpress product {} cannot be ordered to {country}: {code} {message}",
                                item.product_id
                            ),
                        )));
                    }
                }
            }
            let sku = products
                .get(&item.product_id)
                .and_then(|p| p.sku(&item.sku_id));
            match sku {
                Some(sku) if !sku.sku_attr.is_empty() => out.push(sku.sku_attr.clone()),
                Some(_) => out.push(item.sku_attr.clone()),
                None => {
                    return Ok(Err(Failure::new(
                        "SKU_CHANGED",
                        &format!(
                            "SKU {} is no longer a SKU of AliExpress product {}",
                            item.sku_id, item.product_id
                        ),
                    )));
                }
            }
        }
        Ok(Ok(out))
    }

    /// The shipping method of each item: the mapping's, else the cheapest option to the
    /// country. `Err(Failure)` when an item has none.
    async fn shipping_methods(
        &self,
        group: &SellerGroup,
        country: &str,
        mappings: &BTreeMap<u64, VariantMapping>,
    ) -> Result<Result<Vec<String>, Failure>, PlaceError> {
        let mut out = Vec::new();
        for item in &group.items {
            if let Some(m) = &item.shipping_method {
                out.push(m.clone());
                continue;
            }
            let options = self
                .ae
                .freight_query(item.product_id, &item.sku_id, item.count, country)
                .await
                .map_err(PlaceError::Ae)?;
            let value = mappings
                .values()
                .flat_map(|m| m.rows.iter())
                .find(|r| r.product_id == item.product_id && r.sku_id == item.sku_id)
                .and_then(|r| r.price.as_deref())
                .and_then(dropsync_aliexpress::place::decimal_cents)
                .unwrap_or(0)
                .saturating_mul(u64::from(item.count));
            match cheapest(&options, value) {
                Some(o) => out.push(o.code.clone()),
                None => {
                    return Ok(Err(Failure::new(
                        "NO_SHIPPING_METHOD",
                        &format!(
                            "AliExpress offers no shipping method for product {} to {country}: choose one for its mapping, or map a supplier that ships there",
                            item.product_id
                        ),
                    )));
                }
            }
        }
        Ok(Ok(out))
    }

    /// Claims, sends and records one seller's `order.create`.
    async fn place_seller(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        group: &SellerGroup,
        address: &CheckedAddress,
        mappings: &BTreeMap<u64, VariantMapping>,
    ) -> Result<(), PlaceError> {
        let seller = group.seller_id;
        // The mapping was checked when it was stored; the product may have gone since. A check
        // now turns "the supplier took it down" into plain advice instead of a create that fails
        // with an opaque code (or, worse, buys a different SKU under the old attributes).
        let methods = match self.current_sku_attrs(group, &address.country).await? {
            Err(failure) => Err(failure),
            Ok(attrs) => self
                .shipping_methods(group, &address.country, mappings)
                .await?
                .map(|methods| methods.into_iter().zip(attrs).collect::<Vec<_>>()),
        };

        // The claim: one conditional write; a lost race re-decides from what is stored now.
        let mut claimed: Option<Claim> = None;
        let now = now_ms();
        self.store
            .update_order(shop, order_id, |o| {
                claimed = None;
                let claim = decide_claim(o, seller, now);
                if !matches!(claim, Claim::Send { .. }) {
                    return false;
                }
                let ok = apply_claim(o, seller, &claim, &group.line_item_ids, now);
                if ok {
                    claimed = Some(claim);
                }
                ok
            })
            .await?
            .ok_or(PlaceError::NotFound)?;
        let Some(Claim::Send {
            attempt,
            out_order_id,
            resend,
        }) = claimed
        else {
            info!(shop = %shop, order_id, seller_id = seller, "placement already in flight or settled");
            return Ok(());
        };

        let items_for_outcome: LineSkus = group
            .items
            .iter()
            .map(|i| (i.line_item_id, i.product_id.to_string(), i.sku_id.clone()))
            .collect();
        let outcome = match methods {
            Err(failure) => Outcome::Failed(failure),
            Ok(methods) => {
                let req = PlaceOrderRequest {
                    out_order_id: out_order_id.clone(),
                    address: logistics_address(address),
                    items: group
                        .items
                        .iter()
                        .zip(methods)
                        .map(|(i, (m, sku_attr))| PlaceItem {
                            product_id: i.product_id,
                            count: i.count,
                            sku_attr,
                            logistics_service_name: m,
                        })
                        .collect(),
                };
                info!(shop = %shop, order_id, seller_id = seller, out_order_id = %out_order_id, resend, "sending order.create");
                match self.ae.order_create(&req).await {
                    Ok(CreateOutcome::Created { order_ids, note }) => {
                        self.own_created(shop, order_id, order_ids, note).await?
                    }
                    Ok(CreateOutcome::Rejected { code, message }) => {
                        Outcome::Failed(Failure::new(&code, &message))
                    }
                    Ok(CreateOutcome::Repeated { .. }) => Outcome::Repeated,
                    Ok(CreateOutcome::Unknown { reason }) => Outcome::Unknown(reason),
                    Err(e) => {
                        // Refused before processing: nothing was created by this send.
                        return self
                            .release_claim(shop, order_id, seller, attempt, resend, e)
                            .await;
                    }
                }
            }
        };
        let label = match &outcome {
            Outcome::Created { .. } => "created",
            Outcome::Failed(_) => "failed",
            Outcome::Repeated => "repeated",
            Outcome::Unknown(_) => "unknown",
        };
        let now = now_ms();
        self.store
            .update_order(shop, order_id, |o| {
                record_outcome(o, seller, attempt, &outcome, &items_for_outcome, now)
            })
            .await?;
        info!(shop = %shop, order_id, seller_id = seller, out_order_id = %out_order_id, outcome = label, "placement recorded");
        Ok(())
    }

    /// Takes ownership of the created ids; an id owned by another order (which AliExpress should
    /// never hand out twice) is not linked here and leaves the outcome for the merchant.
    async fn own_created(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        ids: Vec<u64>,
        note: Option<String>,
    ) -> Result<Outcome, PlaceError> {
        for id in &ids {
            if let Ownership::Elsewhere { .. } = self
                .store
                .claim_aliexpress_order(shop, order_id, *id)
                .await?
            {
                warn!(shop = %shop, order_id, ae_order_id = id, "created AliExpress order id is linked to another order");
                return Ok(Outcome::Unknown(format!(
                    "AliExpress answered with order {id}, which is linked to another order"
                )));
            }
        }
        Ok(Outcome::Created {
            aliexpress_order_ids: ids,
            note,
        })
    }

    /// AliExpress refused the request before processing it. A new attempt's claim is dropped
    /// (nothing exists for its key); a re-send goes back to its unknown outcome.
    async fn release_claim(
        &self,
        shop: &ShopDomain,
        order_id: u64,
        seller: u64,
        attempt: u32,
        resend: bool,
        err: AeError,
    ) -> Result<(), PlaceError> {
        let now = now_ms();
        let reason = format!("re-send refused by AliExpress: {err}");
        self.store
            .update_order(shop, order_id, |o| {
                if resend {
                    return record_outcome(
                        o,
                        seller,
                        attempt,
                        &Outcome::Unknown(reason.clone()),
                        &Vec::new(),
                        now,
                    );
                }
                let before = o.placements.len();
                o.placements.retain(|p| {
                    !(p.seller_id == seller
                        && p.attempt == attempt
                        && matches!(
                            p.state,
                            dropsync_domain::placement::PlacementState::Sending { .. }
                        ))
                });
                o.placements.len() != before
            })
            .await?;
        Err(PlaceError::Ae(err))
    }

    async fn check_mapping_impl(
        &self,
        mut mapping: VariantMapping,
    ) -> Result<VariantMapping, MappingCheckError> {
        mapping
            .validate()
            .map_err(|e| MappingCheckError::Invalid(e.to_string()))?;
        for row in &mut mapping.rows {
            let country = row.ship_to.first().map_or("US", String::as_str);
            let product = match self.ae.product_get(row.product_id, country).await {
                Ok(ProductAnswer::Found(p)) => p,
                Ok(ProductAnswer::Refused { code, message }) => {
                    return Err(MappingCheckError::Unknown(format!(
                        "AliExpress product {} is unknown or not sold to {country} ({code} {message})",
                        row.product_id
                    )));
                }
                Err(e) => return Err(MappingCheckError::Ae(e)),
            };
            let Some(sku) = product.sku(&row.sku_id) else {
                return Err(MappingCheckError::Unknown(format!(
                    "SKU {} is not a SKU of AliExpress product {}",
                    row.sku_id, row.product_id
                )));
            };
            let Some(seller) = product.store_id else {
                return Err(MappingCheckError::Unknown(format!(
                    "AliExpress product {} has no seller",
                    row.product_id
                )));
            };
            *row = MappingRow {
                sku_attr: sku.sku_attr.clone(),
                seller_id: seller,
                title: product.title.clone().unwrap_or_default(),
                price: sku.price.clone(),
                ..row.clone()
            };
        }
        Ok(mapping)
    }
}

/// Places several orders, each independently; `(order id, result)` in the order given.
pub async fn place_many(
    placer: &dyn Placer,
    shop: &ShopDomain,
    order_ids: &[u64],
) -> Vec<(u64, Result<StoredOrder, PlaceError>)> {
    let mut out = Vec::with_capacity(order_ids.len());
    for id in order_ids {
        out.push((*id, placer.place(shop, *id).await));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(code: &str, fee: &str, free: bool) -> FreightOption {
        FreightOption {
            code: code.into(),
            fee: Some(fee.into()),
            free_shipping: free,
            ..FreightOption::default()
        }
    }

    #[test]
    fn the_cheapest_option_wins_and_free_beats_everything() {
        let opts = [
            option("EMS", "19.99", false),
            option("CAINIAO_STANDARD", "2.35", false),
            option("CAINIAO_FULFILLMENT_STD", "4.10", false),
        ];
        assert_eq!(cheapest(&opts, 0).unwrap().code, "CAINIAO_STANDARD");
        let with_free = [option("EMS", "19.99", false), option("FREE", "9.00", true)];
        assert_eq!(cheapest(&with_free, 0).unwrap().code, "FREE");
        assert!(cheapest(&[], 0).is_none());
    }
}
