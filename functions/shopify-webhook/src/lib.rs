//! The Shopify webhook function: `POST /webhooks/shopify` behind API Gateway (HTTP API), and
//! Shopify's EventBridge deliveries (rule -> SQS -> the `shopify-eventbridge` binary).
//!
//! Two entry points over one service: the HTTPS path must answer Shopify within 5 s with a
//! status code, the EventBridge path reports SQS batch-item failures; the logic (verification,
//! topics, the one conditional write) is the same `WebhookService`.
//!
//! # Why EventBridge has its own binary (`src/bin/eventbridge.rs`), not a branch in this one
//!
//! - **Trust.** An HTTPS delivery is trusted because its HMAC verifies; an EventBridge delivery
//!   is unsigned and trusted because AWS routed it from Shopify's partner event source. In one
//!   function, the unsigned path would sit one mis-parsed event away from the public URL: API
//!   Gateway could hand it a body shaped like an EventBridge envelope. As separate functions, no
//!   HTTP request can ever reach the unsigned path, and the IAM policies say so (API Gateway may
//!   invoke one, only the SQS event source mapping the other).
//! - **Contract.** `lambda_http::run` accepts API Gateway/ALB events and answers HTTP statuses
//!   (Shopify retries any non-2xx); the SQS path answers `batchItemFailures` so that only the
//!   failed messages are retried and, in the end, land in the DLQ. One binary would need a
//!   hand-written union of event shapes and two answer types.
//! - **Limits.** The HTTPS function must answer well inside Shopify's 5 s; the SQS consumer may
//!   take longer (an id-only event is re-fetched through the Admin API, with throttling retries)
//!   and is sized by its batch, not by Shopify's deadline. Timeouts, concurrency and alarms differ.
//!
//! Both binaries are built from this crate and share everything but their `main`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dropsync_app::webhook::{Outcome, WebhookError, WebhookService};
use dropsync_shopify::admin::ShopifyAdmin;
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use tracing::warn;

fn json(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Body::Text(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// Answers one HTTPS delivery.
pub async fn handle_request<A: ShopifyAdmin>(
    svc: &WebhookService<A>,
    req: Request,
) -> Response<Body> {
    if req.method() != Method::POST {
        let mut res = json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "method not allowed"}),
        );
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return res;
    }
    let headers = req.headers();
    // HeaderMap lookups are case-insensitive; a repeated header counts by its first value.
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match svc.handle_signed_delivery(get, req.body().as_ref()).await {
        Ok(_) => json(StatusCode::OK, serde_json::json!({"ok": true})),
        Err(e) => error_response(&e),
    }
}

/// The 405 for anything but POST, or `None` for a POST.
pub fn post_only(req: &Request) -> Option<Response<Body>> {
    if req.method() == Method::POST {
        return None;
    }
    let mut res = json(
        StatusCode::METHOD_NOT_ALLOWED,
        serde_json::json!({"error": "method not allowed"}),
    );
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    Some(res)
}

/// A case-insensitive lookup of the request's headers (a repeated header counts by its first
/// value), as the webhook service reads them.
pub fn header_lookup<'r>(req: &'r Request) -> impl Fn(&str) -> Option<&'r str> + 'r {
    move |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The HTTP answer to a delivery's outcome.
pub fn respond(outcome: Result<Outcome, WebhookError>) -> Response<Body> {
    match outcome {
        Ok(_) => json(StatusCode::OK, serde_json::json!({"ok": true})),
        Err(e) => error_response(&e),
    }
}

/// The answer while the function cannot build its services (e.g. the credentials secret is not
/// readable yet): 503, so Shopify retries; the cause goes to the log only.
pub fn unavailable(e: &(dyn std::error::Error + Send + Sync)) -> Response<Body> {
    tracing::warn!(error = %e, "services not ready");
    error_response(&WebhookError::Unavailable)
}

/// The one place webhook errors become HTTP answers; a 5xx says nothing of the cause.
pub fn error_response(e: &WebhookError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match e {
        WebhookError::BadRequest(m) => m.clone(),
        other => other.to_string(),
    };
    json(status, serde_json::json!({"error": message}))
}

/// Handles a batch of EventBridge deliveries that came through SQS.
pub async fn handle_eventbridge_batch<A: ShopifyAdmin>(
    svc: &WebhookService<A>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for rec in event.records {
        let id = rec.message_id.clone().unwrap_or_default();
        let parsed: Result<serde_json::Value, _> =
            serde_json::from_str(rec.body.as_deref().unwrap_or_default());
        let outcome = match parsed {
            Ok(v) => svc.handle_eventbridge(&v).await,
            Err(e) => {
                warn!(message_id = id.as_str(), error = %e, "malformed EventBridge message acknowledged");
                continue;
            }
        };
        match outcome {
            Ok(_) => {}
            // A 5xx on the HTTPS path: SQS retries the message, then moves it to the DLQ. Only
            // what can never succeed (a 4xx: malformed, unknown shop, not from Shopify) is
            // acknowledged and dropped, with a warning.
            Err(e) if e.status() >= 500 => {
                warn!(message_id = id.as_str(), error = %e, "EventBridge delivery failed; will be retried");
                response.add_failure(id);
            }
            Err(e) => warn!(message_id = id.as_str(), error = %e, "EventBridge delivery refused"),
        }
    }
    response
}
