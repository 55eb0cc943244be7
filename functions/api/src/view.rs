//! The JSON shapes of the merchant API: ids as strings, statuses by tab name.
//! Fields may be added; the named ones are a contract and never renamed.

use dropsync_domain::{Order, PushState};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// Milliseconds since the epoch as a UTC time; `None` for unset (zero or negative) timestamps and
/// for those outside the years the formats can write.
pub(crate) fn utc(ms: i64) -> Option<OffsetDateTime> {
    if ms <= 0 {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// RFC 3339 in UTC with exactly three fraction digits, so every timestamp in the API has one
/// width; `null` for an unset one.
pub(crate) fn ms_to_rfc3339(ms: i64) -> Value {
    const FORMAT: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    utc(ms)
        .and_then(|t| t.format(FORMAT).ok())
        .map_or(Value::Null, Value::String)
}

pub fn order_json(o: &Order) -> Value {
    let mut v = order_json_base(o);
    crate::routes::place::add_placement_fields(&mut v, o);
    v
}

fn order_json_base(o: &Order) -> Value {
    let supplier_orders: Vec<Value> = o
        .supplier_orders
        .iter()
        .map(|so| {
            let packages: Vec<Value> = so
                .packages
                .iter()
                .map(|p| {
                    let (state, fulfillment_id, error) = match &p.push {
                        PushState::Pending => ("pending", None, None),
                        PushState::Pushed { fulfillment_id } => ("pushed", fulfillment_id.clone(), None),
                        PushState::UpdatePending { fulfillment_id } => {
                            ("update_pending", Some(fulfillment_id.clone()), None)
                        }
                        PushState::Failed { reason } => ("failed", None, Some(reason.clone())),
                    };
                    json!({
                        "tracking_number": p.tracking_number,
                        "carrier": p.carrier,
                        "pushed_to_shopify": p.push.is_pushed(),
                        "push_state": state,
                        "shopify_fulfillment_id": fulfillment_id,
                        "push_error": error,
                        "previous_tracking_number": p.previous_tracking,
                        "line_items": p.items.iter().map(|i| json!({
                            "line_item_id": i.line_item_id.to_string(),
                            "quantity": i.quantity,
                        })).collect::<Vec<_>>(),
                        "found_at": ms_to_rfc3339(p.found_at_ms),
                    })
                })
                .collect();
            json!({
                "aliexpress_order_id": so.ae_order_id.to_string(),
                "status": so.status,
                "aliexpress_status": so.raw_status,
                "aliexpress_logistics_status": so.raw_logistics_status,
                "line_item_ids": so.line_item_ids.iter().map(u64::to_string).collect::<Vec<_>>(),
                "canceled_line_item_ids": so.canceled_line_item_ids.iter().map(u64::to_string).collect::<Vec<_>>(),
                "packages": packages,
                "last_checked_at": so.last_checked_ms.map_or(Value::Null, ms_to_rfc3339),
            })
        })
        .collect();
    json!({
        "id": o.id.to_string(),
        "shop": o.shop,
        "name": o.shopify.name,
        "status": o.status,
        "test": o.shopify.test,
        "financial_status": o.shopify.financial_status.as_str(),
        "cancelled": o.shopify.cancelled,
        "created_at": ms_to_rfc3339(o.shopify.created_at_ms),
        "updated_at": ms_to_rfc3339(o.shopify.updated_at_ms),
        "line_items": o.shopify.line_items.iter().map(|li| json!({
            "id": li.id.to_string(),
            "quantity": li.quantity,
            "sku": li.sku,
            "title": li.title,
            "fulfilled_quantity": li.fulfilled_quantity,
        })).collect::<Vec<_>>(),
        "supplier_orders": supplier_orders,
        "failed_reason": o.failed,
        "attention": o.attention(),
        "needs_refetch": o.needs_refetch,
        "history": o.history.iter().map(|h| json!({
            "status": h.status,
            "at": ms_to_rfc3339(h.at_ms),
            "cause": h.cause,
            "user_action": h.user_action,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_utc_rfc3339() {
        assert_eq!(ms_to_rfc3339(0), Value::Null);
        assert_eq!(
            ms_to_rfc3339(1_767_225_600_123),
            json!("2026-01-01T00:00:00.123Z")
        );
        assert_eq!(
            ms_to_rfc3339(951_782_400_000),
            json!("2000-02-29T00:00:00.000Z")
        );
        assert_eq!(ms_to_rfc3339(-1), Value::Null);
        assert_eq!(ms_to_rfc3339(i64::MAX), Value::Null);
    }
}
