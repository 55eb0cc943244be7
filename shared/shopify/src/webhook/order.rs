//! The REST order payload of the order topics → [`ShopifyFacts`].

use super::error::PayloadError;
use super::json::{Obj, parse_body};
use dropsync_domain::{FinancialStatus, LineItem, ShopifyFacts, gid};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// An order webhook payload, reduced to what the sync stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedOrder {
    /// The order id, exact (above 2^53 in production).
    pub id: u64,
    pub facts: ShopifyFacts,
}

impl ParsedOrder {
    /// The order's GraphQL id, `gid://shopify/Order/<id>`. Derived rather than read so that old
    /// payloads without `admin_graphql_api_id` work the same.
    pub fn gid(&self) -> String {
        gid("Order", self.id)
    }
}

/// Parses an order webhook body (`orders/create`, `orders/updated`, `orders/paid`, …).
///
/// The order is expected at the document root, as Shopify delivers it; a REST response shape
/// (`{"order": {…}}`) is accepted too. Parsing is tolerant: unknown fields and unknown enum
/// values are fine, nulls are absences. It fails only when the payload cannot be applied
/// safely, and then the webhook answers 400 and writes nothing:
///
/// - [`PayloadError::TooLarge`] over [`super::MAX_BODY_BYTES`] (checked before parsing; 413);
/// - [`PayloadError::NotJson`], or a root that is not an object;
/// - a missing or invalid order id (`id` as a JSON integer, a decimal string or a GID, else the
///   GID in `admin_graphql_api_id`); ids are read as exact `u64`s;
/// - [`PayloadError::NoTimestamp`] when neither `created_at` nor `updated_at` is present (an
///   absent `updated_at` falls back to `created_at` and vice versa), or either is not RFC 3339
///   with an offset;
/// - a field the facts need with the wrong type, or a line item without an id or a quantity.
///
/// What is read, and nothing else (no customer names, addresses, emails, phones, payment data):
/// `name`, the timestamps, `financial_status` (open; absent → `Other("")`), `cancelled_at`
/// (non-null → cancelled), `test`, `fulfillment_status`, and per line item `id`, the quantity
/// (`current_quantity`, which reflects order edits, else `quantity`), `sku` (blank → none),
/// `product_id`, `variant_id` and `title`. Fulfilled quantities and tracking numbers come from
/// the `fulfillments[]` whose `status` is `success` (any case): a `failure`, `cancelled`,
/// `error` or legacy `pending`/`open` fulfillment fulfils nothing.
pub fn parse_order(body: &[u8]) -> Result<ParsedOrder, PayloadError> {
    let root = parse_body(body)?;
    parse_order_value(&root)
}

pub(crate) fn parse_order_value(root: &Value) -> Result<ParsedOrder, PayloadError> {
    let order = unwrap_rest_response(Obj::root(root)?)?;
    let id = order.own_id("Order")?;

    let (created_at_ms, updated_at_ms) = match (
        order.timestamp_ms("created_at")?,
        order.timestamp_ms("updated_at")?,
    ) {
        (Some(created), Some(updated)) => (created, updated),
        (Some(only), None) | (None, Some(only)) => (only, only),
        (None, None) => return Err(PayloadError::NoTimestamp),
    };

    let financial_status = order.str("financial_status")?.map_or_else(
        || FinancialStatus::Other(String::new()),
        FinancialStatus::parse,
    );
    // `cancelled_at` is a timestamp or null; its value does not matter, only that it is set.
    let cancelled = order.str("cancelled_at")?.is_some();

    let mut line_items = Vec::new();
    let mut seen = HashSet::new();
    for item in order.objects("line_items")? {
        let item = item?;
        let line = line_item(&item)?;
        // Fulfilled quantities are attributed by line id: two lines with one id would share them.
        if !seen.insert(line.id) {
            return Err(PayloadError::invalid(
                item.path("id"),
                "unique among the order's line items",
            ));
        }
        line_items.push(line);
    }

    let (fulfilled, fulfillment_tracking) = successful_fulfillments(&order)?;
    for line in &mut line_items {
        line.fulfilled_quantity = fulfilled.get(&line.id).copied().unwrap_or(0);
    }

    Ok(ParsedOrder {
        id,
        facts: ShopifyFacts {
            name: order.str("name")?.unwrap_or_default().to_owned(),
            created_at_ms,
            updated_at_ms,
            financial_status,
            cancelled,
            test: order.bool("test")?.unwrap_or(false),
            fulfillment_status: order.str("fulfillment_status")?.map(str::to_owned),
            line_items,
            fulfillment_tracking,
        },
    })
}

