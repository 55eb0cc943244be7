//! Shared by `hostile_http.rs`, the `tenancy_*` files and `log_hygiene.rs`: the local stack's
//! HTTP server started in-process on a free loopback port (the same `Local` routing as
//! `local/src/main.rs`: `/webhooks/shopify` to the webhook function, the rest to the merchant
//! API) over a fresh table, two configured shops with their own secrets and tokens, a raw
//! HTTP/1.1 client that can send what no well-behaved client would, Shopify's webhook HMAC over
//! any bytes, and a scan of the whole table.
#![allow(dead_code)] // each test file uses its own subset

use aws_sdk_dynamodb::types::AttributeValue;
use dropsync_aliexpress::{IopClient, IopConfig, MemoryTokenStore, Tokens};
use dropsync_api::Api;
use dropsync_app::Credentials;
use dropsync_app::queue::SqsQueue;
use dropsync_app::sync::SyncService;
use dropsync_app::webhook::WebhookService;
use dropsync_domain::ShopDomain;
use dropsync_local::server::serve;
use dropsync_store::Store;
pub use dropsync_tests::LocalRouter as Local;
use dropsync_tests::{aliexpress_sandbox, aws_config, fresh_store, shop, unique};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A random secret-looking string with a recognisable prefix (so a leak is unmistakable).
pub fn secret(prefix: &str) -> String {
    let tail: String = (0..24)
        .map(|_| {
            let n = fastrand::u8(..36);
            char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
        })
        .collect();
    format!("{prefix}{tail}")
}

/// One configured shop's secrets.
#[derive(Debug, Clone)]
pub struct ShopSecrets {
    pub domain: ShopDomain,
    pub access_token: String,
    pub webhook_secret: String,
    pub api_token: String,
}

impl ShopSecrets {
    fn new(prefix: &str) -> Self {
        Self {
            domain: shop(&unique(prefix).to_lowercase()),
            access_token: secret("shpat_"),
            webhook_secret: secret("shpss_"),
            api_token: secret("apitok_"),
        }
    }
}

/// The AliExpress app registered in the sandbox for this stack.
#[derive(Debug, Clone)]
pub struct AeSecrets {
    pub base: String,
    pub app_key: String,
    pub app_secret: String,
    pub access_token: String,
    pub refresh_token: String,
    pub account: String,
}

/// The local stack's HTTP server, in-process, with what it was configured with.
pub struct Stack {
    pub addr: SocketAddr,
    pub store: Store,
    pub admin_token: String,
    pub a: ShopSecrets,
    pub b: ShopSecrets,
    pub ae: AeSecrets,
    pub credentials: Arc<Credentials>,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub sync: Arc<SyncService<IopClient, SqsQueue>>,
    /// Where the AliExpress client keeps the tokens it refreshes.
    pub ae_tokens: Arc<MemoryTokenStore>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Registers an AliExpress app and its tokens in the sandbox.
async fn register_ae() -> AeSecrets {
    let base = aliexpress_sandbox();
    let app_key = format!("{}", 100_000 + fastrand::u32(..900_000));
    let ae = AeSecrets {
        base: base.clone(),
        app_secret: secret("aesec_"),
        access_token: secret("aetok_"),
        refresh_token: secret("aeref_"),
        account: format!("acct-{app_key}"),
        app_key,
    };
    dropsync_tests::sandbox_ae_app(
        &base,
        json!({"app_key": ae.app_key, "app_secret": ae.app_secret, "calls_per_second": 50}),
        json!({"access_token": ae.access_token,
               "refresh_token": ae.refresh_token, "account": ae.account, "expires_in": 86400,
               "refresh_expires_in": 172800}),
    )
    .await;
    ae
}

impl Stack {
    /// Starts the stack on a fresh table with shops A and B configured (each with its own
    /// access token, webhook secret and API token) and manual sync against the AliExpress
    /// sandbox.
    pub async fn start() -> Self {
        Self::start_opts(86_400_000).await
    }

