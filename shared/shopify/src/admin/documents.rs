//! Every GraphQL document dropsync sends to the Shopify Admin API, in one place.
//!
//! The documents live in `graphql/*.graphql` next to this file (so editors and schema tools can
//! read them) and are compiled in with `include_str!`. `tests/tests/integration/shopify_documents.rs` validates each
//! one against the real 2026-10 Admin schema; nothing outside this list is ever sent.
//!
//! Page sizes are deliberately small. Shopify charges the *requested* cost of a query against the
//! shop's leaky bucket before running it (refunding the unused part afterwards), so a query can
//! only start once that many points are free: the requested cost decides how many pushes a shop
//! can take at once. Orders larger than a first page are completed with follow-up queries, which
//! `pageInfo` (connections) or a full plain list tells the client to make; nothing is silently
//! cut off.

/// One document with what the client needs to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The operation name, sent as `operationName` (and the key of the per-document cost memory).
    pub name: &'static str,
    /// The GraphQL document.
    pub document: &'static str,
    /// Mutations are not idempotent: an unknown outcome (timeout, 5xx) is never retried inside
    /// the client (the caller re-reads the fulfillments first, so a lost answer never fulfils twice).
    pub mutation: bool,
    /// Requested cost under Shopify's calculated-cost rules (checked against the sandbox's
    /// calculator in `tests/tests/integration/shopify_documents.rs`). The limiter uses it until a response reports
    /// the real `requestedQueryCost`.
    pub expected_cost: u32,
}

/// `Order.fulfillmentOrders(first:)` in [`ORDER_FULFILLMENT_STATE`] and [`FULFILLMENT_ORDERS_PAGE`].
pub const FULFILLMENT_ORDERS_FIRST: usize = 2;
/// `FulfillmentOrder.lineItems(first:)` inside those two documents.
pub const FO_LINE_ITEMS_FIRST: usize = 5;
/// `Order.fulfillments(first:)` in [`ORDER_FULFILLMENT_STATE`]: a plain list without a cursor, so
/// a full list means "maybe more" and triggers [`ORDER_FULFILLMENT_IDS`].
pub const FULFILLMENTS_FIRST: usize = 3;
/// `Fulfillment.trackingInfo(first:)` in [`ORDER_FULFILLMENT_STATE`]; a full list triggers
/// [`FULFILLMENT_DETAIL`] for that fulfillment.
pub const TRACKING_FIRST: usize = 2;
/// `Order.fulfillments(first:)` in [`ORDER_FOR_SYNC`].
pub const SYNC_FULFILLMENTS_FIRST: usize = 10;
/// `Order.fulfillments(first:)` in [`ORDER_FULFILLMENT_IDS`]: the most fulfillments one order may
/// have for dropsync to see them all.
pub const ALL_FULFILLMENTS_FIRST: usize = 250;
/// `Fulfillment.trackingInfo(first:)` in [`FULFILLMENT_DETAIL`].
pub const DETAIL_TRACKING_FIRST: usize = 20;

/// Everything the tracking pusher needs about one order in one round trip: the fulfillment
/// orders (what may still be fulfilled, and how) and the fulfillments that already exist (so a
/// package is never fulfilled twice). Requested cost 66: the lists are short, and a full one is
/// followed page by page, so a typical order costs one small read.
pub const ORDER_FULFILLMENT_STATE: &str = include_str!("graphql/order_fulfillment_state.graphql");
/// The next page of an order's fulfillment orders (same selection). Requested cost 33.
pub const FULFILLMENT_ORDERS_PAGE: &str = include_str!("graphql/fulfillment_orders_page.graphql");
/// The next page of one fulfillment order's line items. Requested cost 103.
pub const FULFILLMENT_ORDER_LINE_ITEMS_PAGE: &str =
    include_str!("graphql/fulfillment_order_line_items_page.graphql");