/// A REST API response wraps the order in `{"order": …}`; a webhook body does not. The wrapper
/// is recognised only when the root has no id of its own, so a webhook body that happened to
/// carry an `order` field would still be read at the root.
fn unwrap_rest_response(root: Obj<'_>) -> Result<Obj<'_>, PayloadError> {
    if root.get("id").is_none()
        && root.get("admin_graphql_api_id").is_none()
        && let Some(inner @ Value::Object(_)) = root.get("order")
    {
        return Obj::at(inner, root.path("order"));
    }
    Ok(root)
}

fn line_item(item: &Obj<'_>) -> Result<LineItem, PayloadError> {
    let quantity = match item.u32("current_quantity")? {
        Some(q) => q,
        None => item
            .u32("quantity")?
            .ok_or_else(|| PayloadError::missing(item.path("quantity")))?,
    };
    Ok(LineItem {
        id: item.own_id("LineItem")?,
        quantity,
        // `""` means "no SKU" (custom items, products without one): not a SKU to match on.
        sku: item
            .str("sku")?
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned),
        // Null for custom items and deleted products.
        product_id: item.id("product_id", "Product")?,
        variant_id: item.id("variant_id", "ProductVariant")?,
        title: item.str("title")?.map(str::to_owned),
        fulfilled_quantity: 0,
    })
}

