//! Shopify for dropsync: webhook deliveries in (verification, topics, tolerant payload parsing),
//! and the Admin GraphQL API out (fulfillment orders, fulfillments, tracking updates).

pub mod admin;
pub mod oauth;
pub mod webhook;
