//! Real HTTP in, API Gateway (HTTP API, payload v2) events to the same handler code out.
//!
//! Each request is turned into the JSON event API Gateway would send (duplicate headers joined
//! with commas, binary bodies base64-encoded), decoded by lambda_http exactly as on AWS, and
//! handed to the webhook or API handler.

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request as HyperRequest, Response as HyperResponse};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::warn;

/// API Gateway's payload limit.
const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// Something that answers API Gateway requests (the functions' handlers).
pub trait Handler: Send + Sync + 'static {
    fn call(&self, req: Request) -> impl Future<Output = lambda_http::Response<Body>> + Send;
}

fn plain(status: u16, msg: &str) -> HyperResponse<Full<Bytes>> {
    let mut res = HyperResponse::new(Full::new(Bytes::from(json!({ "error": msg }).to_string())));
    *res.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    res
}

/// Builds the API Gateway v2 event for a request.
pub fn apigw_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    source_ip: &str,
) -> Value {
    let mut joined: Map<String, Value> = Map::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        match joined.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(v);
            }
            _ => {
                joined.insert(k, Value::String(v.clone()));
            }
        }
    }
    let mut qsp: Map<String, Value> = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match qsp.get_mut(k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(v);
            }
            _ => {
                qsp.insert(k.to_owned(), Value::String(v.to_owned()));
            }
        }
    }
    let (body, b64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": joined,
        "queryStringParameters": if qsp.is_empty() { Value::Null } else { Value::Object(qsp) },
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("user-agent")).map(|(_, v)| v.as_str()).unwrap_or("")},
            "requestId": format!("local-{:016x}", fastrand::u64(..)),
            "routeKey": "$default",
            "stage": "$default",
            "time": "",
            "timeEpoch": now,
        },
        "body": body,
        "isBase64Encoded": b64,
    })
}

async fn answer<H: Handler>(
    handler: Arc<H>,
    req: HyperRequest<Incoming>,
    peer: SocketAddr,
) -> HyperResponse<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_PAYLOAD).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(413, "payload too large"),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let event = apigw_event(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &headers,
        &bytes,
        &peer.ip().to_string(),
    );
    let lambda_req: LambdaRequest = match serde_json::from_value(event) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "request not representable as an API Gateway event");
            return plain(400, "bad request");
        }
    };
    let res = handler.call(Request::from(lambda_req)).await;
    let (parts, body) = res.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    HyperResponse::from_parts(parts, Full::new(bytes))
}

/// Serves `handler` on `listener` until the task is dropped.
pub async fn serve<H: Handler>(listener: TcpListener, handler: Arc<H>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(handler, req, peer).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
}
