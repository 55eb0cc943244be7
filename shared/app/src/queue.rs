//! The queues: the tracking queue's message format (a public contract between the poller and the
//! pusher) and the port that sends it; the poller's continuation port; the placement queue's
//! message and port; their SQS adapters, used by the functions and by the local stack alike.

use crate::sync::PollCursor;
use dropsync_domain::ShopDomain;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// One package to push to Shopify. Ids are strings on the wire (Shopify ids exceed 2^53).
///
/// The message only names the package: the pusher reads the package's current state from the
/// table, so a stale or duplicated message can never push stale data, and the table (not the
/// queue) is the record of what is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushMessage {
    /// Format version, for safe evolution.
    pub v: u8,
    pub shop: ShopDomain,
    pub order_id: String,
    pub aliexpress_order_id: String,
    pub tracking_number: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl PushMessage {
    pub fn new(shop: &ShopDomain, order_id: u64, ae_order_id: u64, tracking_number: &str) -> Self {
        Self {
            v: 1,
            shop: shop.clone(),
            order_id: order_id.to_string(),
            aliexpress_order_id: ae_order_id.to_string(),
            tracking_number: tracking_number.to_owned(),
        }
    }

    pub fn parse(body: &str) -> Result<(Self, u64, u64), MessageError> {
        let m: Self =
            serde_json::from_str(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
        if m.v != 1 {
            return Err(MessageError::Malformed(format!("unknown version {}", m.v)));
        }
        let order: u64 = m
            .order_id
            .parse()
            .map_err(|_| MessageError::Malformed("order_id".into()))?;
        let ae: u64 = m
            .aliexpress_order_id
            .parse()
            .map_err(|_| MessageError::Malformed("aliexpress_order_id".into()))?;
        if m.tracking_number.is_empty() || m.tracking_number.len() > 128 {
            return Err(MessageError::Malformed("tracking_number".into()));
        }
        Ok((m, order, ae))
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a send to a queue failed. Every variant is worth retrying: the message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is not configured ({0} is not set)")]
    NotConfigured(&'static str),
    #[error("the queue refused the send")]
    Send(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0} messages of the batch were not sent")]
    Partial(usize),
}

impl QueueError {
    fn send(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Send(Box::new(e))
    }
}

/// Sends push messages.
pub trait TrackingQueue: Send + Sync {
    fn send(&self, messages: &[PushMessage])
    -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The tracking queue on SQS.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl TrackingQueue for SqsQueue {
    async fn send(&self, messages: &[PushMessage]) -> Result<(), QueueError> {
        for chunk in messages.chunks(10) {
            let mut req = self.client.send_message_batch().queue_url(&self.url);
            for (i, m) in chunk.iter().enumerate() {
                let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.to_body())
                    .build()
                    .map_err(QueueError::send)?;
                req = req.entries(entry);
            }
            let out = req.send().await.map_err(QueueError::send)?;
            if !out.failed().is_empty() {
                return Err(QueueError::Partial(out.failed().len()));
            }
        }
        Ok(())
    }
}

/// Sends the cursor where the poller's next invocation continues.
pub trait Continuation: Send + Sync {
    fn continue_from(
        &self,
        cursor: &PollCursor,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The poller's continuation queue on SQS: the cursor, as JSON, is the message body.
#[derive(Debug, Clone)]
pub struct SqsContinuation {
    client: aws_sdk_sqs::Client,
    /// `None` when the queue is not configured: a poll that needs to continue then fails, and its
    /// trigger runs again, rather than dropping the rest of the poll.
    url: Option<String>,
}

impl SqsContinuation {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> Self {
        Self { client, url }
    }
}

impl Continuation for SqsContinuation {
    async fn continue_from(&self, cursor: &PollCursor) -> Result<(), QueueError> {
        let url = self
            .url
            .as_deref()
            .ok_or(QueueError::NotConfigured("CONTINUATION_QUEUE_URL"))?;
        let body = serde_json::to_string(cursor).map_err(QueueError::send)?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(QueueError::send)
    }
}

/// One order to place automatically: the placement queue's message, between the webhook
/// function and the order placer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceMessage {
    pub shop: String,
    /// The Shopify order id, as a string (ids exceed 2^53).
    pub order_id: String,
}

/// Where orders due for automatic placement are sent.
pub trait PlaceQueue: Send + Sync {
    fn send_placement(
        &self,
        message: &PlaceMessage,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The placement queue on SQS.
#[derive(Debug, Clone)]
pub struct SqsPlaceQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsPlaceQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl PlaceQueue for SqsPlaceQueue {
    async fn send_placement(&self, message: &PlaceMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(QueueError::send)?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(QueueError::send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_with_ids_above_two_to_the_53() {
        let shop = ShopDomain::parse("a.myshopify.com").unwrap();
        let m = PushMessage::new(&shop, 820982911946154508, 8198352049851315, "YT1");
        let (back, order, ae) = PushMessage::parse(&m.to_body()).unwrap();
        assert_eq!(back, m);
        assert_eq!(order, 820982911946154508);
        assert_eq!(ae, 8198352049851315);
    }

    #[test]
    fn malformed_messages_are_rejected() {
        for body in [
            "",
            "{}",
            r#"{"v":2,"shop":"a.myshopify.com","order_id":"1","aliexpress_order_id":"2","tracking_number":"T"}"#,
            r#"{"v":1,"shop":"evil.com","order_id":"1","aliexpress_order_id":"2","tracking_number":"T"}"#,
            r#"{"v":1,"shop":"a.myshopify.com","order_id":"x","aliexpress_order_id":"2","tracking_number":"T"}"#,
            r#"{"v":1,"shop":"a.myshopify.com","order_id":"1","aliexpress_order_id":"2","tracking_number":""}"#,
        ] {
            assert!(PushMessage::parse(body).is_err(), "{body}");
        }
    }
}
