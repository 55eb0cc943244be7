//! `GET /shops/{shop}/mappings`, `PUT` and `DELETE /shops/{shop}/mappings/{variant_id}`.
//!
//! A mapping is checked with AliExpress (`ds.product.get`) before it is stored: an unknown
//! product or SKU is a 422 naming it, and nothing is written.

use crate::{ApiError, Id, body_json, json_response, paging};
use dropsync_app::place::{MappingCheckError, Placer};
use dropsync_domain::ShopDomain;
use dropsync_domain::mapping::{MappingRow, VariantMapping};
use dropsync_store::Store;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

/// One row as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowIn {
    aliexpress_product_id: Id,
    aliexpress_sku_id: String,
    #[serde(default)]
    shipping_method: Option<String>,
    #[serde(default)]
    quantity: Option<u32>,
    #[serde(default)]
    ship_to_countries: Vec<String>,
}

/// The body: one row at the top level (the common case), or `rows` for bundles, buy-one-get-one
/// and per-country suppliers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MappingIn {
    Rows(RowsIn),
    One(RowIn),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowsIn {
    rows: Vec<RowIn>,
}

fn row_json(r: &MappingRow) -> Value {
    json!({
        "aliexpress_product_id": r.product_id.to_string(),
        "aliexpress_sku_id": r.sku_id,
        "sku_attr": r.sku_attr,
        "seller_id": r.seller_id.to_string(),
        "title": r.title,
        "price": r.price,
        "shipping_method": r.shipping_method,
        "quantity": r.quantity,
        "ship_to_countries": r.ship_to,
    })
}

/// A mapping as the API answers it: the first row's fields at the top level, and every row.
pub fn mapping_json(m: &VariantMapping) -> Value {
    let mut v = m.rows.first().map_or_else(|| json!({}), row_json);
    if let Some(o) = v.as_object_mut() {
        o.insert("variant_id".into(), json!(m.variant_id.to_string()));
        o.insert(
            "rows".into(),
            Value::Array(m.rows.iter().map(row_json).collect()),
        );
    }
    v
}

/// `GET /shops/{shop}/mappings?cursor=&limit=`.
pub async fn list(
    store: &Store,
    shop: &ShopDomain,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let (limit, cursor) = paging(query)?;
    let page = store.list_mappings(shop, cursor, limit).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "mappings": page.items.iter().map(mapping_json).collect::<Vec<_>>(),
            "next_cursor": page.next,
        }),
    ))
}

/// `PUT /shops/{shop}/mappings/{variant_id}`.
pub async fn put(
    store: &Store,
    placer: Option<&dyn Placer>,
    shop: &ShopDomain,
    variant_id: u64,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let input: MappingIn = body_json(body)?;
    let rows_in = match input {
        MappingIn::Rows(RowsIn { rows }) => rows,
        MappingIn::One(row) => vec![row],
    };
    let rows = rows_in
        .into_iter()
        .map(|r| {
            if r.aliexpress_sku_id.is_empty()
                || r.aliexpress_sku_id.len() > 40
                || !r.aliexpress_sku_id.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ApiError::BadRequest(
                    "aliexpress_sku_id must be AliExpress' numeric SKU id".into(),
                ));
            }
            Ok(MappingRow {
                product_id: r.aliexpress_product_id.0,
                sku_id: r.aliexpress_sku_id,
                sku_attr: String::new(),
                seller_id: 0,
                title: String::new(),
                price: None,
                quantity: r.quantity.unwrap_or(1),
                ship_to: r.ship_to_countries,
                shipping_method: r.shipping_method,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mapping = VariantMapping { variant_id, rows };
    mapping
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let placer = placer.ok_or(ApiError::Unavailable)?;
    let checked = match placer.check_mapping(mapping).await {
        Ok(m) => m,
        Err(MappingCheckError::Unknown(what)) => return Err(ApiError::Unprocessable(what)),
        Err(MappingCheckError::Invalid(what)) => return Err(ApiError::BadRequest(what)),
        Err(MappingCheckError::Ae(e)) => {
            warn!(shop = %shop, variant_id, error = %e, "AliExpress unavailable for a mapping check");
            return Err(ApiError::Unavailable);
        }
    };
    store.put_mapping(shop, &checked).await?;
    info!(shop = %shop, variant_id, rows = checked.rows.len(), "mapping stored");
    Ok(json_response(StatusCode::OK, &mapping_json(&checked)))
}

/// `DELETE /shops/{shop}/mappings/{variant_id}`: 204 (also when there was none: deleting is
/// idempotent).
pub async fn delete(
    store: &Store,
    shop: &ShopDomain,
    variant_id: u64,
) -> Result<Response<Body>, ApiError> {
    let existed = store.delete_mapping(shop, variant_id).await?;
    info!(shop = %shop, variant_id, existed, "mapping deleted");
    let mut res = Response::new(Body::Empty);
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}
