//! Webhook verification and parsing.