/// Every fulfillment id of an order, for when the short list in [`ORDER_FULFILLMENT_STATE`] or
/// [`ORDER_FOR_SYNC`] came back full. Requested cost 251.
pub const ORDER_FULFILLMENT_IDS: &str = include_str!("graphql/order_fulfillment_ids.graphql");
/// One fulfillment in full (all tracking numbers; line items page by page). Requested cost 123.
pub const FULFILLMENT_DETAIL: &str = include_str!("graphql/fulfillment_detail.graphql");
/// Creates one fulfillment (one package). `UserError` has no `code` in the Admin API, so callers
/// branch on fulfillment-order state, never on message text. Requested cost 10.
pub const FULFILLMENT_CREATE: &str = include_str!("graphql/fulfillment_create.graphql");
/// Replaces a fulfillment's tracking (corrected or last-mile number). Requested cost 10.
pub const FULFILLMENT_TRACKING_INFO_UPDATE: &str =
    include_str!("graphql/fulfillment_tracking_info_update.graphql");
/// Re-fetches an order as a webhook would have carried it (id-only EventBridge events, or when in
/// doubt). Requested cost 183.
pub const ORDER_FOR_SYNC: &str = include_str!("graphql/order_for_sync.graphql");
/// The next page of an order's line items (same selection as [`ORDER_FOR_SYNC`]). Requested cost 153.
pub const ORDER_LINE_ITEMS_PAGE: &str = include_str!("graphql/order_line_items_page.graphql");
/// The order's shipping address, read at placement time (never stored). Requested cost 2.
pub const ORDER_SHIPPING_ADDRESS: &str = include_str!("graphql/order_shipping_address.graphql");
/// The cheapest authenticated question: whether Shopify still accepts the shop's token. An
/// `app/uninstalled` delivery is only acted on once this is answered 401 (the topic header is not
/// covered by the HMAC, so a replayed body could otherwise deactivate a shop). Requested cost 1.
pub const SHOP_TOKEN_CHECK: &str = include_str!("graphql/shop_token_check.graphql");
/// Reconciliation's listing: the ids and `updatedAt` of the shop's orders updated since a
/// watermark, oldest update first, [`ORDERS_UPDATED_SINCE_FIRST`] a page. Only orders dropsync
/// holds an older version of (or none) are then re-fetched in full with [`ORDER_FOR_SYNC`], so an
/// in-sync shop costs about one point per order.
pub const ORDERS_UPDATED_SINCE: &str = include_str!("graphql/orders_updated_since.graphql");
/// `orders(first:)` in [`ORDERS_UPDATED_SINCE`].
pub const ORDERS_UPDATED_SINCE_FIRST: usize = 50;

