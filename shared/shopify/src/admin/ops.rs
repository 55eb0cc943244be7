//! [`ShopifyAdmin`] over the Admin GraphQL API: variables in, typed `data` out, follow-up pages
//! until the picture is complete.

use super::AdminError;
use super::client::AdminClient;
use super::documents::{
    ALL_FULFILLMENTS_FIRST, FULFILLMENTS_FIRST, OP_FULFILLMENT_CREATE, OP_FULFILLMENT_DETAIL,
    OP_FULFILLMENT_ORDER_LINE_ITEMS_PAGE, OP_FULFILLMENT_ORDERS_PAGE,
    OP_FULFILLMENT_TRACKING_INFO_UPDATE, OP_ORDER_FOR_SYNC, OP_ORDER_FULFILLMENT_IDS,
    OP_ORDER_FULFILLMENT_STATE, OP_ORDER_LINE_ITEMS_PAGE, OP_ORDERS_UPDATED_SINCE,
    OP_SHOP_TOKEN_CHECK, Operation, SYNC_FULFILLMENTS_FIRST, TRACKING_FIRST,
};
use super::types::{
    ExistingFulfillment, FoLineItem, FulfillmentOrder, FulfillmentRequest, FulfillmentState,
    MutationOutcome, OrderStamp, OrderStampPage, ShopifyAdmin, TrackingInfo,
};
use dropsync_domain::{FinancialStatus, LineItem, ShopDomain, ShopifyFacts, gid, parse_shopify_id};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Follow-up pages per list before giving up: far beyond any real order, it only stops a
/// misbehaving server from keeping a Lambda busy forever.
const MAX_PAGES: usize = 200;

