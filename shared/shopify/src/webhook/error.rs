//! Errors of the webhook module. Messages name fields and positions, never values: a value may
//! be customer data, and these errors end up in logs.

/// Why the delivery headers cannot be used. Each variant means the delivery is not one dropsync
/// can attribute to a shop and a topic: answer 400 (after the HMAC check, 401 if it fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `X-Shopify-Topic` is absent or blank.
    #[error("missing X-Shopify-Topic")]
    MissingTopic,
    /// `X-Shopify-Shop-Domain` is absent or blank.
    #[error("missing X-Shopify-Shop-Domain")]
    MissingShop,
    /// `X-Shopify-Shop-Domain` is not a plain `*.myshopify.com` domain. The value is not kept:
    /// it is attacker-controlled until the HMAC is checked.
    #[error("X-Shopify-Shop-Domain is not a *.myshopify.com domain")]
    InvalidShop,
    /// `X-Shopify-Webhook-Id` is longer than [`crate::webhook::MAX_WEBHOOK_ID`] bytes (Shopify's
    /// are UUIDs). It becomes part of a DynamoDB key, whose size is bounded: refused up front,
    /// before anything is done, rather than failing half-way through a compliance action.
    #[error("X-Shopify-Webhook-Id is too long")]
    InvalidWebhookId,
}

/// Why a payload cannot be used. The webhook answers [`PayloadError::http_status`] and writes
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The body exceeds [`crate::webhook::MAX_BODY_BYTES`]; checked before parsing.
    #[error("body of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    /// The body is not JSON (syntax error, truncated, not UTF-8, nested too deeply). Only the
    /// position is kept: serde_json's messages can quote the input.
    #[error("body is not valid JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    /// A field the sync needs is absent or null. `field` is a path such as `line_items[2].id`.
    #[error("`{field}` is missing")]
    Missing { field: String },
    /// A field the sync needs has the wrong type or an unusable value.
    #[error("`{field}` is not {expected}")]
    Invalid {
        field: String,
        expected: &'static str,
    },
    /// Neither `created_at` nor `updated_at` is present: the delivery cannot be ordered against
    /// others, so it cannot be applied.
    #[error("neither `created_at` nor `updated_at` is present")]
    NoTimestamp,
    /// An EventBridge event whose metadata lacks a usable topic or shop.
    #[error("EventBridge metadata: {0}")]
    Headers(#[from] HeaderError),
}

impl PayloadError {
    /// The HTTP status a webhook endpoint answers with: 413 for [`PayloadError::TooLarge`], 400
    /// otherwise. A 4xx makes Shopify retry, then give up; the reconciliation job
    /// picks up whatever a rejected delivery carried.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            _ => 400,
        }
    }

    pub(crate) fn missing(field: impl Into<String>) -> Self {
        Self::Missing {
            field: field.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, expected: &'static str) -> Self {
        Self::Invalid {
            field: field.into(),
            expected,
        }
    }
}
