//! Store errors: what callers must tell apart, and nothing of the SDK's types.

use crate::StoredOrder;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item changed since it was read, or the transition is not
    /// allowed from what is stored. Carries what is stored now (None if the item is gone), so
    /// the caller re-decides from the truth.
    #[error("conflict: the item changed or the transition is not allowed")]
    Conflict(Box<Option<StoredOrder>>),
    #[error("not found")]
    NotFound,
    /// A pagination cursor that this store did not hand out for this listing.
    #[error("invalid cursor")]
    InvalidCursor,
    /// Throttled, unreachable, timed out: try again later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item that cannot be decoded (written by something else, or corrupted).
    #[error("corrupt item: {0}")]
    Corrupt(String),
    /// The item would exceed what DynamoDB stores (400 KB) even at its most compact.
    #[error("the order is too large to store ({0} bytes of line items)")]
    TooLarge(usize),
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Conflict(_))
    }
}

const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "LimitExceededException",
];

/// Maps any SDK error that is not a condition failure.
pub(crate) fn sdk<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            if RETRYABLE_CODES.contains(&code) {
                StoreError::Unavailable(code.to_owned())
            } else if code == "ResourceNotFoundException" {
                StoreError::Other("table not found".to_owned())
            } else {
                StoreError::Other(format!(
                    "{code}: {}",
                    se.err().message().unwrap_or_default()
                ))
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{err}"))
        }
        _ => StoreError::Other(format!("{err}")),
    }
}
