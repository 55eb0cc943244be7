//! The Shopify Admin GraphQL API, as dropsync uses it: read an order's fulfillment orders and
//! fulfillments, create a fulfillment per package, update tracking, re-fetch an order.
//!
//! - [`documents`]: every GraphQL document sent, validated against the real 2026-10 schema.
//! - [`ShopifyAdmin`]: the port the tracking pusher and the webhook path are written against, with
//!   plain types (numeric ids, open enum strings); [`AdminClient`] implements it over HTTP.
//! - Rate limits: a per-shop estimate of Shopify's cost bucket paces requests; THROTTLED (HTTP
//!   200 or 429) is one error, [`AdminError::Throttled`], retried inside the client up to
//!   [`AdminConfig::max_attempts`].
//!
//! Access tokens are passed per call and never stored, logged or put in error texts.

mod address;
mod client;
pub mod documents;
mod limiter;
mod ops;
pub mod subscriptions;
mod types;
mod wire;

pub use client::{AdminClient, AdminConfig, AdminStats, DEFAULT_API_VERSION};
pub use documents::{DOCUMENTS, OPERATIONS, Operation};
pub use types::{
    ExistingFulfillment, FoLineItem, FulfillmentOrder, FulfillmentRequest, FulfillmentState,
    MutationOutcome, OrderStamp, OrderStampPage, ShopifyAdmin, TrackingInfo,
};

use std::time::Duration;

/// Why an Admin API call failed. [`AdminError::is_retryable`] tells the caller whether to fail the
/// SQS message for a later retry or to record a permanent failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The shop's cost bucket is short (HTTP 200 `THROTTLED` or HTTP 429). Nothing ran.
    /// `retry_after` is `max(Retry-After, (requested − available) / restoreRate)`, before jitter.
    #[error("throttled by Shopify; retry after {retry_after:?}")]
    Throttled { retry_after: Duration },
    /// 5xx, timeout, connection failure, `INTERNAL_SERVER_ERROR`. For a mutation the outcome is
    /// **unknown**: re-read the fulfillments before trying again.
    #[error("Shopify unavailable: {0}")]
    Retryable(String),
    /// 401/403: the access token is unknown, revoked or expired.
    #[error("Shopify refused the access token")]
    Unauthorized,
    /// Top-level GraphQL errors (invalid document, `ACCESS_DENIED`, `MAX_COST_EXCEEDED`), bad
    /// responses, bad requests. Retrying the same call cannot help.
    #[error("Shopify request failed: {0}")]
    Permanent(String),
}

impl AdminError {
    /// `Throttled` and `Retryable`: the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Retryable(_))
    }

    /// The suggested wait of a throttled call.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_and_unavailable_are_retryable_the_rest_is_not() {
        assert!(
            AdminError::Throttled {
                retry_after: Duration::from_secs(1)
            }
            .is_retryable()
        );
        assert!(AdminError::Retryable("timeout".into()).is_retryable());
        assert!(!AdminError::Unauthorized.is_retryable());
        assert!(!AdminError::Permanent("bad".into()).is_retryable());
        assert_eq!(
            AdminError::Throttled {
                retry_after: Duration::from_secs(2)
            }
            .retry_after(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(AdminError::Unauthorized.retry_after(), None);
    }
}