pub(crate) const OP_ORDER_FULFILLMENT_STATE: Operation = Operation {
    name: "OrderFulfillmentState",
    document: ORDER_FULFILLMENT_STATE,
    mutation: false,
    expected_cost: 66,
};
pub(crate) const OP_FULFILLMENT_ORDERS_PAGE: Operation = Operation {
    name: "FulfillmentOrdersPage",
    document: FULFILLMENT_ORDERS_PAGE,
    mutation: false,
    expected_cost: 33,
};
pub(crate) const OP_FULFILLMENT_ORDER_LINE_ITEMS_PAGE: Operation = Operation {
    name: "FulfillmentOrderLineItemsPage",
    document: FULFILLMENT_ORDER_LINE_ITEMS_PAGE,
    mutation: false,
    expected_cost: 103,
};
pub(crate) const OP_ORDER_FULFILLMENT_IDS: Operation = Operation {
    name: "OrderFulfillmentIds",
    document: ORDER_FULFILLMENT_IDS,
    mutation: false,
    expected_cost: 251,
};
pub(crate) const OP_FULFILLMENT_DETAIL: Operation = Operation {
    name: "FulfillmentDetail",
    document: FULFILLMENT_DETAIL,
    mutation: false,
    expected_cost: 123,
};
pub(crate) const OP_FULFILLMENT_CREATE: Operation = Operation {
    name: "FulfillmentCreate",
    document: FULFILLMENT_CREATE,
    mutation: true,
    expected_cost: 10,
};
pub(crate) const OP_FULFILLMENT_TRACKING_INFO_UPDATE: Operation = Operation {
    name: "FulfillmentTrackingInfoUpdate",
    document: FULFILLMENT_TRACKING_INFO_UPDATE,
    mutation: true,
    expected_cost: 10,
};
pub(crate) const OP_ORDER_FOR_SYNC: Operation = Operation {
    name: "OrderForSync",
    document: ORDER_FOR_SYNC,
    mutation: false,
    expected_cost: 183,
};
pub(crate) const OP_ORDER_LINE_ITEMS_PAGE: Operation = Operation {
    name: "OrderLineItemsPage",
    document: ORDER_LINE_ITEMS_PAGE,
    mutation: false,
    expected_cost: 153,
};
pub(crate) const OP_ORDERS_UPDATED_SINCE: Operation = Operation {
    name: "OrdersUpdatedSince",
    document: ORDERS_UPDATED_SINCE,
    mutation: false,
    expected_cost: 52,
};
pub(crate) const OP_SHOP_TOKEN_CHECK: Operation = Operation {
    name: "ShopTokenCheck",
    document: SHOP_TOKEN_CHECK,
    mutation: false,
    expected_cost: 1,
};

/// Every operation the client can send, with its expected cost.
pub(crate) const OP_ORDER_SHIPPING_ADDRESS: Operation = Operation {
    name: "OrderShippingAddress",
    document: ORDER_SHIPPING_ADDRESS,
    mutation: false,
    expected_cost: 2,
};

pub const OPERATIONS: &[Operation] = &[
    OP_ORDER_FULFILLMENT_STATE,
    OP_FULFILLMENT_ORDERS_PAGE,
    OP_FULFILLMENT_ORDER_LINE_ITEMS_PAGE,
    OP_ORDER_FULFILLMENT_IDS,
    OP_FULFILLMENT_DETAIL,
    OP_FULFILLMENT_CREATE,
    OP_FULFILLMENT_TRACKING_INFO_UPDATE,
    OP_ORDER_FOR_SYNC,
    OP_ORDER_LINE_ITEMS_PAGE,
    OP_ORDER_SHIPPING_ADDRESS,
    super::subscriptions::OP_WEBHOOK_SUBSCRIPTIONS,
    super::subscriptions::OP_WEBHOOK_SUBSCRIPTION_CREATE,
    super::subscriptions::OP_WEBHOOK_SUBSCRIPTION_UPDATE,
    OP_SHOP_TOKEN_CHECK,
    OP_ORDERS_UPDATED_SINCE,
];

