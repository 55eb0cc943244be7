//! dropsync's integration tests, one binary (the AWS SDK and every function are linked once, not
//! once per file). They run against the moto emulator and the sandbox Shopify and AliExpress,
//! which `tests/tools/services.py` starts: `make test`, or for one module
//! `.venv/bin/python tests/tools/services.py -- cargo test -p dropsync-tests --test integration api::`.

// Tests may panic on what they did not expect: that is how they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout
)]

mod connect_support;
mod hostile_support;
mod poller_support;
mod webhook_support;

mod abuse_limits;
mod ae_pace;
mod aliexpress_sandbox;
mod api;
mod connect_aliexpress;
mod connect_eventbridge;
mod connect_log_hygiene;
mod connect_oauth;
mod connect_reconnect;
mod dashboard;
mod hostile_http;
mod log_hygiene;
mod place_flow;
mod poller_continuation;
mod poller_events;
mod poller_race;
mod poller_sync;
mod push_lease;
mod pusher_events;
mod pusher_flow;
mod reconcile;
mod shopify_admin_sandbox;
mod shopify_documents;
mod store;
mod store_reads;
mod tab_counts;
mod tenancy_tokens;
mod tenancy_webhooks;
mod webhook_eventbridge;
mod webhook_events;
mod webhook_handler;
mod webhook_props;
mod webhook_replay;
mod webhook_sandbox;