    /// As [`Stack::start`], with the AliExpress access token expiring `ae_expires_in_ms` from
    /// now (a short one makes the first call refresh it).
    pub async fn start_opts(ae_expires_in_ms: i64) -> Self {
        let store = fresh_store().await;
        let a = ShopSecrets::new("hostile-a");
        let b = ShopSecrets::new("hostile-b");
        let ae = register_ae().await;
        let admin_token = secret("adm_");
        let shop_doc = |s: &ShopSecrets| {
            json!({"access_token": s.access_token, "webhook_secrets": [s.webhook_secret],
                   "api_token": s.api_token})
        };
        let doc = json!({
            "admin_token": admin_token,
            "shops": {a.domain.as_str(): shop_doc(&a), b.domain.as_str(): shop_doc(&b)},
            "aliexpress": {"app_key": ae.app_key, "app_secret": ae.app_secret,
                           "access_token": ae.access_token, "refresh_token": ae.refresh_token},
        });
        let credentials = Arc::new(Credentials::parse(doc.to_string().as_bytes()).unwrap());
        let ae_tokens = Arc::new(MemoryTokenStore::new());
        let iop = IopClient::new(
            IopConfig {
                base_url: ae.base.clone(),
                calls_per_second: 50.0,
                timeout: Duration::from_secs(5),
                ..IopConfig::new(
                    ae.app_key.clone(),
                    ae.app_secret.clone(),
                    Tokens {
                        access_token: ae.access_token.clone(),
                        refresh_token: ae.refresh_token.clone(),
                        expire_time_ms: Some(dropsync_app::now_ms() + ae_expires_in_ms),
                    },
                )
            },
            ae_tokens.clone(),
        )
        .unwrap();
        let conf = aws_config().await;
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let queue_url = dropsync_tests::create_queue(&sqs, "hostile-q").await;
        let sync = Arc::new(SyncService {
            store: store.clone(),
            ae: Arc::new(iop),
            queue: Arc::new(SqsQueue::new(sqs.clone(), queue_url.clone())),
            concurrency: 4,
        });
        let local = Arc::new(Local {
            webhook: WebhookService {
                store: store.clone(),
                credentials: credentials.clone(),
                admin: None,
            },
            api: Arc::new(Api {
                store: store.clone(),
                credentials: credentials.clone(),
                sync: Some(sync.clone()),
                place: None,
                connect: None,
                reconcile: None,
            }),
        });
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, local));
        Self {
            addr,
            store,
            admin_token,
            a,
            b,
            ae,
            credentials,
            sqs,
            queue_url,
            sync,
            ae_tokens,
            server,
        }
    }

    /// Every item in the table.
    pub async fn scan(&self) -> Vec<HashMap<String, AttributeValue>> {
        scan(&self.store).await
    }

    /// Sends a request and reads the answer (panics on a timeout or a connection without one).
    pub async fn send(&self, req: &Raw) -> RawResponse {
        match send(self.addr, &req.to_bytes(), Duration::from_secs(20)).await {
            Ok(r) => r,
            Err(e) => panic!("{} {}: {e}", req.method, short(&req.target)),
        }
    }

    /// A signed delivery of `body` for `shop` on `topic`, as Shopify sends it.
    pub fn delivery(&self, shop: &ShopDomain, secret: &str, topic: &str, body: &[u8]) -> Raw {
        Raw::new("POST", "/webhooks/shopify")
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Shop-Domain", shop.as_str())
            .header(
                "X-Shopify-Hmac-Sha256",
                &shopify_hmac(secret.as_bytes(), body),
            )
            .header("X-Shopify-Webhook-Id", &unique("wh"))
            .header("X-Shopify-API-Version", "2026-10")
            .body(body.to_vec())
    }

    /// A merchant API request with a bearer token.
    pub fn api(&self, method: &str, target: &str, token: Option<&str>, body: &[u8]) -> Raw {
        let mut r = Raw::new(method, target).header("Content-Type", "application/json");
        if let Some(t) = token {
            r = r.header("Authorization", &format!("Bearer {t}"));
        }
        r.body(body.to_vec())
    }
}

/// Every item in a store's table.
pub async fn scan(store: &Store) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = store
            .client()
            .scan()
            .table_name(store.table())
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(k) => start = Some(k.clone()),
            None => return items,
        }
    }
}