/// `(operation name, document)` of every document dropsync sends: the list CI validates against
/// the real Admin schema.
pub const DOCUMENTS: &[(&str, &str)] = &[
    ("OrderFulfillmentState", ORDER_FULFILLMENT_STATE),
    ("FulfillmentOrdersPage", FULFILLMENT_ORDERS_PAGE),
    (
        "FulfillmentOrderLineItemsPage",
        FULFILLMENT_ORDER_LINE_ITEMS_PAGE,
    ),
    ("OrderFulfillmentIds", ORDER_FULFILLMENT_IDS),
    ("FulfillmentDetail", FULFILLMENT_DETAIL),
    ("FulfillmentCreate", FULFILLMENT_CREATE),
    (
        "FulfillmentTrackingInfoUpdate",
        FULFILLMENT_TRACKING_INFO_UPDATE,
    ),
    ("OrderForSync", ORDER_FOR_SYNC),
    ("OrderLineItemsPage", ORDER_LINE_ITEMS_PAGE),
    ("OrderShippingAddress", ORDER_SHIPPING_ADDRESS),
    (
        "WebhookSubscriptions",
        super::subscriptions::WEBHOOK_SUBSCRIPTIONS,
    ),
    (
        "WebhookSubscriptionCreate",
        super::subscriptions::WEBHOOK_SUBSCRIPTION_CREATE,
    ),
    (
        "WebhookSubscriptionUpdate",
        super::subscriptions::WEBHOOK_SUBSCRIPTION_UPDATE,
    ),
    ("ShopTokenCheck", SHOP_TOKEN_CHECK),
    ("OrdersUpdatedSince", ORDERS_UPDATED_SINCE),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_operations_list_the_same_documents_in_the_same_order() {
        assert_eq!(DOCUMENTS.len(), OPERATIONS.len());
        for ((name, doc), op) in DOCUMENTS.iter().zip(OPERATIONS) {
            assert_eq!(*name, op.name);
            assert_eq!(*doc, op.document);
        }
    }

    #[test]
    fn every_document_declares_one_operation_under_its_listed_name() {
        for op in OPERATIONS {
            let keyword = if op.mutation { "mutation" } else { "query" };
            let doc = op.document.trim_start();
            let with_vars = format!("{keyword} {}(", op.name);
            let without = format!("{keyword} {} {{", op.name);
            assert!(
                doc.starts_with(&with_vars) || doc.starts_with(&without),
                "{}",
                op.name
            );
            assert_eq!(
                op.document.matches("query ").count() + op.document.matches("mutation ").count(),
                1,
                "{} must hold exactly one operation",
                op.name
            );
        }
    }

    #[test]
    fn page_size_constants_match_the_documents() {
        let has = |doc: &str, needle: String| assert!(doc.contains(&needle), "{needle}");
        for doc in [ORDER_FULFILLMENT_STATE, FULFILLMENT_ORDERS_PAGE] {
            has(
                doc,
                format!("fulfillmentOrders(first: {FULFILLMENT_ORDERS_FIRST}"),
            );
            has(doc, format!("lineItems(first: {FO_LINE_ITEMS_FIRST})"));
        }
        has(
            ORDER_FULFILLMENT_STATE,
            format!("fulfillments(first: {FULFILLMENTS_FIRST})"),
        );
        has(
            ORDER_FULFILLMENT_STATE,
            format!("trackingInfo(first: {TRACKING_FIRST})"),
        );
        has(
            ORDER_FOR_SYNC,
            format!("fulfillments(first: {SYNC_FULFILLMENTS_FIRST})"),
        );
        has(
            ORDER_FOR_SYNC,
            format!("trackingInfo(first: {TRACKING_FIRST})"),
        );
        has(
            ORDER_FULFILLMENT_IDS,
            format!("fulfillments(first: {ALL_FULFILLMENTS_FIRST})"),
        );
        has(
            FULFILLMENT_DETAIL,
            format!("trackingInfo(first: {DETAIL_TRACKING_FIRST})"),
        );
    }

    #[test]
    fn user_errors_never_select_code_because_the_admin_schema_has_none() {
        for op in OPERATIONS.iter().filter(|op| op.mutation) {
            assert!(op.document.contains("userErrors { field message }"));
            assert!(!op.document.contains("code"), "{}", op.name);
        }
    }

    #[test]
    fn tracking_input_is_never_sent_as_numbers_or_urls_lists_by_the_documents() {
        // The lists are a caller choice in FulfillmentTrackingInput; dropsync only ever sends
        // `number` (+ `url`), which the variables builder enforces. No document hard-codes them.
        for (_, doc) in DOCUMENTS {
            assert!(!doc.contains("numbers"));
            assert!(!doc.contains("urls"));
        }
    }

    // The pusher's query must stay cheap: it gates every push (checked at compile time).
    const _: () = assert!(OP_ORDER_FULFILLMENT_STATE.expected_cost < 200);

    #[test]
    fn every_document_stays_under_shopifys_single_query_limit() {
        assert!(OPERATIONS.iter().all(|op| op.expected_cost < 1000));
    }
}
