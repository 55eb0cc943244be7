//! Retry policy at the transport level, against a tiny local HTTP server (no sandbox needed):
//! what is resent, what is not, and why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use dropsync_domain::ShopDomain;
use dropsync_shopify::admin::{
    AdminClient, AdminConfig, AdminError, FulfillmentRequest, ShopifyAdmin, TrackingInfo,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TOKEN: &str = "shpat_secret_value_never_logged";

/// Serves `response` (a full HTTP/1.1 answer) to every request; counts requests and keeps the
/// last request head.
fn serve(response: &'static str) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let head = Arc::new(std::sync::Mutex::new(String::new()));
    let (c, h) = (count.clone(), head.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                request_head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            c.fetch_add(1, Ordering::SeqCst);
            *h.lock().unwrap() = request_head;
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (base, count, head)
}

fn client(base: String) -> AdminClient {
    AdminClient::new(AdminConfig {
        base_override: Some(base),
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        ..AdminConfig::default()
    })
    .unwrap()
}

fn shop() -> ShopDomain {
    ShopDomain::parse("transport.myshopify.com").unwrap()
}

fn request() -> FulfillmentRequest {
    FulfillmentRequest {
        order_id: 1,
        line_items_by_fo: vec![("gid://shopify/FulfillmentOrder/1".into(), vec![])],
        tracking: TrackingInfo {
            company: None,
            number: "LP1".into(),
            url: None,
        },
        notify_customer: false,
    }
}

const BAD_GATEWAY: &str = "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 20\r\nconnection: close\r\n\r\n<html>502</html>    ";

#[tokio::test]
async fn a_mutation_answered_with_a_5xx_is_not_resent_because_it_may_have_run() {
    let (base, count, _) = serve(BAD_GATEWAY);
    let c = client(base);
    let err = c
        .create_fulfillment(&shop(), TOKEN, &request())
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::Retryable(_)), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_query_answered_with_a_5xx_is_retried_up_to_max_attempts_then_retryable() {
    let (base, count, head) = serve(BAD_GATEWAY);
    let c = client(base);
    let err = c.fulfillment_state(&shop(), TOKEN, 1).await.unwrap_err();
    assert!(matches!(err, AdminError::Retryable(_)), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(c.stats().retries, 2);
    // The request itself: path, token header, JSON.
    let head = head.lock().unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("post /admin/api/2026-10/graphql.json "),
        "{head}"
    );
    assert!(head.contains(&format!(
        "x-shopify-access-token: {}",
        TOKEN.to_ascii_lowercase()
    )));
    assert!(head.contains("content-type: application/json"));
}

#[tokio::test]
async fn a_refused_connection_is_retried_even_for_a_mutation_because_nothing_was_sent() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(format!("http://127.0.0.1:{port}"));
    let err = c
        .create_fulfillment(&shop(), TOKEN, &request())
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::Retryable(_)), "{err:?}");
    assert_eq!(c.stats().requests, 3);
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_token_never_leaves_for_another_host() {
    let (base, count, _) = serve(
        "HTTP/1.1 301 Moved Permanently\r\nlocation: http://127.0.0.1:1/elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    let c = client(base);
    let err = c.fulfillment_state(&shop(), TOKEN, 1).await.unwrap_err();
    assert!(matches!(err, AdminError::Permanent(_)), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_query_that_times_out_is_retried_and_ends_retryable() {
    // Accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let c = AdminClient::new(AdminConfig {
        base_override: Some(base),
        timeout: Duration::from_millis(300),
        max_attempts: 2,
        ..AdminConfig::default()
    })
    .unwrap();
    let err = c.fulfillment_state(&shop(), TOKEN, 1).await.unwrap_err();
    assert!(
        matches!(&err, AdminError::Retryable(m) if m.starts_with("timeout")),
        "{err:?}"
    );
    assert_eq!(c.stats().requests, 2);
    // The same for a mutation: one attempt only.
    let err = c
        .create_fulfillment(&shop(), TOKEN, &request())
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::Retryable(_)), "{err:?}");
    assert_eq!(c.stats().requests, 3);
}
