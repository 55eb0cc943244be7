//! The Shopify webhook function: `POST /webhooks/shopify` behind API Gateway (HTTP API), and
//! Shopify's EventBridge deliveries (rule -> SQS -> the `shopify-eventbridge` binary).
//!
//! Two entry points over one service: the HTTPS path must answer Shopify within 5 s with a
//! status code, the EventBridge path reports SQS batch-item failures; the logic (verification,
//! topics, the one conditional write) is the same `WebhookService`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dropsync_app::webhook::{WebhookError, WebhookService};
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
pub async fn handle_http<A: ShopifyAdmin>(svc: &WebhookService<A>, req: Request) -> Response<Body> {
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
    match svc.handle_http(get, req.body().as_ref()).await {
        Ok(_) => json(StatusCode::OK, serde_json::json!({"ok": true})),
        Err(e) => error_response(&e),
    }
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
            Err(WebhookError::Unavailable) => response.add_failure(id),
            Err(e) => warn!(message_id = id.as_str(), error = %e, "EventBridge delivery refused"),
        }
    }
    response
}