/// Quantities fulfilled per line id, and tracking numbers (first-seen order, no duplicates), over
/// the fulfillments whose status is `success`. Other fulfillments are skipped unread: their
/// contents do not matter, so their shape cannot fail the payload.
fn successful_fulfillments(
    order: &Obj<'_>,
) -> Result<(HashMap<u64, u32>, Vec<String>), PayloadError> {
    let mut fulfilled: HashMap<u64, u32> = HashMap::new();
    let mut tracking: Vec<String> = Vec::new();
    // A set beside the list: a hostile body with many numbers must not make dedupe quadratic.
    let mut seen: HashSet<String> = HashSet::new();
    let mut add_tracking = |number: &str| {
        let number = number.trim();
        if !number.is_empty() && seen.insert(number.to_owned()) {
            tracking.push(number.to_owned());
        }
    };
    for fulfillment in order.objects("fulfillments")? {
        let fulfillment = fulfillment?;
        let success = fulfillment
            .str("status")?
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("success"));
        if !success {
            continue;
        }
        for item in fulfillment.objects("line_items")? {
            let item = item?;
            let id = item.own_id("LineItem")?;
            // `quantity` here is what this fulfillment shipped. `current_quantity`, if a copy of
            // the order's line carries it, is the ordered quantity and must not be used.
            let quantity = item
                .u32("quantity")?
                .ok_or_else(|| PayloadError::missing(item.path("quantity")))?;
            let total = fulfilled.entry(id).or_insert(0);
            *total = total.saturating_add(quantity);
        }
        if let Some(number) = fulfillment.str("tracking_number")? {
            add_tracking(number);
        }
        let numbers_path = fulfillment.path("tracking_numbers");
        for (i, number) in fulfillment.array("tracking_numbers")?.iter().enumerate() {
            match number {
                Value::String(s) => add_tracking(s),
                Value::Null => {}
                _ => {
                    return Err(PayloadError::invalid(
                        format!("{numbers_path}[{i}]"),
                        "a string",
                    ));
                }
            }
        }
    }
    Ok((fulfilled, tracking))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: &Value) -> Result<ParsedOrder, PayloadError> {
        parse_order(&serde_json::to_vec(v).unwrap())
    }

    fn minimal() -> Value {
        json!({
            "id": 9_007_199_254_740_993_u64,
            "created_at": "2026-10-31T19:00:00-05:00",
            "line_items": [{"id": 9_007_199_254_740_995_u64, "quantity": 2}]
        })
    }

    #[test]
    fn a_minimal_order_parses_with_defaults() {
        let o = parse(&minimal()).unwrap();
        assert_eq!(o.id, 9_007_199_254_740_993);
        assert_eq!(o.facts.created_at_ms, o.facts.updated_at_ms);
        assert_eq!(
            o.facts.financial_status,
            FinancialStatus::Other(String::new())
        );
        assert!(!o.facts.cancelled && !o.facts.test);
        assert_eq!(o.facts.name, "");
        assert_eq!(o.facts.line_items.len(), 1);
        assert_eq!(o.facts.line_items[0].id, 9_007_199_254_740_995);
        assert_eq!(o.facts.line_items[0].quantity, 2);
    }

    #[test]
    fn current_quantity_wins_over_quantity() {
        let mut v = minimal();
        v["line_items"][0]["current_quantity"] = json!(0);
        assert_eq!(parse(&v).unwrap().facts.line_items[0].quantity, 0);
    }

    #[test]
    fn only_updated_at_is_enough_and_no_timestamp_is_an_error() {
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("created_at");
        v["updated_at"] = json!("2026-11-01T00:00:00.5Z");
        let o = parse(&v).unwrap();
        assert_eq!(o.facts.created_at_ms, 1_793_491_200_500);
        assert_eq!(o.facts.updated_at_ms, 1_793_491_200_500);
        v["updated_at"] = Value::Null;
        assert_eq!(parse(&v), Err(PayloadError::NoTimestamp));
    }

    #[test]
    fn needed_fields_of_the_wrong_type_are_errors_with_their_path() {
        for (patch, field) in [
            (json!({"id": 1.5}), "id"),
            (json!({"id": "x"}), "id"),
            (json!({"id": -3}), "id"),
            (json!({"created_at": "31/10/2026"}), "created_at"),
            (json!({"created_at": 1_793_491_200}), "created_at"),
            (json!({"test": "false"}), "test"),
            (json!({"financial_status": 3}), "financial_status"),
            (json!({"cancelled_at": true}), "cancelled_at"),
            (json!({"line_items": {}}), "line_items"),
            (json!({"line_items": [7]}), "line_items[0]"),
            (
                json!({"line_items": [{"id": 1, "quantity": -1}]}),
                "line_items[0].quantity",
            ),
            (
                json!({"line_items": [{"id": 1, "quantity": 1, "sku": 5}]}),
                "line_items[0].sku",
            ),
            (
                json!({"line_items": [{"id": 1, "quantity": 1, "variant_id": "gid://shopify/Product/2"}]}),
                "line_items[0].variant_id",
            ),
            (
                json!({"admin_graphql_api_id": "gid://shopify/Order/1"}),
                "admin_graphql_api_id",
            ),
        ] {
            let mut v = minimal();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            match parse(&v) {
                Err(PayloadError::Invalid { field: f, .. }) => assert_eq!(f, field, "{patch}"),
                other => panic!("{patch}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_ids_and_quantities_are_errors() {
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("id");
        assert_eq!(parse(&v), Err(PayloadError::missing("id")));
        v["admin_graphql_api_id"] = json!("gid://shopify/Order/42");
        assert_eq!(parse(&v).unwrap().id, 42);
        let mut v = minimal();
        v["line_items"][0] = json!({"quantity": 1});
        assert_eq!(parse(&v), Err(PayloadError::missing("line_items[0].id")));
        v["line_items"][0] = json!({"id": 5});
        assert_eq!(
            parse(&v),
            Err(PayloadError::missing("line_items[0].quantity"))
        );
    }

    #[test]
    fn duplicate_line_ids_are_rejected() {
        let mut v = minimal();
        v["line_items"] = json!([{"id": 5, "quantity": 1}, {"id": 5, "quantity": 2}]);
        assert!(matches!(parse(&v), Err(PayloadError::Invalid { .. })));
    }

    #[test]
    fn fields_we_do_not_read_may_have_any_type() {
        let mut v = minimal();
        v["email"] = json!(42);
        v["shipping_address"] = json!("not an address");
        v["total_price"] = json!({"weird": true});
        v["line_items"][0]["price"] = json!(null);
        v["line_items"][0]["properties"] = json!("x");
        v["fulfillments"] = json!([{"status": "failure", "line_items": "garbage"}]);
        assert!(parse(&v).is_ok());
    }

    #[test]
    fn fulfilled_quantities_sum_over_successful_fulfillments_only() {
        let mut v = minimal();
        v["line_items"] = json!([{"id": 5, "quantity": 3}, {"id": 6, "quantity": 1}]);
        v["fulfillments"] = json!([
            {"status": "success", "tracking_number": "A1", "tracking_numbers": ["A1", "A2"],
             "line_items": [{"id": 5, "quantity": 1, "current_quantity": 3}]},
            {"status": "SUCCESS", "tracking_number": null, "tracking_numbers": [],
             "line_items": [{"id": 5, "quantity": 1}, {"id": 99, "quantity": 4}]},
            {"status": "cancelled", "tracking_number": "C1",
             "line_items": [{"id": 6, "quantity": 1}]},
            {"status": "error", "line_items": [{"id": 6, "quantity": 1}]},
            {"line_items": [{"id": 6, "quantity": 1}]}
        ]);
        let o = parse(&v).unwrap();
        assert_eq!(o.facts.line_items[0].fulfilled_quantity, 2);
        assert_eq!(o.facts.line_items[1].fulfilled_quantity, 0);
        assert_eq!(o.facts.fulfillment_tracking, vec!["A1", "A2"]);
    }

    #[test]
    fn too_large_bodies_are_refused_before_parsing() {
        let body = vec![b' '; crate::webhook::MAX_BODY_BYTES + 1];
        let err = parse_order(&body).unwrap_err();
        assert!(matches!(err, PayloadError::TooLarge { .. }));
        assert_eq!(err.http_status(), 413);
    }

    #[test]
    fn deeply_nested_bodies_are_refused_without_overflowing_the_stack() {
        let depth = 100_000;
        let mut body = "[".repeat(depth).into_bytes();
        body.extend(std::iter::repeat_n(b']', depth));
        assert!(matches!(
            parse_order(&body),
            Err(PayloadError::NotJson { .. })
        ));
        // Nested inside a field nobody reads: the parser's depth limit still applies.
        let mut body = br#"{"id":1,"created_at":"2026-01-01T00:00:00Z","x":"#.to_vec();
        body.extend(std::iter::repeat_n(b'[', depth));
        assert!(matches!(
            parse_order(&body),
            Err(PayloadError::NotJson { .. })
        ));
    }

    #[test]
    fn errors_do_not_quote_the_payload() {
        let err = parse_order(br#"{"id": "bob@example.com"}"#).unwrap_err();
        assert!(!err.to_string().contains("bob"), "{err}");
        let err = parse_order(br#"{"email": "bob@example.com" "#).unwrap_err();
        assert!(!err.to_string().contains("bob"), "{err}");
    }
}