/// A table's items by `pk|sk`, to compare before and after.
pub type Items = std::collections::BTreeMap<String, HashMap<String, AttributeValue>>;

/// The table as `pk|sk -> item`.
pub async fn snapshot(stack: &Stack) -> Items {
    stack
        .scan()
        .await
        .into_iter()
        .map(|i| {
            let key = |k: &str| match i.get(k) {
                Some(AttributeValue::S(s)) => s.clone(),
                _ => String::new(),
            };
            (format!("{}|{}", key("pk"), key("sk")), i)
        })
        .collect()
}

/// The items whose key is under `shop` (`SHOP#{shop}…`).
pub fn of_shop(items: &Items, shop: &ShopDomain) -> Items {
    let needle = format!("SHOP#{shop}");
    items
        .iter()
        .filter(|(k, _)| k.starts_with(&needle) && !k.ends_with("|TABS"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The partition keys of a store's items, for failure messages.
pub fn keys(items: &[HashMap<String, AttributeValue>]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i.get("pk") {
            Some(AttributeValue::S(s)) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// At most 120 characters of a (possibly huge) target, for messages.
pub fn short(s: &str) -> String {
    if s.len() <= 120 {
        s.to_owned()
    } else {
        let cut = (0..=120)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…({} bytes)", &s[..cut], s.len())
    }
}

// ---- a raw HTTP/1.1 client ----

/// A request, written byte for byte as given (any method, target, header bytes and body).
#[derive(Debug, Clone)]
pub struct Raw {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Send `Content-Length` (on by default).
    pub content_length: bool,
    /// Bytes written as the request target instead of `target` (which then only names it).
    pub raw_target: Option<Vec<u8>>,
}

impl Raw {
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            content_length: true,
            raw_target: None,
        }
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header (a repeated name is sent twice).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    /// Drops every header of this name.
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// Replaces every header of this name with one value.
    pub fn replace(self, name: &str, value: &[u8]) -> Self {
        self.without(name).header_bytes(name, value)
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        method.clone_into(&mut self.method);
        self
    }

    pub fn target(mut self, target: &str) -> Self {
        target.clone_into(&mut self.target);
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.raw_target.as_deref().unwrap_or(self.target.as_bytes()));
        out.extend_from_slice(b" HTTP/1.1\r\nConnection: close\r\n");
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            out.extend_from_slice(b"Host: 127.0.0.1\r\n");
        }
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        if self.content_length {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        short(&String::from_utf8_lossy(&self.body))
    }
}

/// Writes `request` (concurrently with reading, so a server that answers before it has read a
/// huge body is heard) and reads the answer until the server closes; `Err` on a timeout, or a
/// connection closed or reset with no complete status line.
pub async fn send(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<RawResponse, String> {
    let work = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut rd, mut wr) = stream.into_split();
        let owned = request.to_vec();
        let writer = tokio::spawn(async move {
            // The server may answer and close before reading everything: not an error here.
            let _ = wr.write_all(&owned).await;
            let _ = wr.flush().await;
            // Keep the write half open until the reader is done (dropping it sends FIN).
            wr
        });
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let read_err = loop {
            match rd.read(&mut chunk).await {
                Ok(0) => break None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => break Some(e.to_string()),
            }
        };
        writer.abort();
        let head = request.starts_with(b"HEAD ");
        match parse_response(&buf, head) {
            Some(r) => Ok(r),
            None => Err(format!(
                "no complete answer ({} bytes read{})",
                buf.len(),
                read_err.map(|e| format!(", then {e}")).unwrap_or_default()
            )),
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?} (a hang)")),
    }
}

fn parse_response(buf: &[u8], is_head: bool) -> Option<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if is_head {
        body.clear();
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if body.len() < len {
            return None;
        }
        body.truncate(len);
    }
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

// ---- Shopify's webhook signature over any bytes ----

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 (FIPS 180-4). The tests crate has no hashing dependency; this one is checked against
/// the project's own HMAC (the AliExpress signer) in `hostile_http.rs`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(char::from(A[(n >> 18) as usize & 63]));
        out.push(char::from(A[(n >> 12) as usize & 63]));
        out.push(if c.len() > 1 {
            char::from(A[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            char::from(A[n as usize & 63])
        } else {
            '='
        });
    }
    out
}

/// `X-Shopify-Hmac-Sha256` for `body`: base64(HMAC-SHA256(secret, body)).
pub fn shopify_hmac(secret: &[u8], body: &[u8]) -> String {
    base64(&hmac_sha256(secret, body))
}

// ---- Shopify order payloads ----

/// A customer's personal data, as it arrives in order payloads (and must never be kept or
/// logged).
#[derive(Debug, Clone)]
pub struct Customer {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub address1: String,
    pub city: String,
    pub zip: String,
}

impl Customer {
    /// A customer whose every field is unique to this run (so finding one anywhere is a leak).
    pub fn unique() -> Self {
        let tag = secret("");
        Self {
            first_name: format!("Zelda{}", &tag[..8]),
            last_name: format!("Quorra{}", &tag[8..16]),
            email: format!("zq.{}@mail.example", &tag[..12]),
            phone: format!("+1555{:07}", fastrand::u32(..10_000_000)),
            address1: format!(
                "{} Larkspur Crescent {}",
                fastrand::u16(1..999),
                &tag[16..22]
            ),
            city: format!("Villeneuve{}", &tag[4..10]),
            zip: format!("K{}A 0B{}", fastrand::u8(0..10), fastrand::u8(0..10)),
        }
    }

    /// Every string a log line must never contain.
    pub fn strings(&self) -> Vec<String> {
        vec![
            self.first_name.clone(),
            self.last_name.clone(),
            format!("{} {}", self.first_name, self.last_name),
            self.email.clone(),
            self.phone.clone(),
            self.address1.clone(),
            self.city.clone(),
            self.zip.clone(),
        ]
    }

    /// The address object Shopify sends (shipping and billing).
    pub fn address(&self) -> Value {
        json!({"first_name": self.first_name, "last_name": self.last_name,
               "name": format!("{} {}", self.first_name, self.last_name),
               "address1": self.address1, "address2": null, "city": self.city,
               "province": "Ontario", "province_code": "ON", "zip": self.zip, "country": "Canada",
               "country_code": "CA", "phone": self.phone, "company": null})
    }
}

/// `2026-11-02T10:00:00-05:00` plus `secs`, as REST payloads write times.
pub fn rest_time(secs: u32) -> String {
    format!(
        "2026-11-02T{:02}:{:02}:{:02}-05:00",
        10 + secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// A REST order payload as Shopify's order topics send it, with the customer's data in every
/// place Shopify puts it.
pub fn order_payload(
    id: u64,
    updated: u32,
    financial: &str,
    lines: &[(u64, u32, &str)],
    customer: &Customer,
) -> Value {
    let line_items: Vec<Value> = lines
        .iter()
        .map(|(lid, q, sku)| {
            json!({"id": lid, "admin_graphql_api_id": format!("gid://shopify/LineItem/{lid}"),
                   "variant_id": 44_000_000_000_000_000_u64 + lid % 1000,
                   "product_id": 8_000_000_000_000_000_u64 + lid % 1000,
                   "sku": sku, "title": "Steel bottle", "name": "Steel bottle - Silver",
                   "quantity": q, "current_quantity": q, "fulfillable_quantity": q,
                   "fulfillment_status": null, "requires_shipping": true, "price": "19.90"})
        })
        .collect();
    json!({
        "id": id, "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
        "name": "#1001", "order_number": 1001,
        "email": customer.email, "contact_email": customer.email, "phone": customer.phone,
        "created_at": rest_time(0), "updated_at": rest_time(updated), "processed_at": rest_time(0),
        "cancelled_at": null, "financial_status": financial, "fulfillment_status": null,
        "test": false, "currency": "USD", "total_price": "39.80",
        "note": format!("Ring {} at {}", customer.first_name, customer.address1),
        "shipping_address": customer.address(), "billing_address": customer.address(),
        "customer": {"id": 115_310_627_314_723_954_u64, "email": customer.email,
                     "first_name": customer.first_name, "last_name": customer.last_name,
                     "phone": customer.phone, "default_address": customer.address()},
        "line_items": line_items, "fulfillments": [], "refunds": []
    })
}
