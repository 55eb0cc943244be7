//! Real HTTP in, API Gateway (HTTP API, payload v2) events to the same handler code out.
//!
//! Each request is turned into the JSON event API Gateway would send (duplicate headers joined
//! with commas, binary bodies base64-encoded), decoded by lambda_http exactly as on AWS, and
//! handed to the webhook or API handler.

use base64::Engine;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
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
    // lambda_http builds the request URL from the path, the Host header and X-Forwarded-Proto,
    // and panics when that is not a URL. On AWS, API Gateway sets all three; here they come
    // from the client, so they are checked (and the scheme set) the way API Gateway would.
    if !parts.uri.path().starts_with('/') {
        return plain(400, "bad request target");
    }
    if let Some(host) = parts.headers.get(hyper::header::HOST)
        && !host.to_str().is_ok_and(plausible_host)
    {
        return plain(400, "invalid Host header");
    }
    let bytes = match Limited::new(body, MAX_PAYLOAD).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return plain(413, "payload too large");
        }
        Err(_) => return plain(400, "unreadable request body"),
    };
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != "x-forwarded-proto")
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    headers.push(("x-forwarded-proto".to_owned(), "http".to_owned()));
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

/// Whether a Host header is `host[:port]` with a DNS name, IPv4 or bracketed IPv6 host: what a
/// URL can be built from.
fn plausible_host(raw: &str) -> bool {
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("v6", Some(p)),
            None if after.is_empty() => ("v6", None),
            None => return false,
        }
    } else {
        match raw.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63 && !label.starts_with('-'))
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    host_ok && port_ok
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_a_url_can_be_built_from_are_plausible_and_others_are_not() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:3000",
            "localhost",
            "api.example.com:443",
            "[::1]",
            "[::1]:3000",
        ] {
            assert!(plausible_host(ok), "{ok}");
        }
        for bad in [
            "",
            "exa mple",
            "127.0.0.1:99999",
            "127.0.0.1:",
            "http://x/y",
            "a..b",
            "-a.com",
            "[::1",
            "[::1]x",
            "h\u{e9}st",
            "a*",
            "a/b",
            "a@b",
        ] {
            assert!(!plausible_host(bad), "{bad}");
        }
    }
}
