//! `POST /shops/{shop}/orders/{order_id}/place` and `POST /shops/{shop}/orders/place`, plus the
//! placement fields of the order view.

use crate::view::ms_to_rfc3339;
use crate::{ApiError, Id, body_json, json_response};
use dropsync_app::place::{MAX_BULK, PlaceError, Placer, place_many};
use dropsync_domain::placement::PlacementState;
use dropsync_domain::{Order, ShopDomain};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

impl From<PlaceError> for ApiError {
    fn from(e: PlaceError) -> Self {
        match e {
            PlaceError::NotFound => ApiError::NotFound,
            PlaceError::NotPlaceable(why) => ApiError::Conflict(why),
            PlaceError::ReconnectRequired(_) => ApiError::Conflict(
                "the shop must be reconnected to Shopify before placing (Shops -> Reconnect)"
                    .into(),
            ),
            PlaceError::AuthorizationEnded(why) => ApiError::Conflict(why),
            PlaceError::Store(s) => s.into(),
            e @ (PlaceError::Shopify(_) | PlaceError::Ae(_) | PlaceError::NoToken) => {
                warn!(error = %e, "placement could not run");
                ApiError::Unavailable
            }
        }
    }
}

/// Adds `placements` and `failure` to an order's JSON, and `payment_due_at` to each supplier
/// order placed by dropsync.
pub fn add_placement_fields(v: &mut Value, o: &Order) {
    let Some(obj) = v.as_object_mut() else { return };
    let placements: Vec<Value> = o
        .placements
        .iter()
        .map(|p| {
            let mut j = json!({
                "seller_id": p.seller_id.to_string(),
                "attempt": p.attempt,
                "out_order_id": p.out_order_id,
                "line_item_ids": p.line_item_ids.iter().map(u64::to_string).collect::<Vec<_>>(),
                "first_sent_at": ms_to_rfc3339(p.first_sent_at_ms),
            });
            let extra = match &p.state {
                PlacementState::Sending { .. } => json!({"state": "sending"}),
                PlacementState::Placed {
                    aliexpress_order_ids,
                    placed_at_ms,
                    payment_due_at_ms,
                    note,
                } => json!({
                    "state": "placed",
                    "aliexpress_order_ids": aliexpress_order_ids.iter().map(u64::to_string).collect::<Vec<_>>(),
                    "placed_at": ms_to_rfc3339(*placed_at_ms),
                    "payment_due_at": ms_to_rfc3339(*payment_due_at_ms),
                    "note": note,
                }),
                PlacementState::Failed { failure } => json!({"state": "failed", "failure": failure}),
                PlacementState::Unconfirmed { reason, created, .. } => {
                    json!({"state": "unconfirmed", "reason": reason, "created": created})
                }
            };
            if let (Some(j), Value::Object(extra)) = (j.as_object_mut(), extra) {
                j.extend(extra);
            }
            j
        })
        .collect();
    // The failure to show: an order-level one, else the latest seller failure still unresolved.
    let failure = o.placement_failure.clone().or_else(|| {
        o.placements.iter().rev().find_map(|p| match &p.state {
            PlacementState::Failed { failure }
                if dropsync_domain::placement::latest(o, p.seller_id)
                    .is_some_and(|l| l.attempt == p.attempt) =>
            {
                Some(failure.clone())
            }
            _ => None,
        })
    });
    obj.insert("placements".into(), Value::Array(placements));
    obj.insert("failure".into(), json!(failure));
    if let Some(Value::Array(sos)) = obj.get_mut("supplier_orders") {
        for so in sos.iter_mut() {
            let Some(so) = so.as_object_mut() else {
                continue;
            };
            let id = so
                .get("aliexpress_order_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok());
            let due = o.placements.iter().find_map(|p| match &p.state {
                PlacementState::Placed {
                    aliexpress_order_ids,
                    payment_due_at_ms,
                    ..
                } if id.is_some_and(|id| aliexpress_order_ids.contains(&id)) => {
                    Some(*payment_due_at_ms)
                }
                _ => None,
            });
            so.insert(
                "payment_due_at".into(),
                due.map_or(Value::Null, ms_to_rfc3339),
            );
        }
    }
}

/// `POST /shops/{shop}/orders/{order_id}/place`: answers the order.
pub async fn place_one(
    placer: Option<&dyn Placer>,
    shop: &ShopDomain,
    order_id: u64,
) -> Result<Response<Body>, ApiError> {
    let placer = placer.ok_or(ApiError::Unavailable)?;
    let stored = placer.place(shop, order_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &crate::view::order_json(&stored.order),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkIn {
    order_ids: Vec<Id>,
}

/// `POST /shops/{shop}/orders/place` `{"order_ids": [...]}` (1 to 50): each order placed
/// independently, `{"results": [{"order_id", "status", "error"?}]}`.
pub async fn place_bulk(
    placer: Option<&dyn Placer>,
    shop: &ShopDomain,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let input: BulkIn = body_json(body)?;
    if input.order_ids.is_empty() || input.order_ids.len() > MAX_BULK {
        return Err(ApiError::BadRequest(format!(
            "order_ids must hold 1 to {MAX_BULK} ids"
        )));
    }
    let placer = placer.ok_or(ApiError::Unavailable)?;
    let mut ids: Vec<u64> = Vec::new();
    for id in input.order_ids {
        if !ids.contains(&id.0) {
            ids.push(id.0);
        }
    }
    let results: Vec<Value> = place_many(placer, shop, &ids)
        .await
        .into_iter()
        .map(|(id, r)| match r {
            Ok(stored) => json!({"order_id": id.to_string(), "status": stored.order.status}),
            Err(e) => {
                let (status, error) = match &e {
                    PlaceError::NotFound => ("not_found", "order not found".to_owned()),
                    PlaceError::NotPlaceable(why) => ("not_placeable", why.clone()),
                    PlaceError::ReconnectRequired(_) => (
                        "reconnect_required",
                        "the shop must be reconnected to Shopify before placing".to_owned(),
                    ),
                    _ => ("unavailable", "temporarily unavailable; place it again later".to_owned()),
                };
                if matches!(status, "unavailable") {
                    warn!(shop = %shop, order_id = id, error = %e, "bulk placement of an order could not run");
                }
                json!({"order_id": id.to_string(), "status": status, "error": error})
            }
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"results": results})))
}
