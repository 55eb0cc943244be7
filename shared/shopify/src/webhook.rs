//! Webhook deliveries from Shopify: verification, headers, and tolerant payload parsing.
//!
//! The flow of an HTTPS delivery:
//!
//! 1. [`read_headers`] reads the `X-Shopify-*` headers (the caller supplies a case-insensitive
//!    lookup, so this crate carries no HTTP types);
//! 2. [`verify_hmac`] checks `X-Shopify-Hmac-Sha256` against the **exact raw body bytes**
//!    (never a re-serialised body) with the current and, during a rotation, the previous secret;
//! 3. [`check_body_size`] rejects oversized bodies cheaply (→ 413) before anything is parsed;
//! 4. by [`Topic`]: [`parse_order`] for order topics, [`parse_customers_redact`],
//!    [`parse_shop_redact`], [`parse_data_request`] for the compliance topics.
//!
//! EventBridge deliveries are not signed; [`parse_eventbridge`] turns one into the same
//! [`DeliveryHeaders`] plus either the payload bytes or, for an oversized order, only its id.
//!
//! What comes out keeps only what the sync needs: ids, timestamps, statuses, quantities, SKUs,
//! titles and tracking numbers. No customer names, addresses, emails, phones or payment details
//! are kept, and nothing in this module logs payload contents; error messages name fields, never
//! their values.

mod compliance;
mod error;
mod eventbridge;
mod headers;
mod json;
mod order;
mod shape;
mod signature;

pub use compliance::{
    CustomersRedact, DataRequest, ShopRedact, parse_customers_redact, parse_data_request,
    parse_shop_redact,
};
pub use error::{HeaderError, PayloadError};
pub use eventbridge::{EventBridgeDelivery, EventBridgePayload, parse_eventbridge};
pub use headers::{DeliveryHeaders, MAX_WEBHOOK_ID, PINNED_API_VERSION, Topic, read_headers};
pub use order::{ParsedOrder, parse_order};
pub use shape::{AppUninstalled, order_names_shop, parse_app_uninstalled, parse_order_delivery};
pub use signature::{body_digest, verify_hmac};

/// The largest body accepted, in bytes (5 MiB). Order bodies can exceed 1 MB, so the
/// cap is generous; it exists so that a hostile or broken sender cannot make a function parse an
/// arbitrarily large document.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Rejects a body over [`MAX_BODY_BYTES`] without looking at its contents. The `parse_*`
/// functions call it themselves; call it first when the size should be refused before the HMAC
/// is computed (a 413 rather than the work of hashing megabytes).
pub fn check_body_size(body: &[u8]) -> Result<(), PayloadError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(PayloadError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}
