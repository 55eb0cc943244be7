#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The AliExpress client never follows a redirect: a gateway (or anything in the way) answering
//! 3xx must not get the signed request, with its session token, sent to another host.

use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore, Tokens};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves every connection with `answer(port of the other server)`, counting requests.
async fn serve(answer: impl Fn() -> String + Send + 'static) -> (u16, Arc<AtomicU32>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicU32::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let reply = answer();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, hits)
}

#[tokio::test]
async fn a_redirect_from_the_gateway_is_an_error_and_the_other_host_is_never_called() {
    let (elsewhere, elsewhere_hits) = serve(|| {
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
            .to_owned()
    })
    .await;
    let (gateway, gateway_hits) = serve(move || {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{elsewhere}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    })
    .await;
    let mut config = IopConfig::new(
        "12345678",
        "app-secret-never-forwarded",
        Tokens {
            access_token: "session-token-never-forwarded".into(),
            refresh_token: "refresh".into(),
            expire_time_ms: None,
        },
    );
    config.base_url = format!("http://127.0.0.1:{gateway}");
    config.timeout = Duration::from_secs(5);
    config.max_attempts = 1;
    let client = IopClient::new(config, Arc::new(MemoryTokenStore::new())).unwrap();
    let result = client.tracking_details(8_198_352_049_851_315).await;
    assert!(result.is_err(), "{result:?}");
    assert!(gateway_hits.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}