// ---- response shapes (only what the documents select) ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conn<T> {
    nodes: Vec<T>,
    #[serde(default)]
    page_info: PageInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    #[serde(default)]
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdNode {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ActionNode {
    action: String,
}

#[derive(Debug, Deserialize)]
struct LocationNode {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoNode {
    id: String,
    status: String,
    #[serde(default)]
    request_status: Option<String>,
    #[serde(default)]
    supported_actions: Vec<ActionNode>,
    #[serde(default)]
    assigned_location: Option<LocationNode>,
    line_items: Conn<FoLineNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoLineNode {
    id: String,
    remaining_quantity: i64,
    total_quantity: i64,
    line_item: IdNode,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FulfillmentNode {
    id: String,
    status: String,
    #[serde(default)]
    tracking_info: Vec<TrackingNode>,
    /// Absent in OrderForSync, which needs only the tracking numbers.
    #[serde(default)]
    fulfillment_line_items: Option<Conn<FulfillmentLineNode>>,
}

#[derive(Debug, Deserialize)]
struct TrackingNode {
    #[serde(default)]
    number: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FulfillmentLineNode {
    #[serde(default)]
    quantity: Option<i64>,
    line_item: IdNode,
}

#[derive(Debug, Deserialize)]
struct Root<T> {
    order: Option<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateOrder {
    display_fulfillment_status: String,
    fulfillment_orders: Conn<FoNode>,
    fulfillments: Vec<FulfillmentNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoPageOrder {
    fulfillment_orders: Conn<FoNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoLinesRoot {
    fulfillment_order: Option<FoLinesFo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoLinesFo {
    line_items: Conn<FoLineNode>,
}

#[derive(Debug, Deserialize)]
struct IdsOrder {
    fulfillments: Vec<IdNode>,
}

#[derive(Debug, Deserialize)]
struct DetailRoot {
    fulfillment: Option<FulfillmentNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyncOrder {
    id: String,
    legacy_resource_id: String,
    name: String,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    display_financial_status: Option<String>,
    display_fulfillment_status: String,
    #[serde(default)]
    cancelled_at: Option<String>,
    test: bool,
    line_items: Conn<SyncLineNode>,
    fulfillments: Vec<FulfillmentNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyncLineNode {
    id: String,
    current_quantity: i64,
    unfulfilled_quantity: i64,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    product: Option<IdNode>,
    #[serde(default)]
    variant: Option<IdNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinesPageOrder {
    line_items: Conn<SyncLineNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRoot {
    fulfillment_create: Option<MutationPayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRoot {
    fulfillment_tracking_info_update: Option<MutationPayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MutationPayload {
    #[serde(default)]
    fulfillment: Option<IdNode>,
    #[serde(default)]
    user_errors: Vec<UserErrorNode>,
}

#[derive(Debug, Deserialize)]
struct UserErrorNode {
    #[serde(default)]
    field: Option<Vec<String>>,
    message: String,
}

// ---- variables ----

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct FulfillmentInput<'a> {
    line_items_by_fulfillment_order: Vec<ByFulfillmentOrder<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracking_info: Option<TrackingInput<'a>>,
    notify_customer: bool,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ByFulfillmentOrder<'a> {
    fulfillment_order_id: &'a str,
    /// Omitted when empty: Shopify then fulfils everything left in the FO.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fulfillment_order_line_items: Vec<FoLineInput<'a>>,
}

#[derive(Debug, Serialize, PartialEq)]
struct FoLineInput<'a> {
    id: &'a str,
    quantity: u32,
}

/// `FulfillmentTrackingInput` with the singular fields only: Shopify refuses `number` with
/// `numbers` and `url` with `urls`, and a `url` without a number.
#[derive(Debug, Default, Serialize, PartialEq)]
struct TrackingInput<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    company: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

fn non_blank(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}

/// Values are sent as given (a trimmed number would no longer match the caller's records when
/// it looks for its own fulfillment); blank ones are left out.
fn tracking_input(t: &TrackingInfo) -> TrackingInput<'_> {
    let number = non_blank(&t.number);
    TrackingInput {
        company: t.company.as_deref().and_then(non_blank),
        number,
        url: number.and(t.url.as_deref().and_then(non_blank)),
    }
}

/// `GraphQL Int` is 32-bit signed.
fn gql_quantity(q: u32) -> Result<u32, AdminError> {
    if i32::try_from(q).is_ok() {
        Ok(q)
    } else {
        Err(AdminError::Permanent(format!("quantity {q} is too large")))
    }
}

/// The `FulfillmentCreate` variables: `{"fulfillment": FulfillmentInput}`.
fn fulfillment_create_variables(req: &FulfillmentRequest) -> Result<Value, AdminError> {
    if req.line_items_by_fo.is_empty() {
        return Err(AdminError::Permanent(
            "a fulfillment needs at least one fulfillment order".to_owned(),
        ));
    }
    let mut by_fo = Vec::with_capacity(req.line_items_by_fo.len());
    for (fo_id, items) in &req.line_items_by_fo {
        let mut lines = Vec::with_capacity(items.len());
        for (id, quantity) in items {
            lines.push(FoLineInput {
                id,
                quantity: gql_quantity(*quantity)?,
            });
        }
        by_fo.push(ByFulfillmentOrder {
            fulfillment_order_id: fo_id,
            fulfillment_order_line_items: lines,
        });
    }
    let tracking = tracking_input(&req.tracking);
    let input = FulfillmentInput {
        line_items_by_fulfillment_order: by_fo,
        tracking_info: (tracking != TrackingInput::default()).then_some(tracking),
        notify_customer: req.notify_customer,
    };
    Ok(json!({ "fulfillment": input }))
}

fn tracking_update_variables(
    fulfillment_id: &str,
    tracking: &TrackingInfo,
    notify_customer: bool,
) -> Value {
    json!({
        "fulfillmentId": fulfillment_id,
        "trackingInfoInput": tracking_input(tracking),
        "notifyCustomer": notify_customer,
    })
}

// ---- conversions ----

fn decode<T: DeserializeOwned>(op: &Operation, data: Value) -> Result<T, AdminError> {
    serde_json::from_value(data)
        .map_err(|e| AdminError::Permanent(format!("unexpected {} response: {e}", op.name)))
}

/// Quantities are `Int`; negative ones (never seen) count as zero.
fn quantity(q: i64) -> u32 {
    u32::try_from(q.max(0)).unwrap_or(u32::MAX)
}

fn numeric_id(raw: &str, what: &str) -> Result<u64, AdminError> {
    parse_shopify_id(raw)
        .ok_or_else(|| AdminError::Permanent(format!("unreadable {what} id {raw:?}")))
}

fn fo_line(node: FoLineNode) -> Result<FoLineItem, AdminError> {
    Ok(FoLineItem {
        line_item_id: numeric_id(&node.line_item.id, "line item")?,
        id: node.id,
        remaining_quantity: quantity(node.remaining_quantity),
        total_quantity: quantity(node.total_quantity),
    })
}

fn fulfillment(node: FulfillmentNode) -> Result<ExistingFulfillment, AdminError> {
    let mut line_items = Vec::new();
    for line in node
        .fulfillment_line_items
        .map(|c| c.nodes)
        .unwrap_or_default()
    {
        line_items.push((
            numeric_id(&line.line_item.id, "line item")?,
            quantity(line.quantity.unwrap_or(0)),
        ));
    }
    Ok(ExistingFulfillment {
        id: node.id,
        status: node.status,
        tracking_numbers: tracking_numbers(&node.tracking_info),
        line_items,
    })
}

fn tracking_numbers(nodes: &[TrackingNode]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|t| t.number.as_deref().and_then(non_blank))
        .map(str::to_owned)
        .collect()
}

fn needs_detail(node: &FulfillmentNode) -> bool {
    node.tracking_info.len() >= TRACKING_FIRST
        || node
            .fulfillment_line_items
            .as_ref()
            .is_some_and(|c| c.page_info.has_next_page)
}

/// Tracking numbers of the `SUCCESS` fulfillments, trimmed, first seen first, no duplicates: the
/// same rule the webhook parser applies to REST `fulfillments[]`, so both paths store the same facts.
fn successful_tracking(fulfillments: &[ExistingFulfillment]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in fulfillments
        .iter()
        .filter(|f| f.status.trim().eq_ignore_ascii_case("SUCCESS"))
    {
        for number in &f.tracking_numbers {
            let number = number.trim();
            if !number.is_empty() && !out.iter().any(|n| n == number) {
                out.push(number.to_owned());
            }
        }
    }
    out
}

/// `displayFulfillmentStatus` in the webhook's `fulfillment_status` words (`null` = nothing
/// fulfilled, `partial`, `fulfilled`, `restocked`); other values lower-cased, kept open.
fn rest_fulfillment_status(display: &str) -> Option<String> {
    match display {
        "UNFULFILLED" | "" => None,
        "FULFILLED" => Some("fulfilled".to_owned()),
        "PARTIALLY_FULFILLED" => Some("partial".to_owned()),
        other => Some(other.to_ascii_lowercase()),
    }
}

fn timestamp_ms(raw: &str, what: &str) -> Result<i64, AdminError> {
    let at = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AdminError::Permanent(format!("unreadable {what} {raw:?}")))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| AdminError::Permanent(format!("{what} out of range")))
}

fn line_item(node: SyncLineNode) -> Result<LineItem, AdminError> {
    let current = quantity(node.current_quantity);
    let optional_id = |n: &Option<IdNode>| n.as_ref().and_then(|n| parse_shopify_id(&n.id));
    Ok(LineItem {
        id: numeric_id(&node.id, "line item")?,
        // What is left to ship after edits and refunds (the webhook's `current_quantity`).
        quantity: current,
        sku: node.sku.filter(|s| !s.trim().is_empty()),
        product_id: optional_id(&node.product),
        variant_id: optional_id(&node.variant),
        title: node.title,
        // Shopify's own count: what is left to ship minus what is not yet fulfilled.
        fulfilled_quantity: current.saturating_sub(quantity(node.unfulfilled_quantity)),
    })
}

fn facts(
    order: SyncOrder,
    lines: Vec<SyncLineNode>,
    fulfillments: &[ExistingFulfillment],
) -> Result<(u64, ShopifyFacts), AdminError> {
    let id = order
        .legacy_resource_id
        .parse::<u64>()
        .ok()
        .or_else(|| parse_shopify_id(&order.id))
        .ok_or_else(|| AdminError::Permanent(format!("unreadable order id {:?}", order.id)))?;
    // Lower-cased so an unknown value is stored like the webhook's REST words; absent is
    // `Other("")`, as in the webhook parser.
    let financial_status = match order.display_financial_status {
        Some(s) => FinancialStatus::parse(&s.to_ascii_lowercase()),
        None => FinancialStatus::Other(String::new()),
    };
    let line_items = lines.into_iter().map(line_item).collect::<Result<_, _>>()?;
    Ok((
        id,
        ShopifyFacts {
            name: order.name,
            created_at_ms: timestamp_ms(&order.created_at, "createdAt")?,
            updated_at_ms: timestamp_ms(&order.updated_at, "updatedAt")?,
            financial_status,
            cancelled: order.cancelled_at.is_some(),
            test: order.test,
            fulfillment_status: rest_fulfillment_status(&order.display_fulfillment_status),
            line_items,
            fulfillment_tracking: successful_tracking(fulfillments),
        },
    ))
}

fn mutation_outcome(
    op: &Operation,
    payload: Option<MutationPayload>,
) -> Result<MutationOutcome, AdminError> {
    let payload =
        payload.ok_or_else(|| AdminError::Permanent(format!("{} returned no payload", op.name)))?;
    if !payload.user_errors.is_empty() {
        return Ok(MutationOutcome::UserErrors(
            payload
                .user_errors
                .into_iter()
                .map(|e| match e.field.filter(|f| !f.is_empty()) {
                    Some(field) => format!("{}: {}", field.join("."), e.message),
                    None => e.message,
                })
                .collect(),
        ));
    }
    Ok(MutationOutcome::Done {
        fulfillment_id: payload.fulfillment.map(|f| f.id),
    })
}

fn next_cursor(
    page: PageInfo,
    pages: &mut usize,
    what: &str,
) -> Result<Option<String>, AdminError> {
    if !page.has_next_page {
        return Ok(None);
    }
    *pages += 1;
    if *pages > MAX_PAGES {
        return Err(AdminError::Permanent(format!(
            "more than {MAX_PAGES} pages of {what}"
        )));
    }
    page.end_cursor
        .map(Some)
        .ok_or_else(|| AdminError::Permanent(format!("{what}: hasNextPage without endCursor")))
}

// ---- the calls ----

impl AdminClient {
    async fn query<T: DeserializeOwned>(
        &self,
        shop: &ShopDomain,
        token: &str,
        op: &Operation,
        variables: Value,
        order_id: u64,
    ) -> Result<T, AdminError> {
        let data = self.run(shop, token, op, variables, Some(order_id)).await?;
        decode(op, data)
    }

    /// Completes one FO's line items beyond its first page.
    async fn rest_of_fo_lines(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
        fo_id: &str,
        mut page: PageInfo,
        lines: &mut Vec<FoLineNode>,
    ) -> Result<(), AdminError> {
        let mut pages = 0;
        while let Some(after) = next_cursor(page, &mut pages, "fulfillment order line items")? {
            let root: FoLinesRoot = self
                .query(
                    shop,
                    token,
                    &OP_FULFILLMENT_ORDER_LINE_ITEMS_PAGE,
                    json!({"id": fo_id, "after": after}),
                    order_id,
                )
                .await?;
            let fo = root.fulfillment_order.ok_or_else(|| {
                AdminError::Retryable(format!(
                    "fulfillment order {fo_id} vanished while reading it"
                ))
            })?;
            lines.extend(fo.line_items.nodes);
            page = fo.line_items.page_info;
        }
        Ok(())
    }

    /// One fulfillment in full; `None` if it no longer exists.
    async fn fulfillment_detail(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
        fulfillment_id: &str,
    ) -> Result<Option<ExistingFulfillment>, AdminError> {
        let mut pages = 0;
        let mut after: Option<String> = None;
        let mut out: Option<ExistingFulfillment> = None;
        loop {
            let root: DetailRoot = self
                .query(
                    shop,
                    token,
                    &OP_FULFILLMENT_DETAIL,
                    json!({"id": fulfillment_id, "after": after}),
                    order_id,
                )
                .await?;
            let Some(mut node) = root.fulfillment else {
                return Ok(out);
            };
            let page = node
                .fulfillment_line_items
                .as_mut()
                .map(|c| std::mem::take(&mut c.page_info))
                .unwrap_or_default();
            let part = fulfillment(node)?;
            match out.as_mut() {
                None => out = Some(part),
                Some(f) => f.line_items.extend(part.line_items),
            }
            match next_cursor(page, &mut pages, "fulfillment line items")? {
                Some(cursor) => after = Some(cursor),
                None => return Ok(out),
            }
        }
    }

    /// Turns a first, possibly short, list of fulfillments into the complete one: when the list
    /// was full, every id is listed; fulfillments with a full tracking list or more line items
    /// are read one by one.
    async fn complete_fulfillments(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
        nodes: Vec<FulfillmentNode>,
        first: usize,
    ) -> Result<Vec<ExistingFulfillment>, AdminError> {
        let list_full = nodes.len() >= first;
        let mut detail: Vec<String> = nodes
            .iter()
            .filter(|n| needs_detail(n))
            .map(|n| n.id.clone())
            .collect();
        let mut order: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        let mut by_id: HashMap<String, ExistingFulfillment> = HashMap::new();
        for node in nodes {
            let f = fulfillment(node)?;
            by_id.insert(f.id.clone(), f);
        }
        if list_full {
            let root: Root<IdsOrder> = self
                .query(
                    shop,
                    token,
                    &OP_ORDER_FULFILLMENT_IDS,
                    json!({"id": gid("Order", order_id)}),
                    order_id,
                )
                .await?;
            let ids = root
                .order
                .ok_or_else(|| AdminError::Retryable("order vanished while reading it".to_owned()))?
                .fulfillments;
            if ids.len() >= ALL_FULFILLMENTS_FIRST {
                // Order.fulfillments has no cursor: past this, dropsync cannot be sure it sees
                // every fulfillment, and fulfilling blind could duplicate one.
                return Err(AdminError::Permanent(format!(
                    "order has {ALL_FULFILLMENTS_FIRST} or more fulfillments; too many to check"
                )));
            }
            order = ids.into_iter().map(|n| n.id).collect();
            detail.extend(order.iter().filter(|id| !by_id.contains_key(*id)).cloned());
        }
        for id in detail {
            match self.fulfillment_detail(shop, token, order_id, &id).await? {
                Some(f) => {
                    by_id.insert(id, f);
                }
                None => {
                    by_id.remove(&id);
                }
            }
        }
        Ok(order
            .into_iter()
            .filter_map(|id| by_id.remove(&id))
            .collect())
    }

    async fn fulfillment_state_impl(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> Result<Option<FulfillmentState>, AdminError> {
        let order_gid = gid("Order", order_id);
        let root: Root<StateOrder> = self
            .query(
                shop,
                token,
                &OP_ORDER_FULFILLMENT_STATE,
                json!({"id": order_gid}),
                order_id,
            )
            .await?;
        let Some(order) = root.order else {
            tracing::info!(shop = shop.as_str(), order_id, "order not found in Shopify");
            return Ok(None);
        };
        let mut fo_nodes = order.fulfillment_orders.nodes;
        let mut page = order.fulfillment_orders.page_info;
        let mut pages = 0;
        while let Some(after) = next_cursor(page, &mut pages, "fulfillment orders")? {
            let more: Root<FoPageOrder> = self
                .query(
                    shop,
                    token,
                    &OP_FULFILLMENT_ORDERS_PAGE,
                    json!({"id": order_gid, "after": after}),
                    order_id,
                )
                .await?;
            let more = more.order.ok_or_else(|| {
                AdminError::Retryable("order vanished while reading it".to_owned())
            })?;
            fo_nodes.extend(more.fulfillment_orders.nodes);
            page = more.fulfillment_orders.page_info;
        }
        let mut fulfillment_orders = Vec::with_capacity(fo_nodes.len());
        for node in fo_nodes {
            let mut lines = node.line_items.nodes;
            self.rest_of_fo_lines(
                shop,
                token,
                order_id,
                &node.id,
                node.line_items.page_info,
                &mut lines,
            )
            .await?;
            fulfillment_orders.push(FulfillmentOrder {
                id: node.id,
                status: node.status,
                request_status: node.request_status,
                supported_actions: node
                    .supported_actions
                    .into_iter()
                    .map(|a| a.action)
                    .collect(),
                location: node.assigned_location.and_then(|l| l.name),
                line_items: lines.into_iter().map(fo_line).collect::<Result<_, _>>()?,
            });
        }
        let fulfillments = self
            .complete_fulfillments(
                shop,
                token,
                order_id,
                order.fulfillments,
                FULFILLMENTS_FIRST,
            )
            .await?;
        Ok(Some(FulfillmentState {
            display_fulfillment_status: order.display_fulfillment_status,
            fulfillment_orders,
            fulfillments,
        }))
    }

    async fn fetch_order_impl(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> Result<Option<(u64, ShopifyFacts)>, AdminError> {
        let order_gid = gid("Order", order_id);
        let root: Root<SyncOrder> = self
            .query(
                shop,
                token,
                &OP_ORDER_FOR_SYNC,
                json!({"id": order_gid}),
                order_id,
            )
            .await?;
        let Some(mut order) = root.order else {
            tracing::info!(shop = shop.as_str(), order_id, "order not found in Shopify");
            return Ok(None);
        };
        let mut lines = std::mem::take(&mut order.line_items.nodes);
        let mut page = std::mem::take(&mut order.line_items.page_info);
        let mut pages = 0;
        while let Some(after) = next_cursor(page, &mut pages, "order line items")? {
            let more: Root<LinesPageOrder> = self
                .query(
                    shop,
                    token,
                    &OP_ORDER_LINE_ITEMS_PAGE,
                    json!({"id": order_gid, "after": after}),
                    order_id,
                )
                .await?;
            let more = more.order.ok_or_else(|| {
                AdminError::Retryable("order vanished while reading it".to_owned())
            })?;
            lines.extend(more.line_items.nodes);
            page = more.line_items.page_info;
        }
        let nodes = std::mem::take(&mut order.fulfillments);
        let fulfillments = self
            .complete_fulfillments(shop, token, order_id, nodes, SYNC_FULFILLMENTS_FIRST)
            .await?;
        facts(order, lines, &fulfillments).map(Some)
    }
}

impl ShopifyAdmin for AdminClient {
    fn admin_base_override(&self) -> Option<String> {
        self.base_override()
    }

    async fn fulfillment_state(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> Result<Option<FulfillmentState>, AdminError> {
        self.fulfillment_state_impl(shop, token, order_id).await
    }

    async fn create_fulfillment(
        &self,
        shop: &ShopDomain,
        token: &str,
        req: &FulfillmentRequest,
    ) -> Result<MutationOutcome, AdminError> {
        let variables = fulfillment_create_variables(req)?;
        let data = self
            .run(
                shop,
                token,
                &OP_FULFILLMENT_CREATE,
                variables,
                Some(req.order_id),
            )
            .await?;
        let root: CreateRoot = decode(&OP_FULFILLMENT_CREATE, data)?;
        let outcome = mutation_outcome(&OP_FULFILLMENT_CREATE, root.fulfillment_create)?;
        match &outcome {
            MutationOutcome::Done { fulfillment_id } => tracing::info!(
                shop = shop.as_str(),
                order_id = req.order_id,
                fulfillment_id = fulfillment_id.as_deref(),
                tracking_number = req.tracking.number.as_str(),
                notify_customer = req.notify_customer,
                "fulfillment created"
            ),
            MutationOutcome::UserErrors(errors) => tracing::warn!(
                shop = shop.as_str(),
                order_id = req.order_id,
                user_errors = ?errors,
                "fulfillment refused by Shopify"
            ),
        }
        Ok(outcome)
    }

    async fn update_tracking(
        &self,
        shop: &ShopDomain,
        token: &str,
        fulfillment_id: &str,
        tracking: &TrackingInfo,
        notify_customer: bool,
    ) -> Result<MutationOutcome, AdminError> {
        let variables = tracking_update_variables(fulfillment_id, tracking, notify_customer);
        let data = self
            .run(
                shop,
                token,
                &OP_FULFILLMENT_TRACKING_INFO_UPDATE,
                variables,
                None,
            )
            .await?;
        let root: UpdateRoot = decode(&OP_FULFILLMENT_TRACKING_INFO_UPDATE, data)?;
        let outcome = mutation_outcome(
            &OP_FULFILLMENT_TRACKING_INFO_UPDATE,
            root.fulfillment_tracking_info_update,
        )?;
        tracing::info!(
            shop = shop.as_str(),
            fulfillment_id,
            tracking_number = tracking.number.as_str(),
            refused = matches!(outcome, MutationOutcome::UserErrors(_)),
            "fulfillment tracking update answered"
        );
        Ok(outcome)
    }

    async fn fetch_order(
        &self,
        shop: &ShopDomain,
        token: &str,
        order_id: u64,
    ) -> Result<Option<(u64, ShopifyFacts)>, AdminError> {
        self.fetch_order_impl(shop, token, order_id).await
    }

    async fn token_refused(&self, shop: &ShopDomain, token: &str) -> Result<bool, AdminError> {
        match self
            .run(shop, token, &OP_SHOP_TOKEN_CHECK, json!({}), None)
            .await
        {
            Ok(_) => Ok(false),
            Err(AdminError::Unauthorized) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn orders_updated_since(
        &self,
        shop: &ShopDomain,
        token: &str,
        since_ms: i64,
        after: Option<&str>,
    ) -> Result<OrderStampPage, AdminError> {
        let since =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(since_ms) * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .ok_or_else(|| {
                    AdminError::Permanent(format!("watermark {since_ms} out of range"))
                })?;
        let variables = json!({"query": format!("updated_at:>='{since}'"), "after": after});
        let data = self
            .run(shop, token, &OP_ORDERS_UPDATED_SINCE, variables, None)
            .await?;
        let root: StampRoot = decode(&OP_ORDERS_UPDATED_SINCE, data)?;
        let mut orders = Vec::with_capacity(root.orders.nodes.len());
        for node in root.orders.nodes {
            let id = node
                .legacy_resource_id
                .parse::<u64>()
                .ok()
                .or_else(|| parse_shopify_id(&node.id))
                .ok_or_else(|| AdminError::Permanent("unreadable order id in a listing".into()))?;
            orders.push(OrderStamp {
                id,
                updated_at_ms: timestamp_ms(&node.updated_at, "updatedAt")?,
            });
        }
        let page = root.orders.page_info;
        let next = if page.has_next_page {
            Some(page.end_cursor.ok_or_else(|| {
                AdminError::Permanent("orders: hasNextPage without endCursor".into())
            })?)
        } else {
            None
        };
        Ok(OrderStampPage { orders, next })
    }
}

#[derive(Deserialize)]
struct StampRoot {
    orders: StampConnection,
}

#[derive(Deserialize)]
struct StampConnection {
    nodes: Vec<StampNode>,
    #[serde(rename = "pageInfo")]
    page_info: StampPageInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StampNode {
    id: String,
    legacy_resource_id: String,
    updated_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StampPageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> FulfillmentRequest {
        FulfillmentRequest {
            order_id: 1,
            line_items_by_fo: vec![(
                "gid://shopify/FulfillmentOrder/1".into(),
                vec![("gid://shopify/FulfillmentOrderLineItem/2".into(), 1)],
            )],
            tracking: TrackingInfo {
                company: Some("YunExpress".into()),
                number: "YT2601234567890123".into(),
                url: Some("https://t.17track.net/en#nums=YT2601234567890123".into()),
            },
            notify_customer: true,
        }
    }

    #[test]
    fn fulfillment_create_variables_match_the_specs_example() {
        // The documented `fulfillmentCreate` variables, under this document's variable name.
        let spec: Value = serde_json::from_str(
            r#"{"f": {"lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1",
                "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/2", "quantity": 1}]}],
               "trackingInfo": {"company": "YunExpress", "number": "YT2601234567890123",
                                "url": "https://t.17track.net/en#nums=YT2601234567890123"},
               "notifyCustomer": true}}"#,
        )
        .unwrap();
        let ours = fulfillment_create_variables(&request()).unwrap();
        assert_eq!(ours["fulfillment"], spec["f"]);
        assert_eq!(ours.as_object().unwrap().len(), 1);
    }

    #[test]
    fn tracking_sends_number_never_numbers_and_url_only_with_a_number() {
        let mut req = request();
        req.tracking = TrackingInfo {
            company: None,
            number: "LP00123".into(),
            url: None,
        };
        let v = fulfillment_create_variables(&req).unwrap();
        assert_eq!(
            v["fulfillment"]["trackingInfo"],
            json!({"number": "LP00123"})
        );
        req.tracking = TrackingInfo {
            company: Some("Cainiao".into()),
            number: " ".into(),
            url: Some("https://global.cainiao.com/detail.htm?mailNoList=x".into()),
        };
        let v = fulfillment_create_variables(&req).unwrap();
        assert_eq!(
            v["fulfillment"]["trackingInfo"],
            json!({"company": "Cainiao"})
        );
        req.tracking = TrackingInfo::default();
        let v = fulfillment_create_variables(&req).unwrap();
        assert!(v["fulfillment"].get("trackingInfo").is_none());
        let text = v.to_string();
        assert!(!text.contains("numbers") && !text.contains("urls"));
        // notifyCustomer is always explicit (Shopify's default is false).
        req.notify_customer = false;
        let v = fulfillment_create_variables(&req).unwrap();
        assert_eq!(v["fulfillment"]["notifyCustomer"], json!(false));
    }

    #[test]
    fn an_empty_item_list_fulfils_the_whole_fo_and_no_fo_at_all_is_refused() {
        let mut req = request();
        req.line_items_by_fo = vec![("gid://shopify/FulfillmentOrder/7".into(), vec![])];
        let v = fulfillment_create_variables(&req).unwrap();
        assert_eq!(
            v["fulfillment"]["lineItemsByFulfillmentOrder"],
            json!([{"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/7"}])
        );
        req.line_items_by_fo.clear();
        assert!(matches!(
            fulfillment_create_variables(&req),
            Err(AdminError::Permanent(_))
        ));
        req.line_items_by_fo = vec![(
            "gid://shopify/FulfillmentOrder/7".into(),
            vec![("gid://shopify/FulfillmentOrderLineItem/8".into(), u32::MAX)],
        )];
        assert!(fulfillment_create_variables(&req).is_err());
    }

    #[test]
    fn tracking_update_variables_carry_the_three_arguments() {
        let v = tracking_update_variables(
            "gid://shopify/Fulfillment/9",
            &TrackingInfo {
                company: Some("USPS".into()),
                number: "9400111899223197428490".into(),
                url: None,
            },
            false,
        );
        assert_eq!(
            v,
            json!({"fulfillmentId": "gid://shopify/Fulfillment/9",
                   "trackingInfoInput": {"company": "USPS", "number": "9400111899223197428490"},
                   "notifyCustomer": false})
        );
    }

    #[test]
    fn user_errors_are_joined_with_their_field_paths() {
        let data = json!({"fulfillmentCreate": {"fulfillment": null, "userErrors": [
            {"field": ["fulfillment", "lineItemsByFulfillmentOrder", "0", "fulfillmentOrderLineItems", "0", "quantity"],
             "message": "Quantity is above the remaining quantity"},
            {"field": null, "message": "Fulfillment order 1 has an unfulfillable status= on_hold."}]}});
        let root: CreateRoot = decode(&OP_FULFILLMENT_CREATE, data).unwrap();
        assert_eq!(
            mutation_outcome(&OP_FULFILLMENT_CREATE, root.fulfillment_create).unwrap(),
            MutationOutcome::UserErrors(vec![
                "fulfillment.lineItemsByFulfillmentOrder.0.fulfillmentOrderLineItems.0.quantity: Quantity is above the remaining quantity".into(),
                "Fulfillment order 1 has an unfulfillable status= on_hold.".into(),
            ])
        );
        let ok = json!({"fulfillmentCreate": {"fulfillment": {"id": "gid://shopify/Fulfillment/5", "status": "SUCCESS"}, "userErrors": []}});
        let root: CreateRoot = decode(&OP_FULFILLMENT_CREATE, ok).unwrap();
        assert_eq!(
            mutation_outcome(&OP_FULFILLMENT_CREATE, root.fulfillment_create).unwrap(),
            MutationOutcome::Done {
                fulfillment_id: Some("gid://shopify/Fulfillment/5".into())
            }
        );
        let null: CreateRoot =
            decode(&OP_FULFILLMENT_CREATE, json!({"fulfillmentCreate": null})).unwrap();
        assert!(mutation_outcome(&OP_FULFILLMENT_CREATE, null.fulfillment_create).is_err());
    }

    #[test]
    fn the_state_answer_parses_with_exact_ids_and_open_enums() {
        let data = json!({"order": {"id": "gid://shopify/Order/1000000000000000001",
            "displayFulfillmentStatus": "PARTIALLY_FULFILLED",
            "fulfillmentOrders": {"nodes": [{
                "id": "gid://shopify/FulfillmentOrder/1000000000000000010", "status": "SOMETHING_NEW",
                "requestStatus": "UNSUBMITTED", "supportedActions": [{"action": "CREATE_FULFILLMENT"}, {"action": "HOLD"}],
                "assignedLocation": {"name": "Main"},
                "lineItems": {"nodes": [{"id": "gid://shopify/FulfillmentOrderLineItem/1000000000000000011",
                    "remainingQuantity": 1, "totalQuantity": 2, "lineItem": {"id": "gid://shopify/LineItem/9007199254740993"}}],
                    "pageInfo": {"hasNextPage": false, "endCursor": "x"}}}],
                "pageInfo": {"hasNextPage": false, "endCursor": null}},
            "fulfillments": [{"id": "gid://shopify/Fulfillment/3", "status": "SUCCESS",
                "trackingInfo": [{"company": "UPS", "number": "1Z999", "url": null}],
                "fulfillmentLineItems": {"nodes": [{"quantity": 1, "lineItem": {"id": "gid://shopify/LineItem/9007199254740993"}}],
                    "pageInfo": {"hasNextPage": false, "endCursor": null}}}]}});
        let root: Root<StateOrder> = decode(&OP_ORDER_FULFILLMENT_STATE, data).unwrap();
        let order = root.order.unwrap();
        let fo = order.fulfillment_orders.nodes.into_iter().next().unwrap();
        assert_eq!(fo.status, "SOMETHING_NEW");
        let line = fo_line(fo.line_items.nodes.into_iter().next().unwrap()).unwrap();
        // 2^53 + 1: would collapse to 2^53 through an f64.
        assert_eq!(line.line_item_id, 9_007_199_254_740_993);
        assert_eq!((line.remaining_quantity, line.total_quantity), (1, 2));
        let node = order.fulfillments.into_iter().next().unwrap();
        assert!(!needs_detail(&node));
        let f = fulfillment(node).unwrap();
        assert_eq!(f.tracking_numbers, vec!["1Z999".to_owned()]);
        assert_eq!(f.line_items, vec![(9_007_199_254_740_993, 1)]);
    }

    #[test]
    fn a_full_tracking_list_or_more_line_items_asks_for_the_detail() {
        let node = |tracking: usize, more: bool| FulfillmentNode {
            id: "gid://shopify/Fulfillment/1".into(),
            status: "SUCCESS".into(),
            tracking_info: (0..tracking)
                .map(|i| TrackingNode {
                    number: Some(format!("N{i}")),
                })
                .collect(),
            fulfillment_line_items: Some(Conn {
                nodes: vec![],
                page_info: PageInfo {
                    has_next_page: more,
                    end_cursor: Some("c".into()),
                },
            }),
        };
        assert!(!needs_detail(&node(1, false)));
        assert!(needs_detail(&node(TRACKING_FIRST, false)));
        assert!(needs_detail(&node(0, true)));
    }

    #[test]
    fn an_unreadable_line_item_id_is_a_bad_response() {
        let node = FoLineNode {
            id: "gid://shopify/FulfillmentOrderLineItem/1".into(),
            remaining_quantity: -1,
            total_quantity: 1,
            line_item: IdNode {
                id: "gid://shopify/LineItem/abc".into(),
            },
        };
        assert!(matches!(fo_line(node), Err(AdminError::Permanent(_))));
        assert_eq!(quantity(-3), 0);
        assert_eq!(quantity(i64::MAX), u32::MAX);
    }

    #[test]
    fn an_order_for_sync_becomes_facts() {
        let data = json!({"order": {"id": "gid://shopify/Order/1000000000000000001",
            "legacyResourceId": "1000000000000000001", "name": "#1001",
            "createdAt": "2026-11-02T10:15:03Z", "updatedAt": "2026-11-02T10:16:04Z",
            "displayFinancialStatus": "PARTIALLY_REFUNDED", "displayFulfillmentStatus": "PARTIALLY_FULFILLED",
            "cancelledAt": null, "test": true,
            "lineItems": {"nodes": [
                {"id": "gid://shopify/LineItem/1000000000000000003", "quantity": 3, "currentQuantity": 2,
                 "unfulfilledQuantity": 1, "sku": "", "title": "Lamp", "product": null, "variant": {"id": "gid://shopify/ProductVariant/456"}}],
                "pageInfo": {"hasNextPage": false, "endCursor": null}},
            "fulfillments": [{"id": "gid://shopify/Fulfillment/1", "status": "SUCCESS", "trackingInfo": [{"number": "YT1"}]},
                             {"id": "gid://shopify/Fulfillment/2", "status": "CANCELLED", "trackingInfo": [{"number": "YT0"}]},
                             {"id": "gid://shopify/Fulfillment/3", "status": "SUCCESS", "trackingInfo": [{"number": " YT1 "}, {"number": "YT2"}]}]}});
        let root: Root<SyncOrder> = decode(&OP_ORDER_FOR_SYNC, data).unwrap();
        let mut order = root.order.unwrap();
        let lines = std::mem::take(&mut order.line_items.nodes);
        let fulfillments: Vec<ExistingFulfillment> = std::mem::take(&mut order.fulfillments)
            .into_iter()
            .map(|n| fulfillment(n).unwrap())
            .collect();
        let (id, f) = facts(order, lines, &fulfillments).unwrap();
        assert_eq!(id, 1_000_000_000_000_000_001);
        assert_eq!(f.name, "#1001");
        assert_eq!(f.created_at_ms, 1_793_614_503_000);
        assert_eq!(f.updated_at_ms, 1_793_614_564_000);
        assert_eq!(f.financial_status, FinancialStatus::PartiallyRefunded);
        assert!(!f.cancelled);
        assert!(f.test);
        assert_eq!(f.fulfillment_status.as_deref(), Some("partial"));
        assert_eq!(
            f.fulfillment_tracking,
            vec!["YT1".to_owned(), "YT2".to_owned()]
        );
        let li = &f.line_items[0];
        assert_eq!(li.id, 1_000_000_000_000_000_003);
        assert_eq!((li.quantity, li.fulfilled_quantity), (2, 1));
        assert_eq!(li.sku, None);
        assert_eq!(li.product_id, None);
        assert_eq!(li.variant_id, Some(456));
        assert_eq!(li.title.as_deref(), Some("Lamp"));
    }

    #[test]
    fn unknown_statuses_stay_open_and_lower_cased() {
        assert_eq!(rest_fulfillment_status("UNFULFILLED"), None);
        assert_eq!(
            rest_fulfillment_status("FULFILLED").as_deref(),
            Some("fulfilled")
        );
        assert_eq!(
            rest_fulfillment_status("ON_HOLD").as_deref(),
            Some("on_hold")
        );
        assert_eq!(
            FinancialStatus::parse(&"SOMETHING_NEW".to_ascii_lowercase()),
            FinancialStatus::Other("something_new".into())
        );
    }
}
